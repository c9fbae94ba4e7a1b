"""DMA: memory the device may read and write, mapped at an IOVA through whichever
IOMMU the device was opened with.  One interface (Dma) over three backends:

- type1v2 (x86 container): VFIO_IOMMU_MAP_DMA/UNMAP_DMA; the IOVA ranges the IOMMU
  allows come from VFIO_IOMMU_GET_INFO's IOVA-range capability (x86's MSI window
  0xfee00000-0xfeefffff is outside them);
- sPAPR TCE v2 (POWER container): the device sees DMA only through windows; the
  default 32-bit window (VFIO_IOMMU_SPAPR_TCE_GET_INFO) is made when first used, a
  dynamic one by VFIO_IOMMU_SPAPR_TCE_CREATE; v2 maps only memory registered
  beforehand (VFIO_IOMMU_SPAPR_REGISTER_MEMORY, which pins it);
- iommufd: IOMMU_IOAS_MAP/UNMAP at a fixed IOVA in the device's IOAS.

Every request is checked before the ioctl (alignment to the IOMMU page, inside the
buffer, inside a window, no overlap with a live mapping), so a bad one is a
one-line UsageError and the kernel never sees it.  close() unmaps every mapping,
unregisters the memory and removes the windows it made, in that order.
"""

import mmap
from dataclasses import dataclass

from .. import uapi
from .._binding import ffi
from ..errors import UsageError, VfioError
from ..hostmem import HostMemory
from .ioctl import vfio_ioctl

PAGE = mmap.PAGESIZE
INFO_BUF = 4096          # GET_INFO with room for its capability chain


class DmaBuffer(HostMemory):
    """Anonymous, page-aligned memory for DMA; `view` is its bytes."""

    def __init__(self, size):
        if size <= 0 or size % PAGE:
            raise UsageError(f"DMA buffer size {size:#x} is not a positive multiple of the "
                             f"page size {PAGE:#x}")
        super().__init__(size)


@dataclass(frozen=True)
class Mapping:
    buffer: DmaBuffer
    offset: int
    size: int
    iova: int

    @property
    def last(self):
        return self.iova + self.size - 1


@dataclass(frozen=True)
class Window:
    """IOVAs [start, start + size) the device can reach; created: a window we made."""
    start: int
    size: int
    created: bool = False

    def holds(self, iova, size):
        return self.start <= iova and iova + size <= self.start + self.size


def check_map(windows, page, mappings, buf, offset, size, iova):
    """The checks made before any map ioctl; raises UsageError naming the one that fails."""
    if size <= 0 or size % page or offset % page:
        raise UsageError(f"DMA map of {size:#x} bytes at buffer offset {offset:#x} is not aligned "
                         f"to the IOMMU page {page:#x}", "map whole pages")
    if iova % page:
        raise UsageError(f"IOVA {iova:#x} is not aligned to the IOMMU page {page:#x}",
                         f"use a multiple of {page:#x}")
    if offset + size > buf.size:
        raise UsageError(f"DMA map of {size:#x} bytes at offset {offset:#x} runs past the "
                         f"{buf.size:#x}-byte buffer", "map no more than the buffer holds")
    if not any(w.holds(iova, size) for w in windows):
        have = ", ".join(f"{w.start:#x}-{w.start + w.size - 1:#x}" for w in windows) or "none"
        raise UsageError(f"IOVA range {iova:#x}-{iova + size - 1:#x} is outside the device's "
                         f"DMA windows ({have})", "map inside a window, or a smaller range")
    for m in mappings:
        if iova <= m.last and m.iova <= iova + size - 1:
            raise UsageError(f"IOVA range {iova:#x}-{iova + size - 1:#x} overlaps the mapping "
                             f"at {m.iova:#x}-{m.last:#x}", "unmap it first or pick another IOVA")


def _struct(name):
    s = ffi.new(f"struct {name} *")
    s.argsz = ffi.sizeof(s[0])
    return s


def _dma_map(fd, vaddr, size, iova):
    m = _struct("vfio_iommu_type1_dma_map")
    m.flags = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE
    m.vaddr, m.size, m.iova = vaddr, size, iova
    vfio_ioctl(fd, "VFIO_IOMMU_MAP_DMA", uapi.VFIO_IOMMU_MAP_DMA, ffi.buffer(m))


def _dma_unmap(fd, iova, size):
    u = _struct("vfio_iommu_type1_dma_unmap")
    u.iova, u.size = iova, size
    vfio_ioctl(fd, "VFIO_IOMMU_UNMAP_DMA", uapi.VFIO_IOMMU_UNMAP_DMA, ffi.buffer(u))


class _Type1:
    name = "type1v2"

    def __init__(self, container):
        self.fd = container.fd
        buf = bytearray(INFO_BUF)
        info = ffi.from_buffer("struct vfio_iommu_type1_info *", buf)
        info.argsz = len(buf)
        vfio_ioctl(self.fd, "VFIO_IOMMU_GET_INFO", uapi.VFIO_IOMMU_GET_INFO, buf)
        pgsizes = info.iova_pgsizes if info.flags & uapi.VFIO_IOMMU_INFO_PGSIZES else PAGE
        self.page = max(pgsizes & -pgsizes, PAGE)   # the smallest IOMMU page, at least ours
        self.windows = self._iova_ranges(buf, info) or [Window(0, 1 << 64)]

    @staticmethod
    def _iova_ranges(buf, info):
        """The IOVA-range capability: the ranges outside the IOMMU's reserved regions."""
        off = info.cap_offset if info.flags & uapi.VFIO_IOMMU_INFO_CAPS else 0
        while off:
            hdr = ffi.from_buffer("struct vfio_info_cap_header *", memoryview(buf)[off:])
            if hdr.id == uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
                cap = ffi.from_buffer("struct vfio_iommu_type1_info_cap_iova_range *",
                                      memoryview(buf)[off:])
                return [Window(r.start, r.end - r.start + 1)
                        for r in (cap.iova_ranges[i] for i in range(cap.nr_iovas))]
            off = hdr.next
        return []

    def register(self, buf):
        pass

    def unregister(self, buf):
        pass

    def map(self, vaddr, size, iova):
        _dma_map(self.fd, vaddr, size, iova)

    def unmap(self, iova, size):
        _dma_unmap(self.fd, iova, size)

    def remove_window(self, window):
        pass


class _Spapr:
    name = "spapr-tce-v2"
    PAGE_SHIFT = 12          # TCE pages of the default window (IOMMU_PAGE_SHIFT_4K)

    def __init__(self, container):
        self.fd = container.fd
        info = _struct("vfio_iommu_spapr_tce_info")
        vfio_ioctl(self.fd, "VFIO_IOMMU_SPAPR_TCE_GET_INFO", uapi.VFIO_IOMMU_SPAPR_TCE_GET_INFO,
                   ffi.buffer(info))
        self.ddw = bool(info.flags & uapi.VFIO_IOMMU_SPAPR_INFO_DDW)
        self.ddw_pgsizes = info.ddw.pgsizes if self.ddw else 0
        self.page = max(1 << self.PAGE_SHIFT, PAGE)
        self.windows = [Window(info.dma32_window_start, info.dma32_window_size)]

    def register(self, buf):
        r = _struct("vfio_iommu_spapr_register_memory")
        r.vaddr, r.size = buf.vaddr, buf.size
        vfio_ioctl(self.fd, "VFIO_IOMMU_SPAPR_REGISTER_MEMORY", uapi.VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
                   ffi.buffer(r), hint="v2 pins registered memory: check RLIMIT_MEMLOCK")

    def unregister(self, buf):
        r = _struct("vfio_iommu_spapr_register_memory")
        r.vaddr, r.size = buf.vaddr, buf.size
        vfio_ioctl(self.fd, "VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY",
                   uapi.VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, ffi.buffer(r))

    def create_window(self, size):
        """A dynamic DMA window of at least `size` bytes in 4K TCEs; the kernel picks
        where it starts."""
        if not self.ddw or not self.ddw_pgsizes & (1 << self.PAGE_SHIFT):
            raise UsageError("this sPAPR IOMMU cannot create DMA windows (no DDW with 4K pages)",
                             "map inside the default window")
        c = _struct("vfio_iommu_spapr_tce_create")
        c.page_shift, c.levels = self.PAGE_SHIFT, 1
        c.window_size = 1 << max(size - 1, 1).bit_length()   # a power of two
        vfio_ioctl(self.fd, "VFIO_IOMMU_SPAPR_TCE_CREATE", uapi.VFIO_IOMMU_SPAPR_TCE_CREATE,
                   ffi.buffer(c), hint="the platform may allow no further window")
        w = Window(c.start_addr, c.window_size, created=True)
        self.windows.append(w)
        return w

    def remove_window(self, window):
        r = _struct("vfio_iommu_spapr_tce_remove")
        r.start_addr = window.start
        vfio_ioctl(self.fd, "VFIO_IOMMU_SPAPR_TCE_REMOVE", uapi.VFIO_IOMMU_SPAPR_TCE_REMOVE,
                   ffi.buffer(r))

    def map(self, vaddr, size, iova):
        _dma_map(self.fd, vaddr, size, iova)

    def unmap(self, iova, size):
        _dma_unmap(self.fd, iova, size)


class _IommuFd:
    name = "iommufd"

    def __init__(self, iommufd):
        self.ioas = iommufd
        self.page = PAGE
        # what the IOAS allows with this device attached (the IOMMU's aperture less
        # its reserved regions), so that check_map refuses the rest before the ioctl
        self.windows = [Window(first, last - first + 1) for first, last in iommufd.iova_ranges()]

    def register(self, buf):
        pass

    def unregister(self, buf):
        pass

    def map(self, vaddr, size, iova):
        self.ioas.map(vaddr, size, iova)

    def unmap(self, iova, size):
        self.ioas.unmap(iova, size)

    def remove_window(self, window):
        pass


class Dma:
    """Map buffers for one open Device; the backend follows how it was opened."""

    def __init__(self, device):
        if device.iommufd is not None:
            self._b = _IommuFd(device.iommufd)
        elif device.container.iommu_type == "type1v2":
            self._b = _Type1(device.container)
        elif device.container.iommu_type == "spapr-tce-v2":
            self._b = _Spapr(device.container)
        else:
            raise UsageError(f"no DMA mapping through the {device.container.iommu_type} IOMMU "
                             "type", "open the device with type1v2, spapr-tce-v2 or iommufd")
        self.mappings = []
        self._registered = []

    @property
    def backend(self):
        return self._b.name

    @property
    def page(self):
        return self._b.page

    @property
    def windows(self):
        return list(self._b.windows)

    def create_window(self, size):
        """sPAPR: a dynamic DMA window (elsewhere the IOVA space needs none)."""
        if not isinstance(self._b, _Spapr):
            raise UsageError(f"{self.backend} has no DMA windows to create", "map directly")
        return self._b.create_window(size)

    def free_iova(self, size, below=None):
        """The lowest page-aligned IOVA where `size` bytes fit in a window without
        overlapping a mapping (and end at or below `below`, a device's DMA mask)."""
        for w in sorted(self._b.windows, key=lambda w: w.start):
            iova = -(-w.start // self.page) * self.page
            for m in sorted(self.mappings, key=lambda m: m.iova):
                if m.iova < iova + size and iova <= m.last:
                    iova = -(-(m.last + 1) // self.page) * self.page
            if w.holds(iova, size) and (below is None or iova + size - 1 <= below):
                return iova
        limit = f" below {below:#x}" if below is not None else ""
        raise UsageError(f"no room for {size:#x} bytes{limit} in the device's DMA windows "
                         f"({', '.join(f'{w.start:#x}+{w.size:#x}' for w in self._b.windows)})",
                         "map less, or unmap first")

    def map(self, buf, iova=None, offset=0, size=None, below=None):
        """Map buf[offset:offset+size] (default all of it) at `iova` (default the
        lowest free one, under `below`).  Returns the Mapping."""
        size = buf.size - offset if size is None else size
        if iova is None:
            iova = self.free_iova(size, below)
        check_map(self._b.windows, self.page, self.mappings, buf, offset, size, iova)
        if not any(b is buf for b in self._registered):
            self._b.register(buf)
            self._registered.append(buf)
        self._b.map(buf.vaddr + offset, size, iova)
        m = Mapping(buf, offset, size, iova)
        self.mappings.append(m)
        return m

    def unmap(self, mapping):
        self.mappings.remove(mapping)
        self._b.unmap(mapping.iova, mapping.size)

    def close(self):
        """Unmap everything, unregister the memory, remove the windows we made; the
        first failure is raised after all were tried."""
        first = None
        steps = ([lambda m=m: self.unmap(m) for m in reversed(self.mappings)]
                 + [lambda b=b: self._b.unregister(b) for b in self._registered]
                 + [lambda w=w: self._b.remove_window(w) for w in self._b.windows if w.created])
        for step in steps:
            try:
                step()
            except VfioError as exc:
                first = first or exc
        self._registered.clear()
        self._b.windows[:] = [w for w in self._b.windows if not w.created]
        if first is not None:
            raise first

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
