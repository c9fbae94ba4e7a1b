"""Device regions: config space and BARs, accessed by mmap or by pread/pwrite.

Every access is checked against the region's size, its read/write flags and the
width (1, 2, 4 or 8 bytes, naturally aligned) before it reaches the device, so a
bad offset is an AccessError, never a wild pointer.  I/O-port BARs never carry the
mmap flag: they are always accessed with pread/pwrite.
"""

import mmap
import os
from functools import partial

from .. import uapi
from .._binding import ffi, lib
from ..errors import AccessError, VfioError
from ..vocabulary import Access, words

WIDTHS = (1, 2, 4, 8)
ACCESS_MODES = words(Access)
REGION_NAMES = {uapi.VFIO_PCI_CONFIG_REGION_INDEX: "config", uapi.VFIO_PCI_ROM_REGION_INDEX: "ROM",
                uapi.VFIO_PCI_VGA_REGION_INDEX: "VGA",
                **{uapi.VFIO_PCI_BAR0_REGION_INDEX + i: f"BAR{i}" for i in range(6)}}


class Region:
    """One region of a device fd.  `offset` is the region's offset in the fd."""

    def __init__(self, fd, index, flags, size, offset, access="rw"):
        self.fd = fd
        self.index = index
        self.flags = flags
        self.size = size
        self.offset = offset
        self.name = REGION_NAMES.get(index, f"region{index}")
        self.access = access
        self._mmap = None
        self.ptr = ffi.NULL  # base pointer of the mapping, for the C hot loop
        if access == "mmap":
            self._map()

    @property
    def mmappable(self):
        return bool(self.flags & uapi.VFIO_REGION_INFO_FLAG_MMAP)

    def _map(self):
        if not self.mmappable:
            raise AccessError("mmap", f"{self.name} cannot be mmapped (an I/O-port BAR or config space)",
                              "use pread/pwrite access (--access rw)")
        prot = 0
        if self.flags & uapi.VFIO_REGION_INFO_FLAG_READ:
            prot |= mmap.PROT_READ
        if self.flags & uapi.VFIO_REGION_INFO_FLAG_WRITE:
            prot |= mmap.PROT_WRITE
        length = -(-self.size // mmap.PAGESIZE) * mmap.PAGESIZE  # BARs below a page still map
        try:
            self._mmap = mmap.mmap(self.fd, length, mmap.MAP_SHARED, prot, offset=self.offset)
        except OSError as exc:
            raise VfioError(f"mmap {self.name}", exc.errno) from None
        self.ptr = ffi.from_buffer(self._mmap)

    def check(self, offset, width, write):
        if width not in WIDTHS:
            raise AccessError("access", f"unsupported access width {width}", "use 1, 2, 4 or 8 bytes")
        if offset < 0 or offset + width > self.size:
            raise AccessError("access", f"{width}-byte access at {offset:#x} is past the end of "
                                        f"{self.name} ({self.size:#x} bytes)",
                              "keep register offsets inside the region")
        if offset % width:
            raise AccessError("access", f"{width}-byte access at {offset:#x} in {self.name} is not aligned",
                              f"use an offset that is a multiple of {width}")
        need = uapi.VFIO_REGION_INFO_FLAG_WRITE if write else uapi.VFIO_REGION_INFO_FLAG_READ
        if not self.flags & need:
            raise AccessError("access", f"{self.name} is not {'writable' if write else 'readable'}")

    def read(self, offset, width):
        self.check(offset, width, False)
        if self._mmap is not None:
            return lib.pyvfio_mmio_read(self.ptr, offset, width)
        try:
            data = os.pread(self.fd, width, self.offset + offset)
        except OSError as exc:
            raise VfioError(f"read {self.name}+{offset:#x}", exc.errno) from None
        if len(data) != width:
            raise VfioError(f"read {self.name}+{offset:#x}", None, f"short read of {self.name} at {offset:#x}")
        # vfio-pci's rw path returns registers little-endian (ioread + cpu_to_le).
        return int.from_bytes(data, "little")

    def write(self, offset, width, value):
        self.check(offset, width, True)
        if self._mmap is not None:
            lib.pyvfio_mmio_write(self.ptr, offset, width, value)
            return
        try:
            n = os.pwrite(self.fd, value.to_bytes(width, "little"), self.offset + offset)
        except OSError as exc:
            raise VfioError(f"write {self.name}+{offset:#x}", exc.errno) from None
        if n != width:
            raise VfioError(f"write {self.name}+{offset:#x}", None, f"short write of {self.name} at {offset:#x}")

    def accessor(self, offset, width, write):
        """One register as a callable, checked once, here: `read()` -> value, or
        `write(value)`.  The Python engine's per-interrupt accesses, like the C
        loop's, run without re-checking what cannot change."""
        self.check(offset, width, write)
        if self._mmap is not None:
            return partial(lib.pyvfio_mmio_write if write else lib.pyvfio_mmio_read, self.ptr, offset, width)
        fd, pos, what = self.fd, self.offset + offset, f"{self.name}+{offset:#x}"

        def pwrite(value):
            try:
                os.pwrite(fd, value.to_bytes(width, "little"), pos)
            except OSError as exc:
                raise VfioError(f"write {what}", exc.errno) from None

        def pread():
            try:
                return int.from_bytes(os.pread(fd, width, pos), "little")
            except OSError as exc:
                raise VfioError(f"read {what}", exc.errno) from None

        return pwrite if write else pread

    def read_bytes(self, offset=0, length=None):
        """A block read through pread (config dumps); bounded like every access."""
        length = self.size - offset if length is None else length
        if offset < 0 or length < 0 or offset + length > self.size:
            raise AccessError("access", f"{length} bytes at {offset:#x} is past the end of {self.name}")
        return os.pread(self.fd, length, self.offset + offset)

    def close(self):
        if self._mmap is not None:
            ffi.release(self.ptr)  # drop cffi's buffer export, or mmap.close() refuses
            self.ptr = ffi.NULL
            self._mmap.close()
            self._mmap = None

    def __repr__(self):
        return f"<Region {self.name} size={self.size:#x} flags={self.flags:#x} {self.access}>"
