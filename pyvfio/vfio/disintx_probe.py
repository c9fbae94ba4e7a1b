"""Does the card implement PCI 2.3 INTx masking?  Ask it, as the kernel does.

Config space read as it is cannot tell a pre-2.3 card (COMMAND.INTX_DISABLE
hardwired to 0) from a 2.3 card whose DisINTx is simply clear (host/config.py).
The kernel decides at enumeration with a write probe, pci_intx_mask_broken() in
drivers/pci/probe.c (pci_intx_mask_supported() in drivers/pci/pci.c before v4.12):
toggle the bit, read COMMAND back, restore it; the bit is implemented when the
word reads back exactly as written.  pci_intx_mask_supported() is then
!dev->broken_intx_masking, which the quirks can also set: this probe sees the
hardware, not the quirks.

A write to a card's config space is only safe when nothing else drives it, so
the probe writes only to a card bound to vfio-pci and idle: its pyvfio card lock
free, and its VFIO group opened here (the open is exclusive: EBUSY while a VM or
another run holds it), held until COMMAND is restored.  Otherwise nothing is
written and the caller keeps what config space says.
"""

import os

from ..cardlock import card_lock
from ..errors import PyvfioError
from ..host import pci
from ..host.config import PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, IntxMaskSupport
from .group import Group

BASIS = "probed"


def _command(fd):
    return int.from_bytes(os.pread(fd, 2, PCI_COMMAND), "little")


def _set_command(fd, value):
    if os.pwrite(fd, value.to_bytes(2, "little"), PCI_COMMAND) != 2:
        raise OSError("short write to COMMAND")


def intx_mask_broken(config_path):
    """pci_intx_mask_broken() on a config-space file: (broken, orig, read back)."""
    fd = os.open(config_path, os.O_RDWR | os.O_CLOEXEC)
    try:
        orig = _command(fd)
        toggle = orig ^ PCI_COMMAND_INTX_DISABLE
        _set_command(fd, toggle)
        try:
            new = _command(fd)
        finally:
            _set_command(fd, orig)
    finally:
        os.close(fd)
    return new != toggle, orig, new


def probe(dev, root="/"):
    """(IntxMaskSupport with basis "probed", None) or (None, why not probed)."""
    if root != "/":
        return None, f"not probed: {root} is not the live host"
    if dev.driver != "vfio-pci":
        return None, f"not probed: {dev.bdf} is bound to {dev.driver or 'no driver'}, not vfio-pci"
    if dev.iommu_group is None:
        return None, f"not probed: {dev.bdf} has no IOMMU group"
    try:
        with card_lock(dev.bdf):
            group = Group(dev.iommu_group)      # exclusive: nobody else has the card open
            try:
                broken, orig, new = intx_mask_broken(os.path.join(pci.device_dir(dev.bdf, root),
                                                                  "config"))
            finally:
                group.close()
    except (PyvfioError, OSError) as exc:
        return None, f"not probed: {dev.bdf} is not idle or not writable ({exc})"
    toggle = orig ^ PCI_COMMAND_INTX_DISABLE
    how = (f"write probe (the kernel's pci_intx_mask_broken): COMMAND {orig:#06x} written as "
           f"{toggle:#06x} read back {new:#06x}, then restored")
    if broken:
        return IntxMaskSupport(False, how + ": DisINTx does not stick, a pre-2.3 card", BASIS), None
    return IntxMaskSupport(True, how + ": DisINTx is implemented", BASIS), None


def support(dev, root="/"):
    """What config space says when it can tell, else what the write probe finds
    (an idle vfio-pci card), else config space's "unknown" with why not probed."""
    found = dev.config.intx_mask_support()
    if found.supported is not None or not dev.config.interrupt_pin:
        return found
    probed, why_not = probe(dev, root)
    if probed is not None:
        return probed
    found.how += f"; {why_not}"
    return found
