"""Card profiles: how the toy guest drives one card, as an ops table with stated
guarantees (after the kernel's tools/testing/selftests/vfio driver ops).

A profile's per-interrupt work is data: `raise_ops` and `ack_ops` are short
register programs that the Python engine runs through Region.read/write and the C
hot loop runs from a compiled copy, so both engines do exactly the same accesses.
"""

from dataclasses import dataclass

from ..errors import UsageError

WRITE, READ, WRITE_CAUSE = "write", "read", "write_cause"


@dataclass(frozen=True)
class Op:
    """One register access.
    write:       store `value`; with `rotate` > 1 the offset advances by `stride` per
                 raise, modulo `rotate` (the RTL8139's four transmit slots);
    read:        load; the result masked with `value` is the interrupt cause;
    write_cause: store the raw value last read (write-1-to-clear acknowledges)."""
    kind: str
    bar: int
    offset: int
    width: int
    value: int = 0
    rotate: int = 1
    stride: int = 4


def _accessor(region, offset, width, write):
    """A checked-once callable for one register (Region.accessor), or, for a host
    whose regions have none, the region's own checked access."""
    make = getattr(region, "accessor", None)
    if make is not None:
        return make(offset, width, write)
    region_call = region.write if write else region.read
    return lambda *value: region_call(offset, width, *value)


def compile_ops(ops, bars):
    """A register program as one closure over accessors checked once, at compile
    time: what the Python engine runs per interrupt (the C loop runs its own copy,
    checked the same way).  `run(n)` returns the cause, like run_ops."""
    steps = []
    for op in ops:
        region = bars[op.bar]
        if op.kind == WRITE:
            fns = tuple(_accessor(region, op.offset + op.stride * k, op.width, True)
                        for k in range(op.rotate))
            steps.append((WRITE, fns, op.value))
        else:
            steps.append((op.kind, _accessor(region, op.offset, op.width, op.kind != READ), op.value))
    steps = tuple(steps)

    def run(n=0):
        cause = raw = 0
        for kind, fn, value in steps:
            if kind is WRITE:
                fn[n % len(fn)](value)
            elif kind is READ:
                raw = fn()
                cause = raw & value
            else:
                fn(raw)
        return cause

    return run


def run_ops(ops, bars, n=0):
    """Run a register program once (init, quiesce); returns the cause."""
    return compile_ops(ops, bars)(n)


def bswap32(v):
    return int.from_bytes(v.to_bytes(4, "little"), "big")


class CardProfile:
    """The ops every profile provides, and what each guarantees.

    probe(vendor, device) -> bool : this profile drives that card.
    __init__(host, access)        : opens the BARs it needs ("mmap" or "rw"); raises
                                    UsageError if a BAR is missing or too small.
    init()                        : leaves the card quiescent with exactly one interrupt
                                    cause enabled; the card does not assert INTx.
    raise_irq()                   : the card asserts INTx once, for one cause (on QEMU's
                                    models synchronously, before raise_irq returns).
    ack() -> int                  : reads the pending cause and acknowledges it; after it
                                    the card no longer asserts INTx.  0: nothing pending.
    quiesce()                     : disables the card's interrupts and clears pending ones;
                                    the card does not assert INTx afterwards.
    """

    name = "?"
    description = ""
    ids = ()                  # (vendor, device) pairs
    bars_needed = {}          # bar index -> minimum size in bytes
    raise_ops = ack_ops = init_ops = quiesce_ops = ()

    def __init__(self, host, access="mmap"):
        self.host = host
        self.access = access
        self.raised = 0
        self.bars = {}
        for bar, need in self.bars_needed.items():
            region = self.open_bar(bar, access)
            if region.size < need:
                raise UsageError(f"{host.bdf}: BAR{bar} is {region.size:#x} bytes, profile {self.name} "
                                 f"needs {need:#x}", "this is not the card the profile expects; "
                                 "choose another --profile")
            self.bars[bar] = region

    def open_bar(self, bar, access):
        return self.host.region(bar, access)

    @classmethod
    def probe(cls, vendor, device):
        return (vendor, device) in cls.ids

    def init(self):
        run_ops(self.init_ops, self.bars)

    def program(self, name):
        """The compiled raise or ack program (compiled on first use, after the
        profile has chosen its registers)."""
        cache = self.__dict__.setdefault("_programs", {})
        if name not in cache:
            cache[name] = compile_ops(getattr(self, f"{name}_ops"), self.bars)
        return cache[name]

    def raise_irq(self):
        self.program("raise")(self.raised)
        self.raised += 1

    def ack(self):
        return self.program("ack")()

    def quiesce(self):
        run_ops(self.quiesce_ops, self.bars)

    def describe(self):
        return {"profile": self.name, "access": self.access,
                "bars": {f"BAR{b}": {"size": r.size, "access": r.access} for b, r in self.bars.items()}}
