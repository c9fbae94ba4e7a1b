"""QEMU's edu device (hw/misc/edu.c), 1234:11e8.

BAR0 MMIO (1 MiB), 32-bit accesses only below 0x80: 0x00 identification
(0x010000ed), 0x24 interrupt status, 0x60 raise (ORs the written bits into the
status), 0x64 acknowledge (clears them).  INTx stays asserted while the status is
non-zero.  edu's registers are native-endian in QEMU: on qemu-system-ppc64 a
little-endian guest sees them byte-swapped (ID 0xed000001), so constants are
swapped when the ID reads that way; a raw status read written back to 0x64 needs
no swap.
"""

from ..errors import UsageError
from .base import READ, WRITE, WRITE_CAUSE, CardProfile, Op, bswap32

EDU_ID = 0x00
EDU_IRQ_STATUS = 0x24
EDU_IRQ_RAISE = 0x60
EDU_IRQ_ACK = 0x64
CAUSE = 0x1  # any bit: edu reports what was raised


class Edu(CardProfile):
    name = "edu"
    description = "QEMU edu device (BAR0 MMIO; raise 0x60, status 0x24, ack 0x64)"
    ids = ((0x1234, 0x11E8),)
    bars_needed = {0: 0x80}

    def __init__(self, host, access="mmap"):
        super().__init__(host, access)
        ident = self.bars[0].read(EDU_ID, 4)
        if ident & 0xFF == 0xED:
            self.swapped = False
        elif ident >> 24 == 0xED:
            self.swapped = True
        else:
            raise UsageError(f"{host.bdf}: BAR0 identification {ident:#010x} is not an edu device",
                             "choose another --profile")
        value = bswap32(CAUSE) if self.swapped else CAUSE
        mask = 0xFFFFFFFF
        self.raise_ops = (Op(WRITE, 0, EDU_IRQ_RAISE, 4, value),)
        self.ack_ops = (Op(READ, 0, EDU_IRQ_STATUS, 4, mask), Op(WRITE_CAUSE, 0, EDU_IRQ_ACK, 4))
        self.init_ops = self.quiesce_ops = self.ack_ops

    def describe(self):
        return {**super().describe(), "byte_swapped": self.swapped}
