"""Guest memory: anonymous RAM, and memory slots over host mappings (RAM, or a
BAR that VFIO lets us mmap: the guest then reaches the card without an exit)."""

from dataclasses import dataclass

from ..hostmem import HostMemory


class Ram(HostMemory):
    """Anonymous, shared with the guest; `view` is its dwords (the control block)."""

    def __init__(self, size):
        super().__init__(size, shared=True, fmt="I")


@dataclass(frozen=True)
class Memslot:
    slot: int
    gpa: int
    size: int
    hva: int
    what: str
