"""What a lab run asks for, checked before anything is downloaded or booted."""
import dataclasses
import shutil

from ..errors import UsageError
from ..vocabulary import Controller, Policy, words
from .errors import LabUnavailable

# Cards QEMU emulates that pyvfio has profiles for: QEMU device, vendor:device.
CARDS = {
    "edu": ("edu", "1234:11e8"),
    # Interrupt mitigation would add a ~128 us floor per interrupt.
    "e1000": ("e1000,mitigation=off", "8086:100e"),
    "rtl8139": ("rtl8139", "10ec:8139"),
    # driven by a profile written from Intel's 8255x manual (profiles/builtin/i8255x.toml)
    "i82557b": ("i82557b", "8086:1229"),
    # One 16550A behind I/O BAR0 (hw/char/serial-pci.c); its chardev is fed by the host.
    "pci-serial": ("pci-serial", "1b36:0002"),
    # PCIe, with MSI and MSI-X (five vectors) beside INTx (profiles/builtin/e1000e.toml)
    "e1000e": ("e1000e", "8086:10d3"),
}

# The builtin profile that drives each card (pyvfio/profiles/builtin).
PROFILES = {"edu": "edu", "e1000": "e1000", "rtl8139": "rtl8139", "i82557b": "i8255x",
            "pci-serial": "uart16550", "e1000e": "e1000e"}

# Cards whose QEMU device takes a chardev (the qdev property): the lab gives each one
# a unix socket in the run folder, and lab/feeder.py writes into it what the guest
# asks for (external interrupts from the host).
FED_CARDS = {"pci-serial": "chardev"}

# Cards a run can leave on their guest driver (--host-card), and that driver's module:
# a host-driven device on a vfio card's INTx line, for the shared-line tests.  x86_64
# only: q35 puts two slots four apart on one PIRQ (lab/qemu.py).
HOST_DRIVERS = {"e1000": "e1000"}

ARCHES = {
    "x86_64": {
        "debarch": "amd64",
        "qemu": "qemu-system-x86_64",
        # 6.1's vfio-pci lacks the unlazy fix, 6.12 has it: a natural before/after.
        "kernels": {
            "6.1": r"linux-image-6\.1\.0-\d+-amd64-unsigned",
            "6.12": r"linux-image-6\.12\.\d+\+deb12-amd64-unsigned",
            # PREEMPT_RT: genirq threads every handler not marked IRQF_NO_THREAD
            "6.12-rt": r"linux-image-6\.12\.\d+\+deb12-rt-amd64-unsigned",
        },
        "default_kernel": "6.12",
        "ics": (Controller.IOAPIC.value,),
        # No iommufd as shipped: Debian's 6.12 (amd64 and ppc64el) has CONFIG_IOMMUFD
        # unset and so no iommufd.ko, /dev/iommu or vfio device cdev (--iommufd builds
        # them: vfio_build.py); 6.1 predates both.
        "modules": ["9p", "9pnet_virtio", "virtio_pci", "vfio_pci", "vfio_iommu_type1"],
        # /dev/kvm in the guest (tests/lab/test_kvm.py): AMD's, since TCG emulates SVM
        "kvm_modules": ["kvm_amd"],
        "busybox": "host",
    },
    "ppc64le": {
        "debarch": "ppc64el",
        "qemu": "qemu-system-ppc64",
        # bookworm's 6.1 ppc64el build cannot bind vfio-pci (no powerpc iommu_ops).
        "kernels": {"6.12": r"linux-image-6\.12\.\d+\+deb12-powerpc64le",
                    # 64 KiB pages (what RHEL and Fedora on POWER run)
                    "6.12-64k": r"linux-image-6\.12\.\d+\+deb12-powerpc64le-64k"},
        "default_kernel": "6.12",
        "ics": (Controller.XIVE.value, Controller.XICS.value),
        "modules": ["9p", "9pnet_virtio", "virtio_pci", "vfio_pci", "vfio_iommu_spapr_tce"],
        "busybox": "deb",
    },
}

POLICIES = words(Policy)


@dataclasses.dataclass
class LabConfig:
    arch: str
    kernel: str = None
    cards: tuple = ("edu",)
    host_cards: tuple = ()      # host_cards[i] shares the INTx line of cards[i]
    ic: str = None
    nointxmask: int = 0
    policy: str = Policy.KERNEL
    vfio: str = "shipped"       # vfio-pci: shipped, prefix, patch:FILE (lab/vfio_build.py)
    iommufd: bool = False       # iommufd.ko + vfio with its device cdev, rebuilt (lab/vfio_build.py)
    timeout: float = 300.0
    command: tuple = ()
    verbose: bool = False
    # vendor:device of each qemu: card, asked of QEMU before the boot (lab/qdevice.py)
    qemu_ids: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.arch not in ARCHES:
            raise UsageError(f"unknown lab architecture '{self.arch}'",
                             f"choose one of {', '.join(ARCHES)}")
        a = ARCHES[self.arch]
        self.kernel = self.kernel or a["default_kernel"]
        if self.kernel not in a["kernels"]:
            raise UsageError(f"no {self.kernel} kernel for the {self.arch} lab",
                             f"choose --kernel {' or '.join(a['kernels'])}")
        self.cards = tuple(self.cards) or ("edu",)
        from . import qdevice
        for c in self.cards:
            if qdevice.is_qemu_card(c):
                qdevice.check_syntax(c)
            elif c not in CARDS:
                raise UsageError(f"unknown card '{c}'",
                                 f"choose from {', '.join(CARDS)}, or bring one: qemu:DEVICE[,PROP=V...]")
        self.host_cards = tuple(self.host_cards)
        for c in self.host_cards:
            if c not in HOST_DRIVERS:
                raise UsageError(f"no guest driver for host card '{c}'",
                                 f"choose from {', '.join(HOST_DRIVERS)}")
        if self.host_cards and self.arch != "x86_64":
            raise UsageError("--host-card is for the x86_64 lab only",
                             "q35 is where the lab knows which slots share an INTx line")
        if len(self.host_cards) > len(self.cards):
            raise UsageError(f"{len(self.host_cards)} host cards for {len(self.cards)} vfio card(s)",
                             "each --host-card shares the line of the --card in the same position")
        self.ic = self.ic or a["ics"][0]
        if self.ic not in a["ics"]:
            raise UsageError(f"interrupt controller '{self.ic}' is not available on {self.arch}",
                             f"choose --ic {' or '.join(a['ics'])}")
        if self.nointxmask not in (0, 1):
            raise UsageError(f"--nointxmask must be 0 or 1, not {self.nointxmask}")
        if self.policy not in POLICIES:
            raise UsageError(f"unknown policy '{self.policy}'", f"choose {', '.join(POLICIES)}")
        from . import vfio_build
        vfio_build.parse(self.vfio)   # a bad variant or patch file: one line, now
        if self.iommufd and vfio_build.iommufd_refusal(self):
            raise UsageError(vfio_build.iommufd_refusal(self), "use --kernel 6.12 on x86_64")
        if not self.timeout or self.timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds")

    def pci_id(self, card):
        """The vendor:device the guest's init binds for this card."""
        return self.qemu_ids[card] if card in self.qemu_ids else CARDS[card][1]

    @property
    def spec(self):
        return ARCHES[self.arch]

    def qemu_binary(self):
        path = shutil.which(self.spec["qemu"])
        if path is None:
            raise LabUnavailable("qemu", f"{self.spec['qemu']} is not installed",
                                 hint="install the lab's packages: apt-get install $(cat tools/lab-packages.txt)")
        return path
