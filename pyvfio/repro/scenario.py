"""Scenario files (TOML) for runs on real kernels.

    loops = 200                      # interrupts per cell
    [run]                            # how every cell runs
    profile = "edu"                  # default: probe the card
    watchdog_ms = 500
    recover = false
    threshold_p99_us = 100.0         # optional: a cell above it does not match
    [matrix]                         # the axes; each a value or a list
    nointxmask = [0, 1]
    policy = ["kernel", "lazy", "unlazy"]   # kernel: leave the kernel's choice
    unmask = ["ioctl", "eventfd"]
    engine = ["c"]
    access = ["mmap"]
    [lab]                            # pyvfio repro --lab ARCH: the machines to boot
    card = "edu"
    ppc64le = [{ kernel = "6.12", ic = "xive" }, { kernel = "6.12", ic = "xics" }]
    x86_64 = [{ kernel = "6.1" }, { kernel = "6.12" }]
    [[expect]]                       # first match wins; unmatched cells expect what the
    when = { ic = "xive", nointxmask = 1, policy = "lazy" }    # model host predicts
    verdict = "stall after 1"

[[scenario]] tables (the model host's scenarios) may stand in the same file; they
are read by `pyvfio repro --model` and ignored here.  Unknown keys and bad values
are errors naming the key and its line.
"""

import itertools
import re
import tomllib
from dataclasses import asdict, dataclass, field

from ..errors import UsageError
from ..intx import UNMASK_MODES

POLICIES = ("kernel", "lazy", "unlazy")
NA = "-"
AXES = {"nointxmask": (0, 1), "policy": POLICIES, "unmask": UNMASK_MODES,
        "engine": ("c", "python"), "access": ("mmap", "rw")}
DEFAULT_AXES = {"nointxmask": [0, 1], "policy": ["kernel"], "unmask": ["ioctl", "eventfd"],
                "engine": ["c"], "access": ["mmap"]}
RUN_KEYS = {"profile": str, "watchdog_ms": int, "recover": bool, "threshold_p99_us": (int, float)}
LAB_ARCHES = ("x86_64", "ppc64le")
KEY_WORDS = ("arch", "kernel", "ic") + tuple(AXES)


@dataclass(frozen=True)
class Cell:
    """One run of the matrix on one machine."""
    nointxmask: int
    policy: str
    unmask: str
    engine: str
    access: str

    def key(self, **machine):
        return {**machine, **asdict(self)}


@dataclass
class Plan:
    path: str
    loops: int = 200
    run: dict = field(default_factory=lambda: {"profile": None, "watchdog_ms": 500, "recover": False,
                                               "threshold_p99_us": None})
    axes: dict = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_AXES.items()})
    lab: dict = field(default_factory=dict)
    lab_card: str = "edu"
    expect: list = field(default_factory=list)   # [(when dict, verdict)]

    def cells(self, masks_at_device):
        """The cells, in order.  Where vfio masks with DisINTx (a 2.3 card with
        nointxmask=0) the IRQ is never disabled, so the policy axis collapses."""
        out = []
        for nim, pol, um, eng, acc in itertools.product(*(self.axes[a] for a in AXES)):
            if masks_at_device and nim == 0:
                pol = NA
            c = Cell(nim, pol, um, eng, acc)
            if c not in out:
                out.append(c)
        return out

    def expected(self, key):
        """The expected verdict for a cell key, or None: the model decides."""
        for when, verdict in self.expect:
            if all(key.get(k) == v for k, v in when.items()):
                return verdict
        return None

    def needs_policy_module(self):
        return any(p in ("lazy", "unlazy") for p in self.axes["policy"])


def _line_of(text, key):
    m = re.search(rf"^\s*{re.escape(key)}\s*=", text, re.M) or re.search(rf"^\s*\[+\s*{re.escape(key)}\b", text, re.M)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _err(path, text, key, msg, hint=None):
    line = _line_of(text, key)
    where = f"{path}:{line}" if line else path
    return UsageError(f"{where}: {msg}", hint)


def _values(path, text, axis, value):
    vals = value if isinstance(value, list) else [value]
    allowed = AXES[axis]
    for v in vals:
        if isinstance(v, bool) or v not in allowed:
            raise _err(path, text, axis, f"unknown {axis} value {v!r}",
                       f"use {', '.join(map(str, allowed))}")
    if not vals:
        raise _err(path, text, axis, f"{axis} lists no value")
    return vals


def load(path):
    from . import named_scenario
    path = named_scenario(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read scenario file {path}: {exc.strerror}") from None
    text = raw.decode(errors="replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", "fix the line it names") from None
    plan = Plan(str(path))
    for key, value in doc.items():
        if key == "loops":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**7:
                raise _err(path, text, key, f"loops must be a whole number from 1 to 10000000, not {value!r}")
            plan.loops = value
        elif key == "run":
            for k, v in value.items():
                if k not in RUN_KEYS:
                    raise _err(path, text, k, f"unknown key {k!r} in [run]", f"known: {', '.join(RUN_KEYS)}")
                if isinstance(v, bool) and RUN_KEYS[k] is not bool or not isinstance(v, RUN_KEYS[k]):
                    raise _err(path, text, k, f"[run] {k} has the wrong type ({v!r})")
                plan.run[k] = v
        elif key == "matrix":
            for k, v in value.items():
                if k not in AXES:
                    raise _err(path, text, k, f"unknown axis {k!r} in [matrix]", f"axes: {', '.join(AXES)}")
                plan.axes[k] = _values(path, text, k, v)
        elif key == "lab":
            for k, v in value.items():
                if k == "card":
                    from ..lab.config import CARDS
                    if v not in CARDS:
                        raise _err(path, text, k, f"unknown lab card {v!r}", f"use {', '.join(CARDS)}")
                    plan.lab_card = v
                elif k in LAB_ARCHES:
                    if not isinstance(v, list) or not all(isinstance(m, dict) for m in v):
                        raise _err(path, text, k, f"[lab] {k} must be a list of {{ kernel = ..., ic = ... }}")
                    for m in v:
                        bad = set(m) - {"kernel", "ic"}
                        if bad:
                            raise _err(path, text, k, f"[lab] {k}: unknown key(s) {', '.join(sorted(bad))}",
                                       "a machine has kernel and ic")
                    plan.lab[k] = v
                else:
                    raise _err(path, text, k, f"unknown key {k!r} in [lab]", f"use card, {', '.join(LAB_ARCHES)}")
        elif key == "expect":
            for n, e in enumerate(value, 1):
                bad = set(e) - {"when", "verdict"}
                if bad or "verdict" not in e or not isinstance(e.get("when", {}), dict):
                    raise _err(path, text, "expect", f"[[expect]] #{n} needs verdict = \"...\" and "
                               "an optional when = { axis = value }")
                for k in e.get("when", {}):
                    if k not in KEY_WORDS:
                        raise _err(path, text, "when", f"[[expect]] #{n}: unknown key {k!r} in when",
                                   f"use {', '.join(KEY_WORDS)}")
                plan.expect.append((e.get("when", {}), e["verdict"]))
        elif key != "scenario":
            raise _err(path, text, key, f"unknown key {key!r}",
                       "top-level keys: loops, [run], [matrix], [lab], [[expect]], [[scenario]]")
    return plan
