"""A vfio-pci device: info, regions, IRQ info, SET_IRQS, reset; and open_device(),
the one open path: container and group (legacy VFIO) or iommufd and the device
cdev, opened together and closed in the right order (device first)."""

import errno
import os

from .. import uapi
from .._binding import ffi
from ..backend import IrqInfo
from ..errors import UsageError, VfioError
from ..fdowner import FdOwner
from ..host import interrupts, paths, pci, system
from ..host import iommufd as host_iommufd
from .container import IOMMU_TYPES, Container
from .group import Group
from .dma import Dma
from .iommufd import IommuFd, open_cdev
from .ioctl import vfio_ioctl
from .region import ACCESS_MODES, Region

_INTX = uapi.VFIO_PCI_INTX_IRQ_INDEX
_DATA_MASK = uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_DATA_BOOL | uapi.VFIO_IRQ_SET_DATA_EVENTFD
_ACTION_MASK = (uapi.VFIO_IRQ_SET_ACTION_MASK | uapi.VFIO_IRQ_SET_ACTION_UNMASK
                | uapi.VFIO_IRQ_SET_ACTION_TRIGGER)


class Device(FdOwner):
    """An open vfio-pci device fd.  Implements pyvfio.backend.IntxHost."""

    name = "vfio"
    guest_eoi = None      # IntxHost: the guest's EOI is DeviceIrq.eoi (no KVM resampler here)

    def __init__(self, fd, bdf, group=None, container=None, root="/", iommufd=None):
        self.fd = fd
        self.bdf = bdf
        self.group = group
        self.container = container
        self.iommufd = iommufd
        self.root = root
        self._dma = None
        self._regions = {}
        self._irq_set_cache = {}
        info = ffi.new("struct vfio_device_info *")
        info.argsz = ffi.sizeof(info[0])
        vfio_ioctl(fd, "VFIO_DEVICE_GET_INFO", uapi.VFIO_DEVICE_GET_INFO, ffi.buffer(info))
        self.flags = info.flags
        self.num_regions = info.num_regions
        self.num_irqs = info.num_irqs
        self.config = self.region(uapi.VFIO_PCI_CONFIG_REGION_INDEX)

    # --- regions -----------------------------------------------------------------
    def region_info(self, index):
        if not 0 <= index < self.num_regions:
            raise UsageError(f"region index {index} is out of range for {self.bdf} "
                             f"(it has {self.num_regions} regions)",
                             "use 0-5 for BARs, 7 for config space")
        ri = ffi.new("struct vfio_region_info *")
        ri.argsz = ffi.sizeof(ri[0])
        ri.index = index
        vfio_ioctl(self.fd, "VFIO_DEVICE_GET_REGION_INFO", uapi.VFIO_DEVICE_GET_REGION_INFO, ffi.buffer(ri))
        return ri.flags, ri.size, ri.offset

    def region(self, index, access="rw"):
        """The region `index`, opened for `access` ("mmap" or "rw"); cached per mode."""
        if access not in ACCESS_MODES:
            raise UsageError(f"unknown access mode {access!r}", "use mmap or rw")
        key = (index, access)
        if key not in self._regions:
            flags, size, offset = self.region_info(index)
            if size == 0:
                raise UsageError(f"region {index} of {self.bdf} is not implemented (size 0)",
                                 "pick a BAR the card has (pyvfio info BDF lists them)")
            self._regions[key] = Region(self.fd, index, flags, size, offset, access)
        return self._regions[key]

    def regions(self):
        """(index, flags, size, offset) of every region, including absent ones (size
        0: vfio-pci answers EINVAL for the VGA region of a card that is not VGA)."""
        out = []
        for i in range(self.num_regions):
            try:
                out.append((i, *self.region_info(i)))
            except VfioError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                out.append((i, 0, 0, 0))
        return out

    # --- interrupts ------------------------------------------------------------------
    def irq_info(self, index):
        if not 0 <= index < self.num_irqs:
            raise UsageError(f"IRQ index {index} is out of range for {self.bdf} (it has {self.num_irqs})",
                             "INTx is index 0")
        ii = ffi.new("struct vfio_irq_info *")
        ii.argsz = ffi.sizeof(ii[0])
        ii.index = index
        vfio_ioctl(self.fd, "VFIO_DEVICE_GET_IRQ_INFO", uapi.VFIO_DEVICE_GET_IRQ_INFO, ffi.buffer(ii))
        return IrqInfo(index, ii.flags, ii.count)

    def irqs(self):
        """IrqInfo of every IRQ index the device has (ERR exists only on PCIe: the
        kernel answers EINVAL for it on a conventional PCI card; count 0 then)."""
        out = []
        for i in range(self.num_irqs):
            try:
                out.append(self.irq_info(i))
            except VfioError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                out.append(IrqInfo(i, 0, 0))
        return out

    @staticmethod
    def encode_irq_set(index, flags, start=0, count=1, data=None):
        """The struct vfio_irq_set for SET_IRQS, its data[] from decoded `data` (EventFd
        objects or fd ints for DATA_EVENTFD, bytes for DATA_BOOL).  The one encoder:
        set_irqs below and the INTx sequences the C loop replays (pyvfio/intx.py) use
        it.  Arguments are checked here, so the kernel never sees a request we know
        to be wrong."""
        data_type, action = flags & _DATA_MASK, flags & _ACTION_MASK
        if bin(data_type).count("1") != 1 or bin(action).count("1") != 1 or flags & ~(_DATA_MASK | _ACTION_MASK):
            raise UsageError(f"SET_IRQS flags {flags:#x} must name exactly one DATA_ and one ACTION_ bit")
        if data_type == uapi.VFIO_IRQ_SET_DATA_NONE:
            payload, n = b"", count
        elif data_type == uapi.VFIO_IRQ_SET_DATA_BOOL:
            payload = bytes(data)
            n = len(payload)
        else:
            fds = [d if isinstance(d, int) else d.fileno() for d in data]
            payload, n = b"".join(fd.to_bytes(4, "little", signed=True) for fd in fds), len(fds)
        if n != count:
            raise UsageError(f"SET_IRQS: {count} entries announced, data has {n}")
        if index == _INTX and count and start + count > 1:
            raise UsageError("SET_IRQS: INTx has a single line (start 0, count 1)")
        buf = bytearray(uapi.IRQ_SET_HDR + len(payload))
        hdr = ffi.from_buffer("struct vfio_irq_set *", buf)
        hdr.argsz = len(buf)
        hdr.flags, hdr.index, hdr.start, hdr.count = flags, index, start, count
        ffi.release(hdr)
        buf[uapi.IRQ_SET_HDR:] = payload
        return buf

    def set_irqs(self, index, flags, start=0, count=1, data=None):
        """VFIO_DEVICE_SET_IRQS."""
        key = (index, flags, start, count)
        buf = self._irq_set_cache.get(key) if data is None else None
        if buf is None:
            buf = self.encode_irq_set(index, flags, start, count, data)
            if flags & _DATA_MASK == uapi.VFIO_IRQ_SET_DATA_NONE:
                self._irq_set_cache[key] = buf  # the per-interrupt unmask reuses one buffer
        vfio_ioctl(self.fd, "VFIO_DEVICE_SET_IRQS", uapi.VFIO_DEVICE_SET_IRQS, buf)

    def reset(self):
        if not self.flags & uapi.VFIO_DEVICE_FLAGS_RESET:
            raise VfioError("VFIO_DEVICE_RESET", errno.ENOTTY, f"{self.bdf} offers no reset method")
        vfio_ioctl(self.fd, "VFIO_DEVICE_RESET", uapi.VFIO_DEVICE_RESET)

    # --- host facts --------------------------------------------------------------------
    def host_state(self, irq="intx"):
        """The /proc/interrupts total of vfio's INTx line (or, `irq` "msi"/"msix",
        of its vector 0) and the physical DisINTx bit (vfio virtualises COMMAND, so
        read it from sysfs, not through the device fd)."""
        line = interrupts.vfio_line(self.bdf, irq, root=self.root)
        try:
            command = int.from_bytes(pci.read_config(self.bdf, self.root)[4:6], "little")
        except OSError:
            command = None
        return {"irq": line.irq if line else None, "irq_count": line.total if line else None,
                "chip": line.chip if line else None,
                "disintx": None if command is None else bool(command & uapi.PCI_COMMAND_INTX_DISABLE)}

    def line_holders(self):
        """(IRQ, the other actions on it) for the line INTx is routed to: the device
        is open, so enabled, so sysfs irq is the routed one (host/irq_route.py)."""
        irq = pci.device(self.bdf, self.root).irq
        line = interrupts.find(interrupts.read(self.root), irq=irq) if irq else None
        return irq, interrupts.other_holders(line, self.bdf)

    # --- lifetime --------------------------------------------------------------------
    @property
    def iommu(self):
        """How the device was opened: "iommufd" or the container's IOMMU type."""
        return "iommufd" if self.iommufd is not None else self.container.iommu_type

    def dma(self):
        """The device's DMA mappings (vfio/dma.py), closed with the device."""
        if self._dma is None:
            self._dma = Dma(self)
        return self._dma

    def close(self):
        """DMA unmapped, then the device, then group and container, or iommufd."""
        if self._dma is not None:
            dma, self._dma = self._dma, None
            try:
                dma.close()
            except VfioError:
                pass  # closing the container or iommufd below drops every mapping anyway
        for region in self._regions.values():
            region.close()
        self._regions.clear()
        self.close_fd()
        if self.group is not None:
            self.group.close()
            self.group = None
        if self.container is not None:
            self.container.close()
            self.container = None
        if self.iommufd is not None:
            self.iommufd.close()
            self.iommufd = None

    def __repr__(self):
        return f"<vfio Device {self.bdf} fd={self.fd}>"


def iommu_group_of(text, root="/"):
    bdf = pci.require(text, root)
    dev = pci.device_dir(bdf, root)
    driver = os.path.join(dev, "driver")
    drv = os.path.basename(os.readlink(driver)) if os.path.islink(driver) else None
    if drv != "vfio-pci":
        raise UsageError(f"{bdf} is bound to {drv or 'no driver'}, not vfio-pci",
                         f"bind it first: pyvfio bind {bdf}")
    link = os.path.join(dev, "iommu_group")
    if not os.path.islink(link):
        raise VfioError("find IOMMU group", errno.ENODEV, f"{bdf} has no IOMMU group",
                        "enable the IOMMU (intel_iommu=on / amd_iommu=on), or use vfio's noiommu mode")
    return bdf, int(os.path.basename(os.readlink(link)))


# --iommu: auto, the container (with the best IOMMU type or a named one), iommufd.
IOMMU_CHOICES = ("auto", "container", "iommufd", *IOMMU_TYPES)
IOMMU_HELP = ("container: legacy VFIO (/dev/vfio/vfio, the best IOMMU type; or name one: "
              + ", ".join(IOMMU_TYPES) + "); iommufd: /dev/iommu and the device cdev; "
              "auto (default): iommufd where the kernel has the device cdev")


def _iommufd_unavailable(bdf, root):
    kernel, machine = system.uname(root)
    return host_iommufd.unavailable(machine, kernel, bdf, root, uapi.IOMMUFD_UAPI)


def open_device(text, iommu=None, root="/"):
    """Open a device through VFIO.  `iommu` (IOMMU_CHOICES; None is auto): through the
    container (group attached, IOMMU set, device fd from the group) or through
    iommufd (device cdev bound to /dev/iommu, attached to its IOAS)."""
    iommu = iommu or "auto"
    if iommu not in IOMMU_CHOICES:
        raise UsageError(f"unknown --iommu {iommu!r}", f"use one of: {', '.join(IOMMU_CHOICES)}")
    bdf, number = iommu_group_of(text, root)
    if iommu in ("auto", "iommufd"):
        why = _iommufd_unavailable(bdf, root)
        if why is None:
            return _open_iommufd(bdf, root)
        if iommu == "iommufd":
            raise VfioError("open through iommufd", errno.ENODEV, *why)
    return _open_container(bdf, number, None if iommu in ("auto", "container") else iommu, root)


def _open_iommufd(bdf, root):
    ifd = IommuFd(paths.under(root, host_iommufd.DEV_IOMMU))
    try:
        fd = open_cdev(paths.under(root, "dev/vfio/devices", host_iommufd.cdev_name(bdf, root)), ifd)
        return Device(fd, bdf, root=root, iommufd=ifd)
    except BaseException:
        ifd.close()
        raise


def _open_container(bdf, number, iommu_type, root):
    dev_root = os.path.join(root, "dev/vfio")
    container = Container(os.path.join(dev_root, "vfio"))
    group = None
    try:
        group = Group(number, dev_root)
        group.set_container(container)
        container.set_iommu(iommu_type)
        fd = group.get_device_fd(bdf)
        return Device(fd, bdf, group, container, root)
    except BaseException:
        if group is not None:
            group.close()
        container.close()
        raise
