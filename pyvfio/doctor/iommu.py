"""Where doctor runs (bare metal or a VM: host/virt.py), the IOMMU (groups, kind;
in a VM the VMM's vIOMMU, or vfio's noiommu mode) and, on x86, interrupt remapping
(type1 needs it)."""

from .. import uapi
from ..host import iommufd, system, virt
from .check import FAIL, NA, OK, WARN, Check

POWERPC = iommufd.POWERPC


def platform_check(s):
    """platform: bare metal or a VM, and the signs; the IOMMU advice follows it."""
    p = s.platform
    return Check("platform", OK, p.text + (": the IOMMU is the VMM's (a vIOMMU), not the "
                                           "firmware's" if p.vm else ""),
                 "; ".join(p.evidence))


def checks(s, root, lines):
    if s.no_iommu or (s.noiommu and not s.iommu_units):
        ev = ("/sys/kernel/iommu_groups is empty and /sys/class/iommu lists nothing"
              + (f"; cmdline: {' '.join(s.cmdline_iommu)}" if s.cmdline_iommu else ""))
        if s.noiommu:
            first = Check("iommu", WARN, "no IOMMU, but vfio's noiommu mode is on: VFIO opens "
                          "devices without DMA isolation (the kernel is tainted)",
                          ev + "; vfio enable_unsafe_noiommu_mode reads Y")
            why = "noiommu mode: no IOMMU container (type1) to remap for"
        else:
            first = Check("iommu", FAIL, system.NO_IOMMU, ev, virt.iommu_fix(s.platform, s.machine))
            why = "no IOMMU"
        out = [first]
        if s.machine not in POWERPC:
            out.append(Check("interrupt_remapping", NA, f"{why}: nothing to remap with"))
        out.append(Check("iommufd", NA, f"{why}: iommufd needs an IOMMU"))
        return out
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
        out.append(_remapping(s, lines, root))
    else:
        out.append(Check("interrupt_remapping", NA, "POWER: the sPAPR TCE container does not "
                         "ask for interrupt remapping (type1's rule)", f"machine {s.machine}"))
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


def _remapping(s, lines, root):
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
                 virt.remapping_fix(s.platform))
