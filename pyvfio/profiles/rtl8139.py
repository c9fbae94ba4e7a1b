"""Realtek RTL8139, 10ec:8139, as QEMU models it (hw/net/rtl8139.c).

BAR0 is I/O ports (256 B, never mmappable), BAR1 the same registers as MMIO: with
--access rw the profile uses BAR0 (exercising I/O-port access), with mmap BAR1.
Interrupt on demand: with the transmitter enabled, writing 0 to the current
transmit status register TSD0..3 (0x10 + 4*d) completes a zero-length transmit
that raises TxOK; QEMU transmits its current descriptor and moves to the next, so
d rotates.  IntrStatus (0x3E, 16-bit) reads the causes; writing 1s clears them.
(The general-purpose timer also raises interrupts, but QEMU sometimes arms it one
counter period late, which would read as a stall.)
"""

import time

from ..errors import UsageError
from .base import READ, WRITE, WRITE_CAUSE, CardProfile, Op

TSD0, CHIP_CMD, INTR_MASK, INTR_STATUS = 0x10, 0x37, 0x3C, 0x3E
CMD_RESET, CMD_TX_ENB = 0x10, 0x04
TX_OK = 0x0004


class Rtl8139(CardProfile):
    name = "rtl8139"
    description = "Realtek RTL8139 (I/O BAR0 or MMIO BAR1; zero-length transmit raises TxOK)"
    ids = ((0x10EC, 0x8139),)
    raise_ops = (Op(WRITE, 0, TSD0, 4, 0, rotate=4, stride=4),)
    ack_ops = (Op(READ, 0, INTR_STATUS, 2, 0xFFFF), Op(WRITE_CAUSE, 0, INTR_STATUS, 2))
    quiesce_ops = (Op(WRITE, 0, INTR_MASK, 2, 0), Op(WRITE, 0, INTR_STATUS, 2, 0xFFFF))
    bars_needed = {0: 0x100}

    def open_bar(self, bar, access):
        # Profile BAR "0" is the register file: I/O BAR0 for rw, MMIO BAR1 for mmap.
        return self.host.region(1 if access == "mmap" else 0, access)

    def init(self):
        regs = self.bars[0]
        regs.write(CHIP_CMD, 1, CMD_RESET)
        deadline = time.monotonic() + 1.0
        while regs.read(CHIP_CMD, 1) & CMD_RESET:  # the reset bit clears itself
            if time.monotonic() > deadline:
                raise UsageError(f"{self.host.bdf}: RTL8139 did not come out of reset",
                                 "check the card; it is not responding like an RTL8139")
        regs.write(CHIP_CMD, 1, CMD_TX_ENB)
        regs.write(INTR_STATUS, 2, 0xFFFF)
        regs.write(INTR_MASK, 2, TX_OK)
        self.raised = 0  # reset put QEMU's current descriptor back to 0
