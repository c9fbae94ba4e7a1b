"""A legacy PCI card with one level-triggered INTx line and edu-like registers.

Registers (BAR0, 32-bit, as QEMU's hw/misc/edu.c): 0x00 ID 0x010000ed, 0x04
liveness (reads the inverse of what was written), 0x24 interrupt status, 0x60
raise (ORs the value into the status: edu_raise_irq), 0x64 acknowledge (clears
those bits: edu_lower_irq).  The card's internal interrupt is `status != 0`.

PCI 2.3 or not (docs/model.md, "The card"; QEMU hw/pci/pci.c pci_irq_handler,
pci_update_irq_status, pci_update_irq_disabled):
- a 2.3 card reports the internal interrupt in STATUS.INTERRUPT whatever
  COMMAND.INTX_DISABLE says, and drives its pin only while DisINTx is clear, so
  toggling DisINTx raises or lowers the pin;
- a pre-2.3 card has DisINTx read-only 0 and a STATUS bit that reads 0: its pin
  is the internal interrupt.
The pin changes only on transitions (QEMU ignores a same-level set).
"""

from ..uapi import (PCI_BASE_ADDRESS_0, PCI_CLASS_DEVICE, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE,
                    PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_DEVICE_ID, PCI_INTERRUPT_LINE,
                    PCI_INTERRUPT_PIN, PCI_REVISION_ID, PCI_STATUS, PCI_STATUS_INTERRUPT,
                    PCI_VENDOR_ID)

EDU_VENDOR, EDU_DEVICE = 0x1234, 0x11E8
EDU_ID = 0x010000ED
EDU_LIVENESS, EDU_IRQ_STATUS, EDU_IRQ_RAISE, EDU_IRQ_ACK = 0x04, 0x24, 0x60, 0x64
EDU_BAR0_SIZE = 1 << 20
CONFIG_SIZE = 256


class LegacyCard:
    """The card.  `set_line(level)` is the wire to the interrupt controller."""

    __slots__ = ("pci_2_3", "status", "command", "pin", "liveness", "set_line",
                 "config", "trace", "raised")

    def __init__(self, pci_2_3, set_line, irq_line=11, trace=None):
        self.pci_2_3 = pci_2_3
        self.set_line = set_line
        self.status = 0                 # edu irq_status
        self.command = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
        self.pin = 0                    # level driven on INTA#
        self.liveness = 0
        self.raised = 0                 # raise writes (model statistics)
        self.trace = trace
        cfg = bytearray(CONFIG_SIZE)
        cfg[PCI_VENDOR_ID:PCI_VENDOR_ID + 2] = EDU_VENDOR.to_bytes(2, "little")
        cfg[PCI_DEVICE_ID:PCI_DEVICE_ID + 2] = EDU_DEVICE.to_bytes(2, "little")
        cfg[PCI_REVISION_ID] = 0x10
        cfg[PCI_CLASS_DEVICE:PCI_CLASS_DEVICE + 2] = (0x00FF).to_bytes(2, "little")
        cfg[PCI_BASE_ADDRESS_0:PCI_BASE_ADDRESS_0 + 4] = (0xFEA00000).to_bytes(4, "little")
        cfg[PCI_INTERRUPT_LINE] = irq_line
        cfg[PCI_INTERRUPT_PIN] = 1      # INTA#
        self.config = cfg

    # -- the pin (pci_update_irq_status / pci_irq_handler) ---------------------

    @property
    def disintx(self):
        return bool(self.command & PCI_COMMAND_INTX_DISABLE)

    def _update_pin(self):
        level = 1 if self.status and not (self.command & PCI_COMMAND_INTX_DISABLE) else 0
        if level != self.pin:           # QEMU: a same-level set is no change
            self.pin = level
            if self.trace is not None:
                self.trace("card", f"INTx line {'asserted' if level else 'deasserted'}")
            self.set_line(level)

    # -- BAR0 (edu_mmio_read / edu_mmio_write), 32-bit -------------------------

    def mmio_read(self, offset):
        if offset == EDU_IRQ_STATUS:
            return self.status
        if offset == 0x00:
            return EDU_ID
        if offset == EDU_LIVENESS:
            return ~self.liveness & 0xFFFFFFFF
        return 0xFFFFFFFF

    def mmio_write(self, offset, value):
        if offset == EDU_IRQ_RAISE:              # edu_raise_irq
            self.raised += 1
            self.status |= value
            if self.trace is not None:
                self.trace("card", f"raise: status {self.status:#x}")
            self._update_pin()
        elif offset == EDU_IRQ_ACK:              # edu_lower_irq
            self.status &= ~value
            if self.trace is not None:
                self.trace("card", f"acknowledge: status {self.status:#x}")
            self._update_pin()
        elif offset == EDU_LIVENESS:
            self.liveness = value

    # -- configuration space (the physical view) -------------------------------

    def config_read(self, offset, width):
        if offset == PCI_COMMAND:                 # the hot path (pci.c helpers)
            status = PCI_STATUS_INTERRUPT if (self.pci_2_3 and self.status) else 0
            return (self.command | status << 16) & ((1 << (8 * width)) - 1)
        data = bytearray(self.config)
        data[PCI_COMMAND:PCI_COMMAND + 2] = self.command.to_bytes(2, "little")
        status = PCI_STATUS_INTERRUPT if (self.pci_2_3 and self.status) else 0
        data[PCI_STATUS:PCI_STATUS + 2] = status.to_bytes(2, "little")
        return int.from_bytes(data[offset:offset + width], "little")

    def config_write(self, offset, width, value):
        """Only COMMAND is writable here (the rest of the header is read-only)."""
        if offset == PCI_COMMAND and width == 2:  # the hot path (pci.c helpers)
            self.write_command(value)
            return
        lo, hi = offset, offset + width
        if lo < PCI_COMMAND + 2 and hi > PCI_COMMAND:
            cur = bytearray(self.command.to_bytes(2, "little"))
            new = value.to_bytes(width, "little")
            for i in range(lo, hi):
                if PCI_COMMAND <= i < PCI_COMMAND + 2:
                    cur[i - PCI_COMMAND] = new[i - lo]
            self.write_command(int.from_bytes(cur, "little"))

    def write_command(self, value):
        if not self.pci_2_3:
            value &= ~PCI_COMMAND_INTX_DISABLE    # pre-2.3: DisINTx is read-only 0
        changed = (value ^ self.command) & PCI_COMMAND_INTX_DISABLE
        self.command = value
        if changed:                               # pci_update_irq_disabled
            if self.trace is not None:
                self.trace("card", f"COMMAND.INTX_DISABLE={1 if self.disintx else 0}")
            self._update_pin()
