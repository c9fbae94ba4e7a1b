"""Scenario files (TOML): the one description of a repro run, whatever runs it (a
card here, lab VMs, the model host).

    loops = 200                      # interrupts per cell
    [run]                            # how every cell runs
    profile = "edu"                  # default: probe the card
    watchdog_ms = 500
    recover = false
    threshold_p99_us = 100.0         # optional: a cell above it does not match
    explain = true                   # optional (false): each cell's round trip broken down
                                     # into segments from the host's tracing (docs/explain.md)
    [matrix]                         # the axes; each a value or a list
    nointxmask = [0, 1]
    policy = ["kernel", "lazy", "unlazy"]   # kernel: leave the kernel's choice
    unmask = ["ioctl", "eventfd"]
    engine = ["c"]
    access = ["mmap"]
    vfio = ["shipped", "prefix"]     # vfio-pci: the distribution's, or rebuilt (lab only;
                                     # patch:FILE, prefix+patch:FILE: FILE beside the scenario)
    irq = ["intx", "msi"]            # optional (intx): an MSI cell has no policy or unmask
    guest = ["toy", "kvm"]           # optional (toy): kvm is a real vCPU (pyvfio/kvm, x86_64 only)
                                     # whose unmask values are KVM's --unmask: resample (the
                                     # kernel's resample irqfd), ioctl, eventfd (userspace, after
                                     # the guest's EOI exit); a toy cell has no resample
    [lab]                            # the machines: booted by --lab ARCH, run by --model
    card = "edu"
    ppc64le = [{ kernel = "6.12", ic = "xive" }, { kernel = "6.12", ic = "xics" }]
    x86_64 = [{ kernel = "6.1" }, { kernel = "6.12" }]
    [model]                          # machines only the model host runs (repro --model)
    ic = ["xive", "xics", "ioapic"]  # each a value or a list: every ic x card
    card = ["2.3", "non-2.3"]
    kernel = "6.12"                  # optional: what policy "kernel" means (a lab kernel)
    xics_variant = "qemu"            # optional model knobs (docs/model.md)
    xive_set_pq00_retriggers = false
    threaded = false                 # forced irq threading, as PREEMPT_RT runs (6.12-rt: always)
    [[expect]]                       # first match wins; a card or lab cell without one
    when = { ic = "xive", nointxmask = 1, policy = "lazy" }    # expects what the model
    verdict = "stall after 1"                                  # host predicts

Unknown keys and bad values are errors naming the key and its line.  The old
[[scenario]] tables (the model's cells written a second time) are refused: the
model now runs the [lab] machines themselves.
"""

import itertools
import tomllib
from dataclasses import asdict, dataclass, field

from .. import limits, verdict
from ..errors import UsageError
from ..host.masking import DEVICE, masked_at
from ..inputs import read_text
from ..intx import IRQ_KINDS, UNMASK_MODES
from ..profiles.tomlpos import key_lines, line_of
from ..results import KEY_DEFAULTS, NA
from ..vocabulary import SWITCHED, Access, Arch, Engine, Guest, Policy, Unmask, words
from . import machines

POLICIES = words(Policy)
GUESTS = words(Guest)
RESAMPLE = Unmask.RESAMPLE.value   # an unmask value only a kvm cell has (pyvfio.engine.kvm_engine.KVM_UNMASK)
SHIPPED = KEY_DEFAULTS["vfio"]
# vfio's values are vfio-pci variants (pyvfio/lab/vfio_build.py), checked by its parser.
AXES = {"nointxmask": (0, 1), "policy": POLICIES, "unmask": UNMASK_MODES + (RESAMPLE,),
        "engine": words(Engine), "access": words(Access), "vfio": None, "irq": tuple(IRQ_KINDS),
        "guest": GUESTS}
DEFAULT_AXES = {"nointxmask": [0, 1], "policy": ["kernel"], "unmask": ["ioctl", "eventfd"],
                "engine": ["c"], "access": ["mmap"], "vfio": [SHIPPED], "irq": ["intx"],
                "guest": ["toy"]}
RUN_KEYS = {"profile": str, "watchdog_ms": int, "recover": bool, "threshold_p99_us": (int, float),
            "explain": bool}
# the [run] numbers, bounded as `pyvfio run`'s options are (pyvfio/limits.py)
RUN_LIMITS = {"watchdog_ms": "watchdog_ms", "threshold_p99_us": "threshold_us"}
LAB_ARCHES = words(Arch)
MODEL_KEYS = {"ic": list, "card": list, "kernel": str, "xics_variant": str,
              "xive_set_pq00_retriggers": bool, "threaded": bool}
KEY_WORDS = ("arch", "kernel", "ic", "card", "xics_variant", "xive_set_pq00_retriggers",
             "threaded") + tuple(AXES)


@dataclass(frozen=True)
class Cell:
    """One run of the matrix on one machine."""
    nointxmask: int
    policy: str
    unmask: str
    engine: str
    access: str
    vfio: str = KEY_DEFAULTS["vfio"]      # the vfio-pci variant, as the scenario spells it
    irq: str = KEY_DEFAULTS["irq"]
    guest: str = KEY_DEFAULTS["guest"]    # toy: pyvfio's userspace guest; kvm: a real vCPU on KVM's irqchip

    def key(self, **machine):
        return {**machine, **asdict(self)}


@dataclass
class Plan:
    path: str
    loops: int = 200
    run: dict = field(default_factory=lambda: {"profile": None, "watchdog_ms": 500, "recover": False,
                                               "threshold_p99_us": None, "explain": False})
    axes: dict = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_AXES.items()})
    lab: dict = field(default_factory=dict)      # arch -> [ScenarioMachine]
    lab_card: str = "edu"
    model: list = field(default_factory=list)    # [ScenarioMachine] only the model runs
    expect: list = field(default_factory=list)   # [(when dict, Verdict)]
    vfio_specs: dict = field(default_factory=lambda: {SHIPPED: SHIPPED})  # axis value -> --vfio

    def cells(self, masks_at_device, kernel_fix=None, x86=True):
        """The cells, in order.  Where vfio masks with DisINTx (a 2.3 card with
        nointxmask=0) the IRQ is never disabled, so the policy axis collapses, and
        so does the prefix (8b9f128947dd changes only the controller-masking path).
        A rebuilt vfio-pci is its own policy: no policy module on it.  On a kernel
        whose vfio-pci lacks the fix (kernel_fix False) the prefix is the shipped one.
        An MSI is an edge with no line to mask or unmask: policy, unmask and the
        prefix collapse for it too.
        A kvm cell needs an x86 machine (`x86`): pyvfio's KVM guest is a real-mode x86
        program on KVM's PIC/IOAPIC, and POWER's KVM has no resample irqfd (no
        KVM_CAP_IRQFD_RESAMPLE on XIVE), so on a ppc64le machine kvm cells are dropped.
        It drives the INTx line only (no MSI), and its engine is the vCPU: the engine
        axis collapses to its first value, which names the cell (so a lab and a
        model report still differ in engine alone and compare cell by cell).  The
        unmask axis is KVM's --unmask for a kvm cell; resample, the kernel's
        resampler, is a kvm cell's only (a toy guest has none)."""
        out = []
        for values in itertools.product(*(self.axes[a] for a in AXES)):
            c = dict(zip(AXES, values))        # each axis by its name: Cell's fields
            kvm, intx = c["guest"] == "kvm", c["irq"] == "intx"
            if c["unmask"] == RESAMPLE and not kvm or kvm and (not x86 or not intx):
                continue
            if kvm:
                c["engine"] = self.axes["engine"][0]
            if masked_at(c["nointxmask"], masks_at_device) == DEVICE or not intx:
                c["policy"] = NA
                c["vfio"] = SHIPPED if c["vfio"] == "prefix" else c["vfio"]
            if not intx:
                c["unmask"] = NA
            if c["vfio"] == "prefix" and kernel_fix is False:
                c["vfio"] = SHIPPED
            if c["vfio"] != SHIPPED and c["policy"] in SWITCHED:
                continue
            cell = Cell(**c)
            if cell not in out:
                out.append(cell)
        return out

    def machines(self):
        """Every machine the model host runs: the [lab] ones of each arch, then [model]'s."""
        return [m for arch in self.lab for m in self.lab[arch]] + self.model

    def expected(self, key):
        """The expected Verdict for a cell key, or None: the model decides."""
        for when, expected in self.expect:
            if all(key.get(k) == v for k, v in when.items()):
                return expected
        return None

    def needs_policy_module(self):
        return any(p in SWITCHED for p in self.axes["policy"])


def _err(path, text, at, msg, hint=None):
    """The error at key path `at` (("model", "card"), ("expect", 0, "when")), as
    FILE:LINE by the one TOML locator profiles use."""
    lines = key_lines(text)
    line = line_of(lines, at) or line_of(lines, (*at, 0))      # or its first [[table]]
    where = f"{path}:{line}" if line else path
    return UsageError(f"{where}: {msg}", hint)


def _vfio_values(path, text, vals, plan, read_patches=True):
    """vfio variants; a patch file is named relative to the scenario file."""
    import os

    from ..lab import vfio_build
    for v in vals:
        if not isinstance(v, str):
            raise _err(path, text, ("matrix", "vfio"), f"unknown vfio value {v!r}", vfio_build.SYNTAX)
        base, sep, patch = v.partition("patch:")
        spec = base + sep + os.path.join(os.path.dirname(os.path.abspath(path)), patch) if sep else v
        try:
            vfio_build.parse(spec, read=read_patches)
        except UsageError as exc:
            raise _err(path, text, ("matrix", "vfio"), exc.message, exc.hint) from None
        plan.vfio_specs[v] = spec
    if not vals:
        raise _err(path, text, ("matrix", "vfio"), "vfio lists no value")
    _once(path, text, ("matrix", "vfio"), "vfio", vals)
    return vals


def _once(path, text, at, what, vals, shown=None):
    """Each value once: a value listed twice makes every cell of it twice, two cells
    of one key in the result (which compare refuses)."""
    seen = []
    for v in vals:
        if v in seen:
            raise _err(path, text, at, f"{what} lists {(shown or _toml)(v)} twice", "list each value once")
        seen.append(v)


def _values(path, text, axis, value):
    vals = value if isinstance(value, list) else [value]
    allowed = AXES[axis]
    for v in vals:
        if isinstance(v, bool) or v not in allowed:
            raise _err(path, text, ("matrix", axis), f"unknown {axis} value {v!r}",
                       f"use {', '.join(map(str, allowed))}")
    if not vals:
        raise _err(path, text, ("matrix", axis), f"{axis} lists no value")
    _once(path, text, ("matrix", axis), axis, vals)
    return vals


def load(path, read_patches=True):
    """The Plan of a scenario file.  `read_patches` False: vfio patch files are named,
    not read (inside a lab VM, `repro --here`, where the boot has loaded the variant
    and the host checked the patch; a copy of the scenario may sit elsewhere)."""
    from . import named_scenario
    if str(path) == "":
        raise UsageError("an empty path where a scenario file is expected",
                         "name a scenario file, or a shipped one: seed, card, model")
    path = named_scenario(path)
    text = read_text(path, "scenario file")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", "fix the line it names") from None
    plan = Plan(str(path))
    for key, value in doc.items():
        if key in ("run", "matrix", "lab", "model") and not isinstance(value, dict):
            raise _err(path, text, (key,), f"{key} must be a table ([{key}])")
        if key == "expect" and not (isinstance(value, list) and all(isinstance(e, dict) for e in value)):
            raise _err(path, text, (key,), "expect must be [[expect]] tables")
        if key == "loops":
            why = limits.problem("loops", value)
            if why:
                raise _err(path, text, (key,), f"loops must be a whole number in range, not {value!r}", why)
            plan.loops = value
        elif key == "run":
            for k, v in value.items():
                if k not in RUN_KEYS:
                    raise _err(path, text, ("run", k), f"unknown key {k!r} in [run]", f"known: {', '.join(RUN_KEYS)}")
                if isinstance(v, bool) and RUN_KEYS[k] is not bool or not isinstance(v, RUN_KEYS[k]):
                    raise _err(path, text, ("run", k), f"[run] {k} has the wrong type ({v!r})")
                why = limits.problem(RUN_LIMITS[k], v) if k in RUN_LIMITS else None
                if why:
                    raise _err(path, text, ("run", k), f"[run] {k} is {v!r}", why)
                plan.run[k] = v
        elif key == "matrix":
            for k, v in value.items():
                if k not in AXES:
                    raise _err(path, text, ("matrix", k), f"unknown axis {k!r} in [matrix]", f"axes: {', '.join(AXES)}")
                plan.axes[k] = _vfio_values(path, text, v if isinstance(v, list) else [v], plan,
                                            read_patches) \
                    if k == "vfio" else _values(path, text, k, v)
        elif key == "lab":
            if "card" in value:
                from ..lab.config import CARDS
                if not isinstance(value["card"], str) or value["card"] not in CARDS:
                    raise _err(path, text, ("lab", "card"),
                               f"unknown lab card {value['card']!r}", f"use {', '.join(CARDS)}")
                plan.lab_card = value["card"]
            for k, v in value.items():
                if k == "card":
                    continue
                if k in LAB_ARCHES:
                    if not isinstance(v, list) or not all(isinstance(m, dict) for m in v):
                        raise _err(path, text, ("lab", k), f"[lab] {k} must be a list of {{ kernel = ..., ic = ... }}")
                    for m in v:
                        bad = set(m) - {"kernel", "ic"}
                        if bad:
                            raise _err(path, text, ("lab", k), f"[lab] {k}: unknown key(s) {', '.join(sorted(bad))}",
                                       "a machine has kernel and ic")
                        wrong = [f for f in ("kernel", "ic") if f in m and not isinstance(m[f], str)]
                        if wrong:
                            raise _err(path, text, ("lab", k),
                                       f"[lab] {k}: {wrong[0]} = {_toml(m[wrong[0]])} is not a name",
                                       'e.g. { kernel = "6.12", ic = "xive" }')
                    try:
                        plan.lab[k] = [machines.lab_machine(k, m.get("kernel"), m.get("ic"), plan.lab_card)
                                       for m in v]
                    except UsageError as exc:
                        raise _err(path, text, ("lab", k), f"[lab] {k}: {exc.message}", exc.hint) from None
                    _once(path, text, ("lab", k), f"[lab] {k}", plan.lab[k],
                          lambda m: f"the machine {{ kernel = {_toml(m.kernel)}, ic = {_toml(m.ic)} }}")
                else:
                    raise _err(path, text, ("lab", k),
                               f"unknown key {k!r} in [lab]", f"use card, {', '.join(LAB_ARCHES)}")
        elif key == "model":
            plan.model = _model(path, text, value)
        elif key == "expect":
            for n, e in enumerate(value, 1):
                bad = set(e) - {"when", "verdict"}
                if bad or "verdict" not in e or not isinstance(e.get("when", {}), dict):
                    raise _err(path, text, ("expect", n - 1), f"[[expect]] #{n} needs verdict = \"...\" and "
                               "an optional when = { axis = value }")
                for k in e.get("when", {}):
                    if k not in KEY_WORDS:
                        raise _err(path, text, ("expect", n - 1, "when", k),
                                   f"[[expect]] #{n}: unknown key {k!r} in when",
                                   f"use {', '.join(KEY_WORDS)}")
                try:
                    expected = verdict.expectation(e["verdict"])
                except ValueError as exc:
                    raise _err(path, text, ("expect", n - 1, "verdict"), f"[[expect]] #{n}: {exc}") from None
                plan.expect.append((e.get("when", {}), expected))
        elif key == "scenario":
            raise _err(path, text, (key,), "[[scenario]] tables are no longer read: the model host runs "
                       "the [lab] machines and the [model] ones",
                       "replace them with [model] ic = [...], card = [...] (see pyvfio/repro/scenario.py)")
        else:
            raise _err(path, text, (key,), f"unknown key {key!r}",
                       "top-level keys: loops, [run], [matrix], [lab], [model], [[expect]]")
    for n, (when, _) in enumerate(plan.expect, 1):
        for k, v in when.items():
            why = _when_problem(plan, k, v)
            if why:
                raise _err(path, text, ("expect", n - 1, "when", k),
                           f"[[expect]] #{n}: when {k} = {_toml(v)} matches no cell", why)
    return plan


def _toml(v):
    return ("true" if v else "false") if isinstance(v, bool) else repr(v).replace("'", '"')


def _when_problem(plan, k, v):
    """None when a cell's key can have k = v; else what it can have.  An axis takes
    the values the matrix lists (policy and unmask also "-", where they collapse);
    a machine's key its kinds (arch and kernel any name: a card here is anywhere)."""
    if k in AXES:
        can = list(plan.axes[k]) + ([NA] if k in ("policy", "unmask") else []) + \
            ([SHIPPED] if k == "vfio" else []) + ([RESAMPLE] if k == "unmask" and "kvm" in plan.axes["guest"] else [])
    else:
        can = {"ic": machines.CONTROLLERS, "card": machines.CARDS, "xics_variant": machines.XICS_VARIANTS,
               "xive_set_pq00_retriggers": (False, True), "threaded": (False, True)}.get(k)
    if can is None:        # arch, kernel: a name
        return None if isinstance(v, str) else "give a name (a string)"
    if any(v == c and type(v) is type(c) for c in can):
        return None
    return f"{k} is one of {', '.join(_toml(c) for c in dict.fromkeys(can))}"


def _model(path, text, table):
    for k, v in table.items():
        want = MODEL_KEYS.get(k)
        if want is None:
            raise _err(path, text, ("model", k), f"unknown key {k!r} in [model]", f"known: {', '.join(MODEL_KEYS)}")
        if want is list and isinstance(v, str):
            continue
        if (want is list and not (isinstance(v, list) and v and all(isinstance(x, str) for x in v))) \
                or (want is not list and not isinstance(v, want)):
            raise _err(path, text, ("model", k), f"[model] {k} has the wrong type ({v!r})")
    as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
    for k in ("ic", "card"):
        _once(path, text, ("model", k), f"[model] {k}", as_list(table.get(k, [])))
    try:
        return machines.model_machines(
            as_list(table.get("ic", list(machines.CONTROLLERS))), as_list(table.get("card", list(machines.CARDS))),
            table.get("kernel"), table.get("xics_variant", "qemu"), table.get("xive_set_pq00_retriggers", False),
            table.get("threaded", False))
    except UsageError as exc:
        key = next((k for k in ("ic", "card", "kernel", "xics_variant") if k in table and k in exc.message), "model")
        raise _err(path, text, ("model", key), f"[model]: {exc.message}", exc.hint) from None
