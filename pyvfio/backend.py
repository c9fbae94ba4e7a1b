"""The seam between the guest side (toy guest, INTx engine) and a host.

Two hosts implement it: `pyvfio.vfio.Device` (a real vfio-pci device through
/dev/vfio) and the model host's device (`pyvfio.sim`), which replaces the kernel,
the interrupt controller and the card, never the guest.  The guest side talks only
to this interface, so one copy of the INTx protocol serves both.
"""

from dataclasses import dataclass
from typing import Protocol, Sequence


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


class IntxHost(Protocol):
    """What the INTx engine needs from a host."""
    name: str           # "vfio" (real) or "model"
    bdf: str            # PCI address ("0000:00:03.0"; a made-up one for the model)

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
