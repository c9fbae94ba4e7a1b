"""Card profiles at run time: the ops table a profile file describes, bound to one
card (after the kernel's tools/testing/selftests/vfio driver ops).

A profile's register programs are data (pyvfio/profiles/format.py loads them):
tuples of `Op` that the Python engine runs compiled as a `Program` and the C loop
(csrc/loop.c run_ops) runs from a copy the C engine makes, so both engines do
exactly the same accesses.  The op kinds are defined once, in ops.py.
"""

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from ..errors import AccessError, PyvfioError, UsageError
from . import ops

# The op kinds (ops.KINDS is their one definition), by name.
WRITE, READ, WRITE_CAUSE, DELAY, POLL, RMW, DRAIN, SPIN = (
    "write", "read", "write_cause", "delay", "poll", "rmw", "drain", "spin")
KINDS = tuple(k.name for k in ops.KINDS)


@dataclass(frozen=True)
class Op:
    """One step of a register program (`bar` is the profile's name for a BAR).
    write:       store `value`; with `rotate` > 1 the offset advances by `stride` per
                 raise since init, modulo `rotate` (the RTL8139's four transmit slots);
    read:        load; the cause is (raw ^ `invert`) & `mask` (`invert`: bits that read
                 0 when they mean "pending", as a 16550's IIR bit 0);
    write_cause: store the raw value the last read loaded (write-1-to-clear);
    delay:       sleep `count` microseconds;
    spin:        busy-wait `count` microseconds (the CPU kept: an injected delay);
    poll:        load until (raw & `mask`) == `value`, at most `count` microseconds;
    rmw:         load, then store (raw & ~`mask`) | `value`;
    drain:       while (status & `mask`) == `value` load the register, at most `count`
                 times for this op (two drain ops: up to twice `count`); the loads
                 are the program's items (a UART's bytes).
                 The status register is (`status_bar`, `status_offset`, `status_width`)."""
    kind: str
    bar: str = None
    offset: int = 0
    width: int = 4
    value: int = 0
    mask: int = 0
    invert: int = 0
    rotate: int = 1
    stride: int = 0
    count: int = 0
    status_bar: str = None
    status_offset: int = 0
    status_width: int = 0
    reg: str = ""                # the register's name, for messages
    symbol: str = ""             # a write's value named, not given: "dma.src", ... (bind_dma)

    def offsets(self):
        """(bar, offset, width, write) of every access the op can make."""
        if ops.BY_NAME[self.kind].timed:   # a wait: no register
            return []
        write = self.kind in (WRITE, WRITE_CAUSE, RMW)
        out = [(self.bar, self.offset + self.stride * k, self.width, write) for k in range(self.rotate)]
        if self.kind == RMW:
            out.append((self.bar, self.offset, self.width, False))
        if self.kind == DRAIN:
            out.append((self.status_bar, self.status_offset, self.status_width, False))
        return out

    def swapped(self):
        """The op for a card whose registers read byte-swapped (edu's native-endian
        registers on a big-endian QEMU host): constants swapped, raw values not."""
        return replace(self, value=bswap(self.value, self.width), mask=bswap(self.mask, self.width),
                       invert=bswap(self.invert, self.width))


def bswap(v, width):
    return int.from_bytes(v.to_bytes(width, "little"), "big") if width > 1 else v


class PollTimeout(PyvfioError):
    """A poll op's register never read the value it waits for."""


def _accessor(region, offset, width, write):
    """A checked-once callable for one register (backend.Region.accessor)."""
    return region.accessor(offset, width, write)


def _poll(op, read):
    deadline = time.monotonic() + op.count / 1e6
    while True:
        raw = read()
        if raw & op.mask == op.value:
            return raw
        if time.monotonic() > deadline:
            raise PollTimeout(f"{op.reg} at {op.bar}+{op.offset:#x} read {raw:#x}, not "
                              f"{op.value:#x} under mask {op.mask:#x}, for {op.count} us",
                              "the card is not answering as the profile expects")


class Program:
    """A register program compiled once against the card's regions (accessors
    checked once, here): what the Python engine runs per interrupt.  `p(n)` runs it
    for the n-th raise and returns the cause; `p.counted(n)` returns (cause, items)."""

    __slots__ = ("steps",)

    def __init__(self, ops, bars):
        steps = []
        for op in ops:
            acc = (lambda write, off=op.offset: _accessor(bars[op.bar], off, op.width, write))
            if op.kind == WRITE:
                fns = tuple(_accessor(bars[op.bar], op.offset + op.stride * k, op.width, True)
                            for k in range(op.rotate))
                steps.append((WRITE, fns, op.value, 0))
            elif op.kind == READ:
                steps.append((READ, acc(False), op.mask, op.invert))
            elif op.kind == WRITE_CAUSE:
                steps.append((WRITE_CAUSE, acc(True), 0, 0))
            elif op.kind == RMW:
                steps.append((RMW, (acc(False), acc(True)), op.value, op.mask))
            elif op.kind == DRAIN:
                status = _accessor(bars[op.status_bar], op.status_offset, op.status_width, False)
                steps.append((DRAIN, (acc(False), status), op, 0))
            elif op.kind == POLL:
                steps.append((POLL, acc(False), op, 0))
            elif op.kind == SPIN:
                steps.append((SPIN, None, op.count * 1000, 0))
            elif op.kind == DELAY:
                steps.append((DELAY, None, op.count / 1e6, 0))
            else:
                raise UsageError(f"op kind {op.kind!r} unknown to the Python engine",
                                 f"use one of {', '.join(KINDS)}")
        self.steps = tuple(steps)

    def counted(self, n=0):
        cause = raw = items = 0
        for kind, fn, a, b in self.steps:
            if kind is WRITE:
                fn[n % len(fn)](a)
            elif kind is READ:
                raw = fn()
                cause = (raw ^ b) & a
            elif kind is WRITE_CAUSE:
                fn(raw)
            elif kind is RMW:
                fn[1]((fn[0]() & ~b) | a)
            elif kind is DRAIN:   # `count` bounds each drain op, not the program
                data, status = fn
                for _ in range(a.count):
                    if status() & a.mask != a.value:
                        break
                    data()
                    items += 1
            elif kind is POLL:
                _poll(a, fn)
            elif kind is SPIN:
                end = time.monotonic_ns() + a
                while time.monotonic_ns() < end:
                    pass
            else:
                time.sleep(a)
        return cause, items

    def __call__(self, n=0):
        return self.counted(n)[0]


class Programs(Mapping):
    """A profile's register programs by name (raise, ack, init, quiesce, ...), as
    its card runs them (byte-swapped where its registers read so).  `programs[name]`
    is the Program the Python engine runs, compiled against the card's regions on
    first use; `programs.ops[name]` is its op tuple, which the C loop and the KVM
    guest's compiler take.  Read-only: `replaced` makes a new one."""

    def __init__(self, ops, bars):
        self.ops = MappingProxyType(dict(ops))
        self._bars = bars
        self._compiled = {}

    def __getitem__(self, name):
        program = self._compiled.get(name)
        if program is None:
            program = self._compiled[name] = Program(self.ops[name], self._bars)
        return program

    def __contains__(self, name):
        return name in self.ops          # without compiling it

    def __iter__(self):
        return iter(self.ops)

    def __len__(self):
        return len(self.ops)

    def replaced(self, ops):
        """These programs with `ops` ({name: op tuple}) put in or replaced."""
        return Programs({**self.ops, **ops}, self._bars)


class CardProfile:
    """A profile (format.Profile) bound to one card; the ops it provides and what
    each guarantees (the profile file's programs must make them true).

    __init__(spec, host, access) : opens the BARs the profile names ("mmap" or "rw"
                                   where the BAR allows it), checks their kind and
                                   size and the identification register; raises
                                   UsageError if the card is not the one expected.
    init()                       : leaves the card quiet and ready for raise: no
                                   cause pending, INTx not asserted.  Raises count
                                   from here (a rotating write starts again).
    raise_irq()                  : the card asserts INTx once, for one cause (on
                                   QEMU's models synchronously, before it returns).
    ack() -> int                 : reads the pending cause and acknowledges it; after
                                   it the card no longer asserts INTx.  0: nothing.
    cause() -> int               : the ack's read alone (checks that the ack cleared).
    quiesce()                    : disables the card's interrupts and clears pending
                                   ones; the card does not assert INTx afterwards.
    """

    def __init__(self, spec, host, access="mmap"):
        self.spec = spec
        self.name, self.description = spec.name, spec.description
        self.host = host
        self.access = access
        self.raised = 0
        self.bars = {}
        self.bar_index = {}
        for bar in spec.bars.values():
            method = access if access in bar.access else bar.access[0]
            index = bar.index[method]
            kind = bar_kind(host, index)
            if kind is not None and kind != bar.kind[method]:
                raise UsageError(f"{host.bdf}: BAR{index} is {_KIND_WORD[kind]}, profile {self.name} "
                                 f"expects {_KIND_WORD[bar.kind[method]]} ({bar.name})",
                                 "this is not the card the profile expects; choose another --profile")
            try:
                region = host.region(index, method)
            except AccessError:
                # vfio-pci offers no mmap of a BAR smaller than a page that does not
                # start on one (vfio_pci_probe_mmaps; with 64 KiB pages, most small
                # BARs): pread/pwrite then, and describe() says so per BAR.
                if method != "mmap" or "rw" not in bar.access:
                    raise
                region = host.region(index, "rw")
            if region.size < bar.size:
                raise UsageError(f"{host.bdf}: BAR{index} is {region.size:#x} bytes, profile {self.name} "
                                 f"needs {bar.size:#x}", "this is not the card the profile expects; "
                                 "choose another --profile")
            self.bars[bar.name] = region
            self.bar_index[bar.name] = index
        self.recovered = None         # what the recover program brought back, if it ran
        self.swapped = self._identify()
        fix = Op.swapped if self.swapped else (lambda op: op)
        self.programs = Programs({name: tuple(fix(op) for op in steps)
                                  for name, steps in spec.programs.items()}, self.bars)
        self._peek = None             # cause()'s program, compiled on first use

    def _identify(self):
        """None: the profile has no identification register; else whether the card's
        registers read byte-swapped."""
        ident = self.spec.identify
        if ident is None:
            return None
        op = ident.op

        def swapped():
            raw = self.bars[op.bar].read(op.offset, op.width)
            if raw & op.mask == op.value:
                return raw, False
            if ident.byteswap and bswap(raw, op.width) & op.mask == op.value:
                return raw, True
            return raw, None

        raw, how = swapped()
        if how is None and "recover" in self.spec.programs:
            # the IDs matched: this may be the card, left in another mode by an earlier run
            first = raw
            Program(self.spec.programs["recover"], self.bars)()
            raw, how = swapped()
            self.recovered = f"{op.reg} read {first:#x}; after the recover program {raw:#x}"
        if how is not None:
            return how
        recover = ("its recover program did not bring it back" if self.recovered else
                   "give the profile a recover program (pyvfio/profiles/README.md)")
        raise UsageError(f"{self.host.bdf}: {op.reg} reads {raw:#x}, profile {self.name} expects "
                         f"{op.value:#x} under mask {op.mask:#x}: not the card the profile expects, "
                         "or the card left in another mode by an earlier run",
                         f"another card: choose another --profile; left in another mode: {recover}, or "
                         f"reset the card (echo 1 > /sys/bus/pci/devices/{self.host.bdf}/reset)")

    def program(self, name):
        """A compiled program (raise, ack, ...): programs[name]."""
        return self.programs[name]

    def init(self):
        self.raised = 0
        self.program("init")()

    def raise_irq(self):
        self.program("raise")(self.raised)
        self.raised += 1

    def with_ops(self, ops):
        """A copy of this profile (the same card, regions and counts) whose programs
        have `ops` ({name: op tuple}) put in or replaced; this one is unchanged."""
        new = copy.copy(self)
        new.programs = self.programs.replaced(ops)
        new._peek = None
        return new

    def bind_dma(self, values):
        """--source dma: a copy of this profile whose raise program, the one both
        engines run, is raise_dma with its dma.* values filled in from `values` (the
        IOVAs the run mapped)."""
        fix = Op.swapped if self.swapped else (lambda op: op)
        return self.with_ops({"raise": tuple(
            fix(replace(op, value=values[op.symbol], symbol="") if op.symbol else op)
            for op in self.spec.programs["raise_dma"])})

    def ack(self):
        return self.program("ack")()

    def quiesce(self):
        self.program("quiesce")()

    def cause(self):
        """The cause the ack program's read sees now, without acknowledging it (its
        first read alone): after a batch every raise of which was serviced it is 0,
        unless the ack does not clear what it reads.  None: the ack reads nothing."""
        reads = [op for op in self.programs.ops.get("ack", ()) if op.kind == READ][:1]
        if not reads:
            return None
        if self._peek is None:
            self._peek = Program(reads, self.bars)
        return self._peek()

    def check_irq(self, irq):
        """The profile says its programs serve this interrupt kind (its irqs)."""
        if irq not in self.spec.irqs:
            raise UsageError(f"profile {self.name} serves {', '.join(self.spec.irqs)}, not {irq}",
                             f"use --irq {self.spec.irqs[0]}, or add {irq!r} to the profile's irqs "
                             "once its programs raise and service it")

    def describe(self):
        out = {"profile": self.name, "source": str(self.spec.path), "access": self.access,
               "irqs": list(self.spec.irqs),
               "bars": {f"BAR{self.bar_index[n]}": {"name": n, "size": r.size, "access": r.access}
                        for n, r in self.bars.items()}}
        if self.swapped is not None:
            out["byte_swapped"] = self.swapped
        if self.recovered:
            out["recovered"] = self.recovered
        return out


_KIND_WORD = {"mem": "memory", "io": "I/O ports"}


def bar_kind(host, index):
    """"io" or "mem" from the BAR's config-space register (bit 0), or None where
    the host has no such register to read."""
    try:
        low = host.region(7).read(0x10 + 4 * index, 4)
    except (PyvfioError, OSError):
        return None
    return "io" if low & 1 else "mem"
