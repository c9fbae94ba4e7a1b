"""The seam between the guest side (toy guest, INTx engine) and a host.

Two hosts implement it: `pyvfio.vfio.Device` (a real vfio-pci device through
/dev/vfio) and the model host's device (`pyvfio.sim`), which replaces the kernel,
the interrupt controller and the card, never the guest.  The guest side talks only
to this interface, so one copy of the INTx protocol serves both.
"""

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence


@dataclass(frozen=True)
class IrqInfo:
    """struct vfio_irq_info."""
    index: int
    flags: int
    count: int


class Region(Protocol):
    """One device region (a BAR, or config space): bounded, width-checked access.

    `read`/`write` raise AccessError for an offset/width outside the region or a
    width the region refuses; they never touch memory outside it.  Values are the
    CPU's view of the register (native byte order for BARs, like a load from an
    mmap; little-endian for config space, which is little-endian by PCI's rules).
    """
    index: int
    size: int
    flags: int

    def read(self, offset: int, width: int) -> int: ...
    def write(self, offset: int, width: int, value: int) -> None: ...

    def accessor(self, offset: int, width: int, write: bool) -> Callable:
        """One register's access, checked here once (the hot path checks nothing):
        `fn(value)` writes, `fn()` reads.  A region with nothing to gain from that
        (the model) may return its checked read/write bound to the register."""


class IntxHost(Protocol):
    """What the INTx engine needs from a host: every member a caller uses.  The
    optional capabilities are attributes that are None on a host without them;
    callers test them for None, never probe for them."""
    name: str           # "vfio" (real) or "model"
    bdf: str            # PCI address ("0000:00:03.0"; a made-up one for the model)
    fd: int | None      # the device fd the encoded SET_IRQS steps name; None: the model

    # (index, flags, start, count, data) -> the struct vfio_irq_set bytes the ioctl
    # takes, which the C loop replays; None: steps stay decoded (through set_irqs)
    encode_irq_set: Callable[..., bytes] | None
    # () -> (IRQ, [the line's other holders]) to explain an EBUSY from the trigger
    line_holders: Callable[[], tuple] | None
    # () -> the guest's EOI when KVM's resampler serves it (else the guest's EOI is
    # DeviceIrq.eoi, from userspace)
    guest_eoi: Callable[[], None] | None
    # () -> the device's DMA mappings (vfio/dma.py), for --source dma
    dma: Callable[[], object] | None

    def irq_info(self, index: int) -> IrqInfo: ...

    def set_irqs(self, index: int, flags: int, start: int = 0, count: int = 1,
                 data: Sequence | bytes | None = None) -> None:
        """VFIO_DEVICE_SET_IRQS.  `data`: None for DATA_NONE, bytes for DATA_BOOL,
        a sequence of EventFd objects (or -1 to unregister) for DATA_EVENTFD."""

    def region(self, index: int, access: str = "rw") -> Region:
        """Region `index` (0-5 BARs, 7 config), accessed by "mmap" or "rw"
        (pread/pwrite); a host without mmap (the model) may treat both alike."""

    def host_state(self, irq: str = "intx") -> dict:
        """What the host says about the INTx line (or, `irq` "msi"/"msix", MSI
        vector 0) right now: at least `irq_count` (its /proc/interrupts total, or
        None if unknown) and `disintx` (the physical COMMAND.INTX_DISABLE bit, or
        None if unknown)."""
