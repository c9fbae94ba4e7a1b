"""Ask the kernel, for a moment, what it will do with a card's INTx.

sysfs cannot say two things doctor needs: the IRQ INTx will really get before the
card's first enable (host/irq_route.py), and whether vfio-pci will mask it at the
card (vdev->pci_2_3: pci_intx_mask_supported(), the kernel's write probe of
DisINTx at enumeration plus its broken_intx_masking quirks; nowhere in sysfs).
Both show once the card is enabled through VFIO:

- opening the device fd makes vfio_pci_core_enable() call pci_enable_device()
  (which routes the pin: sysfs irq is then the IRQ request_irq() will be given)
  and try a function reset; closing it disables the card again, and sysfs irq
  keeps the routed IRQ (acpi_pci_irq_disable leaves pdev->irq);
- enabling INTx (SET_IRQS trigger) is vfio_intx_enable()'s request_irq(), IRQF_SHARED
  only with pci_2_3: EBUSY here is the EBUSY a run would meet;
- masking it (SET_IRQS mask) is pci_intx(pdev, 0) with pci_2_3, which sets DisINTx
  in the physical config space (sysfs shows it), or disable_irq_nosync() at the
  controller without.

Asking the kernel beats guessing from ACPI tables or config space, so pyvfio does
it, but only for a card the user named, bound to vfio-pci and idle: its pyvfio
card lock free and its VFIO group not open elsewhere (the group open is
exclusive: EBUSY).  INTx is disabled and the device closed before returning.
"""

import errno
from dataclasses import dataclass

from ..cardlock import card_lock
from ..errors import PyvfioError, VfioError
from ..host import irq_route, masking, pci
from ..host.config import PCI_COMMAND, PCI_COMMAND_INTX_DISABLE
from ..intx import DeviceIrq
from .device import open_device


@dataclass
class Probe:
    """route (irq_route.RoutedIrq, basis LEARNED); masking ("device", "controller",
    or None if INTx could not be enabled); request_error (errno name of the INTx
    request, "EBUSY"..., or None); evidence (one sentence)."""
    route: object
    masking: str | None
    request_error: str | None
    evidence: str

    def to_json(self):
        """Stable keys: route (RoutedIrq.to_json), masking, request_error, evidence."""
        return {"route": self.route.to_json(), "masking": self.masking,
                "request_error": self.request_error, "evidence": self.evidence}


def needed(dev, route, system, mask_support=None):
    """Does sysfs leave a question only the probe answers: the routed IRQ (route:
    irq_route.RoutedIrq), or, with nointxmask=0, whether vfio-pci masks at the card
    (mask_support: host/config.IntxMaskSupport, config space's when not given)?"""
    if dev.config is None:
        return not route.known
    support = mask_support or dev.config.intx_mask_support()
    # a write probe's DisINTx- is asked again: the kernel's quirks may differ from it
    settled = system.nointxmask or masking.masked_at(0, support.supported) == masking.DEVICE
    return not route.known or not settled


def _disintx(bdf, root):
    command = int.from_bytes(pci.read_config(bdf, root)[PCI_COMMAND:PCI_COMMAND + 2], "little")
    return bool(command & PCI_COMMAND_INTX_DISABLE)


def probe(dev, root="/"):
    """(Probe or None, why not) for a PciDevice."""
    if root != "/":
        return None, f"not probed: {root} is not the live host"
    if dev.driver != "vfio-pci":
        return None, f"not probed: {dev.bdf} is bound to {dev.driver or 'no driver'}, not vfio-pci"
    fw = dev.config.interrupt_line if dev.config else None
    try:
        with card_lock(dev.bdf), open_device(dev.bdf, root=root) as vdev:
            irq = pci.device(dev.bdf, root).irq
            route = irq_route.RoutedIrq(irq, irq_route.LEARNED, fw, f"sysfs irq read {irq} while "
                                        f"pyvfio held {dev.bdf} enabled through VFIO "
                                        "(pci_enable_device routes INTx)")
            intx = DeviceIrq(vdev)
            try:
                intx.enable()
            except VfioError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                intx.close()
                return Probe(route, None, "EBUSY", f"vfio-pci's request_irq({irq}) failed with "
                             "EBUSY when pyvfio enabled INTx"), None
            try:
                intx.mask()
                on_card = _disintx(dev.bdf, root)
            finally:
                intx.close()
    except (PyvfioError, OSError) as exc:
        return None, f"not probed: enabling {dev.bdf} through VFIO failed ({exc})"
    return Probe(route, masking.masked_at(0, on_card), None, f"pyvfio enabled INTx (request_irq({irq}) succeeded) and "
                 "masked it: DisINTx " + ("set on the card: vfio-pci masks at the card (pci_2_3)"
                                          if on_card else "left clear: vfio-pci masks at the "
                                          "controller (disable_irq_nosync)")), None
