"""The words pyvfio's options, profiles, scenarios and result files share: one enum
per vocabulary, and nowhere else a list of them (docs/vocabulary.md).

A member is a `StrEnum`: it compares equal to its word and JSON writes it as the
word, so files written before (and scenario and profile files) keep their meaning.
Standard library only: every layer may import it."""

from enum import StrEnum


class Access(StrEnum):
    """How a BAR's registers are reached."""
    MMAP = "mmap"      # the region mapped into our address space
    RW = "rw"          # pread/pwrite on the device fd


class Unmask(StrEnum):
    """Who unmasks INTx after each interrupt, and how."""
    IOCTL = "ioctl"          # pyvfio, by the VFIO_DEVICE_SET_IRQS ioctl
    EVENTFD = "eventfd"      # pyvfio, by writing vfio's unmask eventfd
    RESAMPLE = "resample"    # KVM, by its resample irqfd at the guest's EOI (a KVM guest only)
    NONE = "none"            # nobody: a negative control (a KVM guest only)


VFIO_UNMASK = (Unmask.IOCTL, Unmask.EVENTFD)   # the two ways vfio-pci itself offers


class Policy(StrEnum):
    """The host IRQ's genirq disable policy.  `kernel` leaves the kernel's as it is
    (an older word for it, `default`, is still read: OLD_POLICY); lazy and unlazy are
    set through the pyvfio_policy module (tools/policy)."""
    KERNEL = "kernel"
    LAZY = "lazy"
    UNLAZY = "unlazy"


OLD_POLICY = {"default": Policy.KERNEL}     # `pyvfio lab --policy default`, until the next release
SWITCHED = (Policy.LAZY, Policy.UNLAZY)     # the policies the module sets


class Irq(StrEnum):
    """The interrupt a run drives."""
    INTX = "intx"
    MSI = "msi"
    MSIX = "msix"


class CardKind(StrEnum):
    """The model host's card: whether it implements PCI 2.3 INTx masking (DisINTx), so
    that vfio-pci masks at the card, or not, so that it masks at the controller."""
    PCI23 = "2.3"
    NON23 = "non-2.3"


class Controller(StrEnum):
    """The model host's interrupt controller."""
    XIVE = "xive"
    XICS = "xics"
    IOAPIC = "ioapic"


class Engine(StrEnum):
    """Where the hot loop runs."""
    C = "c"
    PYTHON = "python"


class Source(StrEnum):
    """Where a run's interrupts come from."""
    RAISE = "raise"
    EXTERNAL = "external"
    DMA = "dma"


class Guest(StrEnum):
    """Who services the interrupt: pyvfio's userspace toy, or a KVM vCPU."""
    TOY = "toy"
    KVM = "kvm"


class Irqchip(StrEnum):
    """The KVM guest's interrupt controller."""
    PIC = "pic"
    IOAPIC = "ioapic"


class Arch(StrEnum):
    """The lab's architectures."""
    X86_64 = "x86_64"
    PPC64LE = "ppc64le"


def words(vocabulary):
    """The words of an enum, in order, as plain strings (argparse choices, messages)."""
    return tuple(m.value for m in vocabulary)
