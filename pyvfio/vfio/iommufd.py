"""iommufd: /dev/iommu with one IOAS (an I/O address space), and a vfio device cdev
bound to it and attached to the IOAS: the container-free way to open a device
(VFIO_DEVICE_BIND_IOMMUFD, IOMMU_IOAS_ALLOC, VFIO_DEVICE_ATTACH_IOMMUFD_PT)."""

import errno
import os

from .. import uapi
from .._binding import ffi
from ..errors import VfioError
from ..fdowner import FdOwner
from .ioctl import vfio_ioctl


def _new(struct):
    """A zeroed struct with its length field set (iommufd's is `size`, vfio's `argsz`)."""
    s = ffi.new(f"struct {struct} *")
    if "size" in dict(ffi.typeof(s[0]).fields):
        s.size = ffi.sizeof(s[0])
    else:
        s.argsz = ffi.sizeof(s[0])
    return s


def _open(path, what):
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        hint = ("run as root or get access to it" if exc.errno in (errno.EACCES, errno.EPERM)
                else "another process holds the device: stop it first" if exc.errno == errno.EBUSY
                else "use --iommu container")
        raise VfioError(f"open {path}", exc.errno, f"cannot open {what} {path}: "
                        f"{os.strerror(exc.errno)}", hint) from None


class IommuFd(FdOwner):
    """An open /dev/iommu and the IOAS its devices attach to."""

    def __init__(self, path="/dev/iommu"):
        self.fd = _open(path, "iommufd")
        try:
            alloc = _new("iommu_ioas_alloc")
            vfio_ioctl(self.fd, "IOMMU_IOAS_ALLOC", uapi.IOMMU_IOAS_ALLOC, ffi.buffer(alloc))
            self.ioas_id = alloc.out_ioas_id
        except BaseException:
            self.close()
            raise

    def iova_ranges(self):
        """The IOVAs the IOAS allows now, as inclusive (first, last) pairs: every
        attached device's IOMMU narrows them (its aperture, its reserved regions such
        as x86's MSI window), so ask after attaching (IOMMU_IOAS_IOVA_RANGES)."""
        n = 8
        while True:
            ranges = ffi.new("struct iommu_iova_range[]", n)
            r = _new("iommu_ioas_iova_ranges")
            r.ioas_id, r.num_iovas = self.ioas_id, n
            r.allowed_iovas = int(ffi.cast("uintptr_t", ranges))
            try:
                vfio_ioctl(self.fd, "IOMMU_IOAS_IOVA_RANGES", uapi.IOMMU_IOAS_IOVA_RANGES, ffi.buffer(r))
            except VfioError as exc:
                if exc.errno == errno.EMSGSIZE and r.num_iovas > n:   # more than n: ask again
                    n = r.num_iovas
                    continue
                raise
            return [(ranges[i].start, ranges[i].last) for i in range(r.num_iovas)]

    def map(self, vaddr, size, iova):
        """IOMMU_IOAS_MAP at a fixed IOVA, readable and writable by the device."""
        m = _new("iommu_ioas_map")
        m.flags = (uapi.IOMMU_IOAS_MAP_FIXED_IOVA | uapi.IOMMU_IOAS_MAP_READABLE
                   | uapi.IOMMU_IOAS_MAP_WRITEABLE)
        m.ioas_id, m.user_va, m.length, m.iova = self.ioas_id, vaddr, size, iova
        vfio_ioctl(self.fd, "IOMMU_IOAS_MAP", uapi.IOMMU_IOAS_MAP, ffi.buffer(m))

    def unmap(self, iova, size):
        u = _new("iommu_ioas_unmap")
        u.ioas_id, u.iova, u.length = self.ioas_id, iova, size
        vfio_ioctl(self.fd, "IOMMU_IOAS_UNMAP", uapi.IOMMU_IOAS_UNMAP, ffi.buffer(u))

    def bind(self, device_fd):
        """Bind a device cdev to this iommufd and attach it to the IOAS (the device
        fd may be used for anything else only after this)."""
        b = _new("vfio_device_bind_iommufd")
        b.iommufd = self.fd
        try:
            vfio_ioctl(device_fd, "VFIO_DEVICE_BIND_IOMMUFD", uapi.VFIO_DEVICE_BIND_IOMMUFD, ffi.buffer(b))
        except VfioError as exc:
            # vfio_df_open (drivers/vfio/vfio_main.c): a device already open, through
            # its cdev or its group, cannot be bound again (EINVAL, not EBUSY)
            if exc.errno != errno.EINVAL:
                raise
            raise VfioError("VFIO_DEVICE_BIND_IOMMUFD", errno.EBUSY,
                            "the device is busy: it is already open (by this or another process), "
                            "and VFIO_DEVICE_BIND_IOMMUFD binds it only once (EINVAL)",
                            "another process holds the device: stop it first") from None
        a = _new("vfio_device_attach_iommufd_pt")
        a.pt_id = self.ioas_id
        vfio_ioctl(device_fd, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                   ffi.buffer(a), hint="the IOMMU driver may have no paging domain for this device")

    # close() (FdOwner): closing the fd destroys the IOAS and every mapping in it


def open_cdev(path, iommufd):
    """The device fd of a vfio cdev, bound to `iommufd` and attached to its IOAS."""
    fd = _open(path, "the vfio device cdev")
    try:
        iommufd.bind(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd
