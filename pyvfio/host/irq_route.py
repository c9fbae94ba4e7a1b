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

Learning it when sysfs cannot tell: enable the device for a moment.  Opening a
vfio-pci device fd makes vfio_pci_core_enable() call pci_enable_device() (and try
a function reset); sysfs `irq` read while the fd is open is what request_irq()
will be given; closing disables the device again.  That is the kernel's own
answer, without parsing ACPI tables from userspace, so it is what pyvfio does, and
only for a card the user named, bound to vfio-pci and idle: its pyvfio card lock
free and its VFIO group not open elsewhere (the group open is exclusive: EBUSY).
"""

from dataclasses import dataclass

from . import interrupts

# How the IRQ is known (RoutedIrq.basis).
REQUESTED = "requested"   # vfio-pci holds it: /proc/interrupts vfio-intx(BDF)
ENABLED = "enabled"       # the device is enabled now: sysfs irq is the routed one
ROUTED = "routed"         # sysfs irq differs from config 0x3c: routed at an earlier enable
LEARNED = "learned"       # read while pyvfio held the device enabled through VFIO
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


def learn(dev, root="/"):
    """(RoutedIrq or None, why not): enable `dev` through VFIO for a moment and
    read sysfs irq meanwhile.  Only on the live host, for an idle vfio-pci device."""
    from ..cardlock import card_lock
    from ..errors import PyvfioError
    from . import pci

    if root != "/":
        return None, f"not probed: {root} is not the live host"
    if dev.driver != "vfio-pci":
        return None, f"not probed: {dev.bdf} is bound to {dev.driver or 'no driver'}, not vfio-pci"
    try:
        from ..vfio import open_device
        with card_lock(dev.bdf), open_device(dev.bdf, root=root):
            now = pci.device(dev.bdf, root)
    except (PyvfioError, OSError, ImportError) as exc:
        return None, f"not probed: opening {dev.bdf} through VFIO failed ({exc})"
    fw = dev.config.interrupt_line if dev.config else None
    return RoutedIrq(now.irq, LEARNED, fw, f"sysfs irq read {now.irq} while pyvfio held "
                     f"{dev.bdf} enabled through VFIO (pci_enable_device routes INTx)"), None
