"""The IOMMU (groups, kind) and, on x86, interrupt remapping (type1 needs it)."""

from .. import uapi
from ..host import iommufd, system
from .check import FAIL, OK, WARN, Check

POWERPC = iommufd.POWERPC


def checks(s, root, lines):
    blockers = system.system_blockers(s)
    if s.iommu_groups == 0 and not s.iommu_units:
        fix = next((f for r, f in blockers if r.startswith("no IOMMU")),
                   "enable the IOMMU in firmware and on the kernel command line")
        return [Check("iommu", FAIL, "no IOMMU: the kernel made no IOMMU groups",
                      "/sys/kernel/iommu_groups is empty and /sys/class/iommu lists nothing"
                      + (f"; cmdline: {' '.join(s.cmdline_iommu)}" if s.cmdline_iommu else ""), fix)]
    if s.machine in POWERPC:
        kind = "sPAPR TCE (container: VFIO_SPAPR_TCE_v2_IOMMU)"
    elif any(u.startswith("dmar") for u in s.iommu_units):
        kind = "Intel VT-d (container: VFIO_TYPE1v2_IOMMU)"
    elif any(u.startswith("ivhd") for u in s.iommu_units):
        kind = "AMD-Vi (container: VFIO_TYPE1v2_IOMMU)"
    else:
        kind = "type1 (container: VFIO_TYPE1v2_IOMMU)"
    out = [Check("iommu", OK, f"{kind}, {s.iommu_groups} group(s)",
                 f"/sys/class/iommu: {', '.join(s.iommu_units) or 'none'}; "
                 f"cmdline: {' '.join(s.cmdline_iommu) or 'no iommu words'}")]
    if s.machine not in POWERPC:
        out.append(_remapping(lines, root))
    out.append(_iommufd(s, root))
    return out


def _iommufd(s, root):
    """Which of the two ways to open a device --iommu auto takes here."""
    why = iommufd.unavailable(s.machine, s.kernel, None, root, uapi.IOMMUFD_UAPI)
    if why is None:
        return Check("iommufd", OK, "iommufd is available: --iommu auto opens devices through "
                     "/dev/iommu and their cdev", "/dev/iommu exists")
    return Check("iommufd", OK, "container only: " + why[0],
                 f"/dev/iommu {'exists' if s.dev_iommu else 'is missing'}; kernel {s.kernel}")


def _remapping(lines, root):
    """type1's SET_IOMMU refuses (EPERM) without interrupt remapping unless allowed."""
    ir = sorted({line.chip for line in lines.values() if (line.chip or "").startswith("IR-")})
    if ir:
        return Check("interrupt_remapping", OK, "interrupt remapping is on",
                     f"/proc/interrupts chips {', '.join(ir)}")
    if system.allow_unsafe_interrupts(root):
        return Check("interrupt_remapping", WARN, "no interrupt remapping; vfio_iommu_type1 "
                     "allow_unsafe_interrupts=1 lets VFIO go on anyway",
                     "no IR- chip in /proc/interrupts; allow_unsafe_interrupts reads Y")
    return Check("interrupt_remapping", FAIL, "no interrupt remapping: VFIO_SET_IOMMU (type1) will "
                 "fail with EPERM", "no IR- chip (IR-IO-APIC, IR-PCI-MSI) in /proc/interrupts",
                 "boot with intremap=on (QEMU: -device intel-iommu,intremap=on), or "
                 "modprobe vfio_iommu_type1 allow_unsafe_interrupts=1")
