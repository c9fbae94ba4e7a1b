"""Intel 82540EM (e1000), 8086:100e, as QEMU models it (hw/net/e1000.c).

BAR0 MMIO 128 KiB, 32-bit accesses.  IMS (0xD0) enables causes, IMC (0xD8)
disables them, ICS (0xC8) sets a cause, ICR (0xC0) reads the causes and clears
them (QEMU adds INT_ASSERTED, bit 31, while the line is up).  The cause used is
SRPD (bit 16, small receive packet detected), which nothing else sets on a card
without a network backend.  QEMU's interrupt mitigation adds ~128 us per
interrupt: measure with -device e1000,mitigation=off.
"""

from .base import READ, WRITE, CardProfile, Op

ICR, ICS, IMS, IMC = 0xC0, 0xC8, 0xD0, 0xD8
CAUSE = 1 << 16          # E1000_ICR_SRPD
CAUSES = 0x7FFFFFFF      # all causes, without INT_ASSERTED


class E1000(CardProfile):
    name = "e1000"
    description = "Intel 82540EM (BAR0 MMIO; ICS sets, ICR reads and clears)"
    ids = ((0x8086, 0x100E),)
    bars_needed = {0: 0x20000}
    raise_ops = (Op(WRITE, 0, ICS, 4, CAUSE),)
    ack_ops = (Op(READ, 0, ICR, 4, CAUSES),)
    init_ops = (Op(WRITE, 0, IMC, 4, 0xFFFFFFFF), Op(READ, 0, ICR, 4, CAUSES), Op(WRITE, 0, IMS, 4, CAUSE))
    quiesce_ops = (Op(WRITE, 0, IMC, 4, 0xFFFFFFFF), Op(READ, 0, ICR, 4, CAUSES))
