"""The IRQ a function's INTx will really get, and how we know it.

sysfs `irq` is pdev->irq (irq_show, drivers/pci/pci-sysfs.c, with MSI off).  At
enumeration it is config 0x3c, the line the firmware wrote (pci_read_irq).  On x86
pci_enable_device() routes the pin: pcibios_enable_device -> acpi_pci_irq_enable
looks it up in ACPI _PRT and sets pdev->irq to the IO-APIC GSI (q35: the firmware
writes 10/11, the GSI is 16-23).  pci_disable_device -> acpi_pci_irq_disable
unregisters the GSI but leaves pdev->irq alone ("TBD: It might be worth clearing
dev->irq"), and config 0x3c is never rewritten.  So sysfs `irq` is the routed IRQ
while the device is enabled (sysfs `enable`), or once it differs from config 0x3c
(enabled at least once since boot); before the first enable it can be the
firmware's line.  On powerpc the IRQ is mapped when the device is added
(pcibios_bus_add_device -> pci_read_irq_line): sysfs `irq` is final from the start.

When sysfs cannot tell, vfio/intx_probe.py learns it from the kernel by enabling
the card a moment through VFIO.
"""

from dataclasses import dataclass

from . import interrupts

# How the IRQ is known (RoutedIrq.basis).
REQUESTED = "requested"   # vfio-pci holds it: /proc/interrupts vfio-intx(BDF)
ENABLED = "enabled"       # the device is enabled now: sysfs irq is the routed one
ROUTED = "routed"         # sysfs irq differs from config 0x3c: routed at an earlier enable
LEARNED = "learned"       # read while pyvfio held the device enabled (vfio/intx_probe.py)
FIRMWARE = "firmware"     # sysfs irq equals config 0x3c and the device is not enabled
KNOWN = (REQUESTED, ENABLED, ROUTED, LEARNED)


@dataclass
class RoutedIrq:
    """irq (None without a pin or an IRQ), basis (above), firmware_line (config
    0x3c), evidence (one sentence)."""
    irq: int | None
    basis: str
    firmware_line: int | None
    evidence: str

    @property
    def known(self):
        return self.basis in KNOWN

    def text(self, pin):
        """lspci's 'pin A routed to IRQ 20', saying so when it may still change."""
        if self.irq is None:
            return f"pin {pin}, no IRQ yet"
        if self.known:
            return f"pin {pin} routed to IRQ {self.irq}"
        return f"pin {pin}, IRQ {self.irq} from firmware (the kernel routes it at enable)"

    def to_json(self):
        """Stable keys: irq, basis, firmware_line, evidence."""
        return {"irq": self.irq, "basis": self.basis, "firmware_line": self.firmware_line,
                "evidence": self.evidence}


def route(dev, root="/", lines=None):
    """What sysfs and /proc/interrupts say about `dev`'s INTx IRQ (a PciDevice)."""
    cfg = dev.config
    fw = cfg.interrupt_line if cfg else None
    held = interrupts.find(interrupts.read(root) if lines is None else lines,
                           action=interrupts.vfio_intx_name(dev.bdf))
    if held is not None:
        return RoutedIrq(held.irq, REQUESTED, fw, f"vfio-pci holds IRQ {held.irq} "
                         f"({interrupts.vfio_intx_name(dev.bdf)} in /proc/interrupts)")
    if not dev.irq:
        return RoutedIrq(None, FIRMWARE, fw, f"sysfs irq is {dev.irq}")
    if dev.enabled:
        return RoutedIrq(dev.irq, ENABLED, fw, f"the device is enabled: sysfs irq {dev.irq} "
                         "is the IRQ the kernel routed")
    if fw not in (None, 0, 0xFF) and dev.irq != fw:
        return RoutedIrq(dev.irq, ROUTED, fw, f"sysfs irq {dev.irq} differs from the firmware's "
                         f"line (config 0x3c: {fw}): routed at an earlier enable")
    return RoutedIrq(dev.irq, FIRMWARE, fw, f"sysfs irq {dev.irq} is the firmware's line "
                     "(config 0x3c) and the device has not been enabled: "
                     "pci_enable_device may route it elsewhere")
