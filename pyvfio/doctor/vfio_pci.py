"""vfio-pci itself: loaded, its nointxmask, /dev/vfio and our access to it."""

import os

from ..host import paths, system
from .check import FAIL, NA, OK, WARN, Check


def checks(s, root, earlier):
    """`earlier`: the checks so far (a missing /dev/vfio follows from their failures)."""
    out = []
    if s.vfio_pci_loaded:
        nim = "Y" if s.nointxmask else "N"
        out.append(Check("vfio_pci", OK, f"vfio-pci loaded, nointxmask={nim}",
                         "/sys/bus/pci/drivers/vfio-pci and /sys/module/vfio_pci/parameters/nointxmask"))
    else:
        # the host layer knows whether it can be modprobed, is missing, or cannot load at all
        reason, how = next(((r, f) for r, f in system.system_blockers(s) if "vfio-pci" in r),
                           ("the vfio-pci driver is not loaded", "modprobe vfio-pci"))
        out.append(Check("vfio_pci", FAIL, reason,
                         f"/sys/bus/pci/drivers/vfio-pci does not exist; module: {s.vfio_pci_module}",
                         how))
    if s.nointxmask:
        out.append(Check("nointxmask", OK, "nointxmask=1: every card is masked at the controller "
                         "(exclusive line; the unlazy fix matters on XIVE)",
                         "/sys/module/vfio_pci/parameters/nointxmask reads Y (read once, at modprobe)"))
    elif s.vfio_pci_loaded:
        out.append(Check("nointxmask", OK, "nointxmask=0: PCI 2.3 cards are masked with DisINTx",
                         "/sys/module/vfio_pci/parameters/nointxmask"))
    else:
        out.append(Check("nointxmask", NA, "vfio-pci is not loaded: nointxmask is read once, at "
                         "modprobe", "/sys/module/vfio_pci/parameters/nointxmask is absent"))
    out.append(_dev_vfio(s, root, earlier + out))
    if root == "/" and os.geteuid() != 0:
        out.append(Check("privileges", WARN, "not root: binding and reloading vfio-pci write sysfs",
                         f"euid {os.geteuid()}", "sudo pyvfio ..."))
    return out


def _dev_vfio(s, root, earlier):
    if not s.dev_vfio:
        return Check("dev_vfio", FAIL, "/dev/vfio does not exist", "no /dev/vfio directory",
                     "it appears with the fixes above (IOMMU on, vfio-pci loaded)"
                     if any(c.status == FAIL for c in earlier) else
                     "modprobe vfio-pci (/dev/vfio/vfio and one node per group bound to "
                     "vfio-pci appear)")
    ctl = paths.under(root, "dev/vfio/vfio")
    access = system.node_access(ctl)
    if access == "missing":
        return Check("dev_vfio", FAIL, "/dev/vfio/vfio (the container) does not exist",
                     "/dev/vfio exists without its container node", "modprobe vfio")
    if access == "denied":
        return Check("dev_vfio", FAIL, "/dev/vfio/vfio is not readable and writable by you",
                     f"access(2) on {ctl}", "run as root (sudo pyvfio ...)")
    return Check("dev_vfio", OK, "/dev/vfio/vfio is there and usable", f"access(2) on {ctl}")
