"""The profile op kinds, defined once.

Every interpreter of a register program derives what it knows of the kinds from
`KINDS`: the profile validator (format.py: the TOML key of each kind, the keys it
takes and needs), the Python engine (base.Program), the C loop (csrc/build.py
emits its PYVFIO_OP_* codes from `code`), the KVM guest compiler (kvm/guest_program.py
refuses the kinds whose `kvm` says why) and the guide's table of the ops
(pyvfio/profiles/README.md: `guide_table()`, checked by tests/test_ops_table.py).

Adding a kind: a row here, its step in base.Program, its case in csrc/loop.c
run_ops (and, if the KVM guest can run it, its instructions in kvm/guest_program.py;
else `kvm` says why not), then the row of the guide.

This module imports nothing of pyvfio: csrc/build.py loads it by path.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class OpKind:
    name: str               # Op.kind
    key: str                # the profile's key for it: names the register, or (`*_us`) a time
    code: int               # the C loop's PYVFIO_OP_<NAME> (csrc/build.py emits the enum)
    takes: frozenset        # the other keys it accepts
    needs: frozenset        # ... and those it requires
    kvm: str = None         # None: the KVM guest compiles it; else why the guest refuses it
    max_us: int = 0         # a time kind: its longest wait
    syntax: str = ""        # the guide's row: how it is written ...
    does: str = ""          # ... and what it does

    @property
    def timed(self):
        """A wait with no register: its key gives microseconds."""
        return self.key.endswith("_us")


_NO_CLOCK = "the guest compiler has no timed or repeated accesses"

KINDS = (
    OpKind("write", "write", 0, frozenset({"value", "rotate", "stride"}), frozenset({"value"}),
           syntax="`{ write = R, value = V }`",
           does="store V. `rotate = N, stride = S`: the n-th raise since init writes R + S*(n mod N) "
                "(the RTL8139's four transmit slots)"),
    OpKind("read", "read", 1, frozenset({"mask", "invert"}), frozenset(),
           syntax="`{ read = R, mask = M }`",
           does="load; the cause is raw & M (no mask: a read for its side effect, e.g. a read-to-clear "
                "register). `invert = X`: bits that read 0 when pending, cause = (raw ^ X) & M "
                "(a 16550's IIR bit 0)"),
    OpKind("write_cause", "write_cause", 2, frozenset(), frozenset(),
           syntax="`{ write_cause = R }`",
           does="store what the last read loaded (write-1-to-clear acknowledges)"),
    OpKind("delay", "delay_us", 3, frozenset(), frozenset(), kvm=_NO_CLOCK, max_us=1_000_000,
           syntax="`{ delay_us = T }`",
           does="sleep T microseconds (the thread yields: a reset's settling time in init)"),
    OpKind("poll", "poll", 4, frozenset({"mask", "value", "timeout_us"}),
           frozenset({"mask", "value", "timeout_us"}), kvm=_NO_CLOCK,
           syntax="`{ poll = R, mask = M, value = V, timeout_us = T }`",
           does="load until raw & M == V, at most T us (a reset bit that clears itself)"),
    OpKind("rmw", "rmw", 5, frozenset({"mask", "value"}), frozenset({"mask", "value"}),
           syntax="`{ rmw = R, mask = M, value = V }`",
           does="load, then store (raw & ~M) \\| V"),
    OpKind("drain", "drain", 6, frozenset({"while", "mask", "value", "max"}),
           frozenset({"while", "mask", "max"}), kvm=_NO_CLOCK,
           syntax="`{ drain = R, while = S, mask = M, max = N }`",
           does="load R while S & M == M (or `value`), at most N times per drain op; the loads are "
                "counted (a UART's bytes while LSR.DR is set)"),
    OpKind("spin", "spin_us", 7, frozenset(), frozenset(),
           kvm="the guest has no clock calibrated when its program is compiled", max_us=100_000,
           syntax="`{ spin_us = T }`",
           does="busy-wait T microseconds on the monotonic clock, the CPU kept (a handler made "
                "slower by a known amount: an injected delay)"),
)

BY_NAME = {k.name: k for k in KINDS}
BY_KEY = {k.key: k for k in KINDS}
KVM_KINDS = tuple(k.name for k in KINDS if k.kvm is None)


def c_enum():
    """The C loop's op codes, as csrc/build.py compiles them in."""
    return "enum { " + ", ".join(f"PYVFIO_OP_{k.name.upper()} = {k.code}" for k in KINDS) + " };\n"


def guide_table():
    """The guide's table of the ops (pyvfio/profiles/README.md holds it verbatim)."""
    rows = ["| op | does |", "|---|---|"]
    rows += [f"| {k.syntax} | {k.does} |" for k in KINDS]
    return "\n".join(rows) + "\n"
