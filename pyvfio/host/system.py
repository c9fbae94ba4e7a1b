"""Host facts that decide whether and how VFIO INTx can work here."""

import os
from dataclasses import dataclass, field

from . import inuse, iommufd, paths, pci, virt

VFIO_PCI_PARAMS = "sys/module/vfio_pci/parameters"


@dataclass
class System:
    """Stable JSON keys: kernel, machine, vfio_pci_loaded, nointxmask (true/false, null
    if vfio-pci is not loaded), dev_vfio (the directory exists), vfio_container
    (/dev/vfio/vfio exists), iommu_groups (count), iommu_units (/sys/class/iommu
    entries: dmar0, ivhd0...), cmdline_iommu (IOMMU words on the kernel command line),
    vfio_pci_module ("loaded", "module" (can be modprobed), "absent" (no module for
    this kernel), "no-module-support" (the kernel cannot load modules)), dev_iommu
    (/dev/iommu exists: iommufd), noiommu (vfio's enable_unsafe_noiommu_mode: true/false,
    null if vfio is not loaded), platform (virt.Platform.to_json: vm, vmm, evidence)."""
    kernel: str | None
    machine: str | None
    vfio_pci_loaded: bool
    nointxmask: bool | None
    dev_vfio: bool
    vfio_container: bool
    iommu_groups: int
    iommu_units: list[str] = field(default_factory=list)
    cmdline_iommu: list[str] = field(default_factory=list)
    vfio_pci_module: str = "unknown"
    dev_iommu: bool = False
    irq_threads_forced: bool = False    # PREEMPT_RT or threadirqs: genirq threads vfio's handler
    vfio_pci_core: dict = field(default_factory=dict)   # the module loaded: loaded_module()
    noiommu: bool | None = None
    platform: virt.Platform = field(default_factory=lambda: virt.Platform(None))

    def to_json(self):
        return {**self.__dict__, "platform": self.platform.to_json()}

    @property
    def no_iommu(self):
        """The kernel made no IOMMU groups and lists no IOMMU unit."""
        return self.iommu_groups == 0 and not self.iommu_units


def node_access(path):
    """"missing", "denied" (not readable and writable by us) or "ok" for a /dev node."""
    if not os.path.exists(path):
        return "missing"
    return "ok" if os.access(path, os.R_OK | os.W_OK) else "denied"


def allow_unsafe_interrupts(root="/"):
    """vfio_iommu_type1's allow_unsafe_interrupts (None if the module is not loaded)."""
    text = paths.read_text(paths.under(root, "sys/module/vfio_iommu_type1/parameters/"
                                             "allow_unsafe_interrupts"))
    return None if text is None else text in ("Y", "1")


def uname(root="/"):
    """Kernel release and machine: os.uname() for the real host, procfs for a tree."""
    if root == "/":
        u = os.uname()
        return u.release, u.machine
    return (paths.read_text(paths.under(root, "proc/sys/kernel/osrelease")),
            paths.read_text(paths.under(root, "proc/sys/kernel/arch")))


def nointxmask(root="/"):
    """vfio-pci's nointxmask as the loaded module has it (Y/N), None if not loaded.
    The module reads it once, at load: changing the sysfs file later does nothing."""
    text = paths.read_text(paths.under(root, VFIO_PCI_PARAMS, "nointxmask"))
    return None if text is None else text in ("Y", "1")


def irq_threads_forced(root="/"):
    """force_irqthreads(): a PREEMPT_RT kernel (/sys/kernel/realtime reads 1) or
    `threadirqs` on the command line.  genirq then runs vfio's INTx handler in a
    thread, with the line masked at the controller until it is done (IRQF_ONESHOT,
    irq_setup_forced_threading)."""
    if paths.read_text(paths.under(root, "sys/kernel/realtime")) == "1":
        return True
    return "threadirqs" in paths.read_text(paths.under(root, "proc/cmdline"), "").split()


def loaded_module(root="/"):
    """What /sys/module says of the vfio-pci-core (or, before 5.15, vfio-pci) loaded:
    its name, srcversion (a rebuilt module has one: pyvfio/lab/vfio_build.py; Debian's
    have none) and taint ("O": out of tree, "E": unsigned).  {} when none is loaded."""
    for name in ("vfio-pci-core", "vfio-pci"):
        d = paths.under(root, "sys/module", name.replace("-", "_"))
        if os.path.isdir(d):
            return {"module": name, "srcversion": paths.read_text(os.path.join(d, "srcversion"), ""),
                    "taint": paths.read_text(os.path.join(d, "taint"), "")}
    return {}


def noiommu_mode(root="/"):
    """vfio's enable_unsafe_noiommu_mode (None if vfio is not loaded or was built
    without CONFIG_VFIO_NOIOMMU): VFIO without an IOMMU, groups /dev/vfio/noiommu-N."""
    text = paths.read_text(paths.under(root, "sys/module/vfio/parameters/enable_unsafe_noiommu_mode"))
    return None if text is None else text in ("Y", "1")


def vfio_pci_loaded(root="/"):
    return os.path.isdir(paths.under(root, pci.DRIVERS, "vfio-pci"))


def vfio_pci_module(release, root="/"):
    """Can vfio-pci be had on this kernel?  See System.vfio_pci_module."""
    if vfio_pci_loaded(root):
        return "loaded"
    if not os.path.exists(paths.under(root, "proc/modules")):
        return "no-module-support"          # CONFIG_MODULES=n: built in or nothing
    moddir = paths.under(root, "lib/modules", release or "")
    builtin = paths.read_text(os.path.join(moddir, "modules.builtin"), "")
    if "vfio-pci.ko" in builtin:
        return "module"                     # built in but not bound yet: modprobe is a no-op
    pci_dir = os.path.join(moddir, "kernel/drivers/vfio/pci")
    try:
        if any(n.startswith("vfio-pci.ko") for n in os.listdir(pci_dir)):
            return "module"
    except OSError:
        pass
    return "absent"


def probe(root="/"):
    kernel, machine = uname(root)
    try:
        units = sorted(os.listdir(paths.under(root, "sys/class/iommu")))
    except OSError:
        units = []
    cmdline = paths.read_text(paths.under(root, "proc/cmdline"), "").split()
    return System(
        kernel=kernel, machine=machine,
        vfio_pci_loaded=vfio_pci_loaded(root),
        nointxmask=nointxmask(root),
        dev_vfio=os.path.isdir(paths.under(root, "dev/vfio")),
        vfio_container=os.path.exists(paths.under(root, "dev/vfio/vfio")),
        iommu_groups=len(pci.iommu_groups(root)),
        iommu_units=units,
        cmdline_iommu=[w for w in cmdline if "iommu" in w or w.startswith("vfio")],
        vfio_pci_module=vfio_pci_module(kernel, root),
        dev_iommu=iommufd.dev_iommu(root),
        irq_threads_forced=irq_threads_forced(root),
        vfio_pci_core=loaded_module(root),
        noiommu=noiommu_mode(root),
        platform=virt.probe(root),
    )


NO_IOMMU = "no IOMMU: the kernel made no IOMMU groups"
NO_DEV_VFIO = ("/dev/vfio does not exist",
               "it appears once the vfio modules are loaded and an IOMMU is on")


def system_blockers(system):
    """The host-wide part of vfio_blockers (no IOMMU, no vfio-pci, no /dev/vfio): what
    stops every device, as (reason, fix) pairs.  doctor uses it without a device."""
    out = _host_blockers(system)
    if not system.dev_vfio:
        out.append(NO_DEV_VFIO)
    return out


def _host_blockers(system):
    out = []
    if system.no_iommu and not system.noiommu:
        out.append((NO_IOMMU, virt.iommu_fix(system.platform, system.machine)))
    if system.vfio_pci_module == "no-module-support":
        out.append(("this kernel has no vfio-pci and cannot load modules",
                    "boot a kernel built with CONFIG_VFIO_PCI (any distribution kernel), "
                    "or use a lab VM (pyvfio lab)"))
    elif system.vfio_pci_module == "absent":
        out.append((f"no vfio-pci module for kernel {system.kernel}",
                    "install the kernel's modules package (Debian: linux-image-*), "
                    "then modprobe vfio-pci"))
    elif not system.vfio_pci_loaded:
        out.append(("the vfio-pci driver is not loaded",
                    "modprobe vfio-pci (add nointxmask=1 to force controller masking)"))
    return out


def vfio_impossible(system):
    """The host-wide blockers no modprobe lifts (no IOMMU, no vfio-pci for this
    kernel): the reasons, empty when VFIO could run here."""
    return [r for r, _f in _host_blockers(system) if r != "the vfio-pci driver is not loaded"]


def vfio_blockers(system, dev, root="/"):
    """Why `dev` cannot be opened through VFIO on this host: a list of
    (reason, fix) pairs, empty when nothing in sysfs stands in the way."""
    out = _host_blockers(system)
    if dev.is_bridge:
        out.append((f"{dev.bdf} is a bridge ({dev.class_name}): vfio-pci takes only endpoint "
                    "functions", "pick a card (pyvfio list shows them)"))
    elif dev.driver != "vfio-pci":
        busy = inuse.host_uses(dev.bdf, root)
        fix = (f"the host is using it ({busy[0]}): pick a spare card" if busy
               else f"pyvfio bind {dev.bdf}")
        out.append((f"{dev.bdf} is bound to {dev.driver or 'no driver'}, not vfio-pci", fix))
    if not system.dev_vfio:
        out.append(NO_DEV_VFIO)
    elif dev.driver == "vfio-pci" and dev.iommu_group is not None:
        node = paths.under(root, "dev/vfio", str(dev.iommu_group))
        if not os.path.exists(node):
            out.append((f"/dev/vfio/{dev.iommu_group} does not exist",
                        "check dmesg for vfio-pci probe errors"))
    return out
