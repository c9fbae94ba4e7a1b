"""Anonymous host memory whose address the kernel is given: a KVM memory slot's
userspace_addr (the vCPU guest's RAM), a VFIO DMA map's vaddr (what a card reads
and writes).  mmap'd, so page-aligned; `vaddr` stays valid until close()."""

import mmap

from ._binding import ffi


class HostMemory:
    """`size` bytes; `view` is a memoryview of them in struct format `fmt` ("B":
    bytes, "I": dwords).  shared: MAP_SHARED (KVM's RAM), else MAP_PRIVATE."""

    def __init__(self, size, shared=False, fmt="B"):
        self.size = size
        flags = (mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE) | mmap.MAP_ANONYMOUS
        self._mem = mmap.mmap(-1, size, flags)
        self._ptr = ffi.from_buffer(self._mem)
        self.vaddr = int(ffi.cast("uintptr_t", self._ptr))
        self.view = memoryview(self._mem).cast(fmt)

    def address(self, offset=0):
        return self.vaddr + offset

    def write(self, offset, data):
        self._mem[offset:offset + len(data)] = data

    def close(self):
        if self._mem is not None:
            self.view.release()
            ffi.release(self._ptr)
            self._mem.close()
            self._mem = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
