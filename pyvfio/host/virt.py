"""Is this host a virtual machine, and under which VMM?

Inside a VM the IOMMU is not the firmware's: it is a vIOMMU the VMM offers (QEMU
q35's intel-iommu, virtio-iommu; a pseries guest's sPAPR TCE) or none, and then
vfio's noiommu mode is the only way to a device.  doctor's advice depends on it.

The signs, each read under the host root (a fabricated tree in tests):
- x86: the `hypervisor` flag in /proc/cpuinfo (CPUID leaf 1 ECX bit 31, which every
  VMM sets);
- DMI (/sys/class/dmi/id): sys_vendor / product_name naming a VMM (QEMU, KVM,
  VMware, VirtualBox, Hyper-V, Xen, ...);
- POWER: a pseries (PAPR) kernel is always a guest (/proc/powerpc/lparcfg exists;
  cpuinfo says "platform : pSeries"; QEMU's model reads "emulated by qemu"); the
  device tree's /hypervisor node names KVM; PowerNV is bare metal;
- virtio: devices on the virtio bus, or PCI functions of vendor 1af4.
"""

import os
from dataclasses import dataclass, field

from . import paths

# DMI words that name a VMM: (substring of sys_vendor or product_name, the VMM).
DMI_VMMS = (("QEMU", "QEMU"), ("KVM", "KVM"), ("VMware", "VMware"), ("VirtualBox", "VirtualBox"),
            ("innotek", "VirtualBox"), ("Xen", "Xen"), ("Virtual Machine", "Hyper-V"),
            ("Bochs", "QEMU"), ("BHYVE", "bhyve"), ("Parallels", "Parallels"),
            ("Cloud Hypervisor", "Cloud Hypervisor"), ("Amazon EC2", "Amazon EC2"),
            ("Google Compute Engine", "Google Compute Engine"))
VIRTIO_VENDOR = 0x1AF4


@dataclass
class Platform:
    """vm: True (a guest), False (bare metal), None (no sign either way, e.g. an
    unreadable tree); vmm: the VMM's name when a sign says it; evidence: one phrase
    per sign found."""
    vm: bool | None
    vmm: str | None = None
    evidence: list[str] = field(default_factory=list)

    @property
    def text(self):
        if self.vm:
            return f"a virtual machine ({self.vmm})" if self.vmm else "a virtual machine"
        return "bare metal" if self.vm is False else "unknown (no sign of a VMM or of bare metal)"

    def to_json(self):
        return {"vm": self.vm, "vmm": self.vmm, "evidence": self.evidence}


def _cpuinfo(root):
    return paths.read_text(paths.under(root, "proc/cpuinfo"), "")


def _cpuinfo_field(text, name):
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def _dmi(root):
    """(sys_vendor, product_name), either None when absent."""
    base = paths.under(root, "sys/class/dmi/id")
    return (paths.read_text(os.path.join(base, "sys_vendor")),
            paths.read_text(os.path.join(base, "product_name")))


def _virtio(root):
    """Phrases for the virtio devices found (bus, or PCI vendor 1af4)."""
    out = []
    try:
        vdevs = sorted(os.listdir(paths.under(root, "sys/bus/virtio/devices")))
    except OSError:
        vdevs = []
    if vdevs:
        out.append(f"{len(vdevs)} virtio device(s) ({', '.join(vdevs[:3])}"
                   f"{', ...' if len(vdevs) > 3 else ''})")
    base = paths.under(root, "sys/bus/pci/devices")
    try:
        pcis = sorted(os.listdir(base))
    except OSError:
        pcis = []
    virtio = [b for b in pcis if paths.read_int(os.path.join(base, b, "vendor")) == VIRTIO_VENDOR]
    if virtio and not vdevs:
        out.append(f"PCI function(s) of vendor 1af4 (virtio): {', '.join(virtio[:3])}")
    return out


def probe(root="/"):
    """The Platform of the host under `root`."""
    ev, vmm = [], None
    cpu = _cpuinfo(root)
    flags = (_cpuinfo_field(cpu, "flags") or "").split()
    if "hypervisor" in flags:
        ev.append("/proc/cpuinfo flags include 'hypervisor'")
    vendor, product = _dmi(root)
    for word, name in DMI_VMMS:
        if any(word in (t or "") for t in (vendor, product)):
            vmm = name
            ev.append(f"DMI: {' '.join(t for t in (vendor, product) if t)}")
            break
    # POWER: pseries runs under a hypervisor (PowerVM or KVM), PowerNV on the metal.
    platform = _cpuinfo_field(cpu, "platform")
    model = (_cpuinfo_field(cpu, "model") or _cpuinfo_field(cpu, "machine") or "")
    dt_model = paths.read_text(paths.under(root, "proc/device-tree/model"), "").rstrip("\0")
    if "emulated by qemu" in f"{model} {dt_model}".lower():
        vmm = vmm or "QEMU"
        ev.append(f"POWER model: {model or dt_model}")
    if os.path.isdir(paths.under(root, "proc/device-tree/hypervisor")):
        compat = paths.read_text(paths.under(root, "proc/device-tree/hypervisor/compatible"), "")
        vmm = vmm or ("KVM" if "kvm" in compat.lower() else None)
        ev.append("/proc/device-tree/hypervisor exists" + (f" ({compat.strip(chr(0))})"
                                                         if compat else ""))
    if os.path.exists(paths.under(root, "proc/powerpc/lparcfg")) or platform == "pSeries":
        vmm = vmm or "PowerVM or KVM (pseries)"
        ev.append("a pseries (PAPR) guest: " + ("/proc/powerpc/lparcfg exists"
                                                if platform != "pSeries" else "cpuinfo platform pSeries"))
    ev += _virtio(root)
    if ev:
        return Platform(True, vmm, ev)
    if flags or vendor or platform:     # a cpuinfo/DMI that was read and shows no VMM
        why = []
        if flags:
            why.append("no 'hypervisor' cpuinfo flag")
        if vendor or product:
            why.append(f"DMI: {' '.join(t for t in (vendor, product) if t)}")
        if platform:
            why.append(f"cpuinfo platform {platform}")
        return Platform(False, None, why)
    return Platform(None, None, ["no /proc/cpuinfo flags, DMI or device tree to read"])


POWER = ("ppc64le", "ppc64")
NOIOMMU = ("or, with no IOMMU at all, vfio's noiommu mode: modprobe vfio "
           "enable_unsafe_noiommu_mode=1 (no DMA isolation: it taints the kernel; the groups "
           "are /dev/vfio/noiommu-N)")


def iommu_fix(platform, machine):
    """What gives this host an IOMMU: firmware on bare metal; in a VM, the VMM's
    vIOMMU or vfio's noiommu mode."""
    if machine in POWER:
        if platform.vm:
            return ("a pseries guest's IOMMU is the hypervisor's sPAPR TCE (QEMU's "
                    "spapr-pci-host-bridge has it by default): boot a kernel with the "
                    "powerpc IOMMU (Debian's 6.12; its 6.1 cannot bind vfio-pci), " + NOIOMMU)
        return ("boot a kernel with the powerpc IOMMU (pseries/powernv); "
                "Debian's 6.1 ppc64el cannot bind vfio-pci, 6.12 can")
    if platform.vm:
        return ("this is a VM: its IOMMU is the VMM's, not the firmware's. Give it a vIOMMU "
                "(QEMU: -machine q35 -device intel-iommu,intremap=on, with "
                "kernel-irqchip=split under KVM, and boot the guest with intel_iommu=on; or "
                "-device virtio-iommu-pci, which does not remap interrupts: add "
                "vfio_iommu_type1 allow_unsafe_interrupts=1), " + NOIOMMU)
    return ("enable VT-d/AMD-Vi in firmware and boot with intel_iommu=on (Intel; "
            "AMD-Vi is on by default once enabled in firmware)")


def remapping_fix(platform):
    """What turns on interrupt remapping (type1 needs it)."""
    if platform.vm:
        return ("this is a VM: give its vIOMMU interrupt remapping (QEMU: -device "
                "intel-iommu,intremap=on, with -machine kernel-irqchip=split under KVM), or "
                "modprobe vfio_iommu_type1 allow_unsafe_interrupts=1")
    return ("enable interrupt remapping in firmware and boot with intremap=on, or "
            "modprobe vfio_iommu_type1 allow_unsafe_interrupts=1")


# What runs where VFIO cannot: the model needs no card, the lab brings its own VM.
WITHOUT_VFIO = (("pyvfio repro --model", "the host model: every scenario and verdict, no card"),
                ("pyvfio lab ARCH", "a lab VM (x86_64, ppc64le) with a real kernel and QEMU's "
                                    "cards bound to vfio-pci"))
