"""Guest memory: anonymous RAM, and memory slots over host mappings (RAM, or a
BAR that VFIO lets us mmap: the guest then reaches the card without an exit)."""

import mmap
from dataclasses import dataclass

from .._binding import ffi


class Ram:
    """Anonymous, shared with the guest; `view` is its dwords (the control block)."""

    def __init__(self, size):
        self.size = size
        self.map = mmap.mmap(-1, size, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.ptr = ffi.from_buffer(self.map)
        self.view = memoryview(self.map).cast("I")

    def address(self, offset=0):
        return int(ffi.cast("uintptr_t", self.ptr)) + offset

    def write(self, offset, data):
        self.map[offset:offset + len(data)] = data

    def close(self):
        if self.map is not None:
            self.view.release()
            ffi.release(self.ptr)
            self.map.close()
            self.map = None


@dataclass(frozen=True)
class Memslot:
    slot: int
    gpa: int
    size: int
    hva: int
    what: str
