"""The card's binding, its IOMMU group's viability (host/pci.py's one rule, the
kernel's) and our access to the group's /dev/vfio node."""

from ..host import paths, pci, system
from .check import FAIL, OK, Check


def checks(dev, s, root):
    where = f"/sys/bus/pci/devices/{dev.bdf}/driver"
    if dev.driver != "vfio-pci":
        out = [Check("driver", FAIL, f"bound to {dev.driver or 'no driver'}, not vfio-pci", where,
                     f"pyvfio bind {dev.bdf}")]
    else:
        out = [Check("driver", OK, "bound to vfio-pci", where)]
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
    elif access == "denied":
        out.append(Check("group_access", FAIL, f"/dev/vfio/{g} is not readable and writable by you",
                         f"access(2) on {node}", f"sudo chown $USER /dev/vfio/{g} (or run as root)"))
    else:
        out.append(Check("group_access", OK, f"/dev/vfio/{g} is usable", f"access(2) on {node}"))
    return out
