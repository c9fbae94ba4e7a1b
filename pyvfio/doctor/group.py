"""The card's binding and what the host uses it for (host/inuse.py, as `info` and
`bind` ask), its IOMMU group's viability (host/pci.py's one rule, the kernel's) and
our access to the group's /dev/vfio node."""

from ..host import inuse, paths, pci, system
from .check import FAIL, NA, OK, Check

SPARE = "pick a spare card (`pyvfio list`): binding this one takes it from the host"


def use_check(dev, uses):
    """host_use: the root disk, an interface that is up, the console... on this card."""
    if dev.driver in (None, "vfio-pci"):
        return Check("host_use", NA, f"on {dev.driver or 'no driver'}: no host driver uses it")
    ev = (f"under /sys/bus/pci/devices/{dev.bdf}: net, block, tty; /proc/self/mountinfo, "
          "/proc/swaps, routes, boot_vga")
    if uses:
        return Check("host_use", FAIL, f"the host uses it ({dev.driver}): " + "; ".join(uses),
                     ev, SPARE)
    return Check("host_use", OK, f"the host is not using it through {dev.driver} (nothing "
                 "mounted, no interface up, not the console)", ev)


def checks(dev, s, root):
    where = f"/sys/bus/pci/devices/{dev.bdf}/driver"
    uses = inuse.host_uses(dev.bdf, root) if dev.driver not in (None, "vfio-pci") else []
    if dev.driver != "vfio-pci":
        out = [Check("driver", FAIL, f"bound to {dev.driver or 'no driver'}, not vfio-pci", where,
                     SPARE if uses else f"pyvfio bind {dev.bdf}")]
    else:
        out = [Check("driver", OK, "bound to vfio-pci", where)]
    out.append(use_check(dev, uses))
    if dev.iommu_group is None:
        if s.iommu_groups:
            out.append(Check("iommu_group", FAIL, "the device has no IOMMU group",
                             f"/sys/bus/pci/devices/{dev.bdf}/iommu_group is missing",
                             "check that the IOMMU covers this bus (dmesg | grep -i iommu)"))
        return out
    g = dev.iommu_group
    members = [pci.device(m, root) for m in pci.group_members(g, root) if m != dev.bdf]
    owners = [m for m in members if pci.breaks_viability(m)]
    gtype = pci.group_type(g, root)
    ev = f"group {g}: {', '.join([dev.bdf] + [m.bdf for m in members])}" + (
        f"; domain type {gtype}" if gtype else "")
    if owners:
        out.append(Check("iommu_group", FAIL, f"IOMMU group {g} is not viable: "
                         + ", ".join(f"{m.bdf} ({m.driver})" for m in owners)
                         + " claim(s) its DMA for the kernel (a driver without driver_managed_dma)",
                         ev, f"pyvfio bind --group {dev.bdf}"))
    else:
        out.append(Check("iommu_group", OK, f"IOMMU group {g} is viable", ev))
    node = paths.under(root, "dev/vfio", str(g))
    access = system.node_access(node)
    if access == "missing":
        if dev.driver == "vfio-pci":
            out.append(Check("group_access", FAIL, f"/dev/vfio/{g} does not exist",
                             "the device is on vfio-pci but its group node is missing",
                             "check dmesg for vfio-pci probe errors"))
        else:
            out.append(Check("group_access", NA, f"not on vfio-pci: /dev/vfio/{g} appears on "
                             "bind", f"{node} does not exist"))
    elif access == "denied":
        out.append(Check("group_access", FAIL, f"/dev/vfio/{g} is not readable and writable by you",
                         f"access(2) on {node}", f"sudo chown $USER /dev/vfio/{g} (or run as root)"))
    else:
        out.append(Check("group_access", OK, f"/dev/vfio/{g} is usable", f"access(2) on {node}"))
    return out
