"""pyvfio repro: run the INTx scenario matrix and print a verdict per scenario.

    pyvfio repro                      # the model host (the default: no device named)
    pyvfio repro --model --json m.json
    pyvfio repro --trace --controller xive --card non-2.3 --policy lazy --unmask ioctl
    pyvfio repro --scenario cases.toml

Structure, for the backends still to come (a card by BDF, a lab VM by --lab ARCH):
`select_scenarios(args)` turns options or a scenario file into `Scenario`s,
`BACKENDS` maps a backend name to a runner with the signature of
`pyvfio.sim.matrix.run_model`, and `run` prints the same table and JSON whatever
ran the scenarios.
"""

import sys
import tomllib

from ..errors import UsageError
from ..results import envelope, write_json
from ..sim import matrix
from ..sim.matrix import AXES, SCENARIO_KEYS
from ..sim.trace import Trace
from ..sim.xics import VARIANTS as XICS_VARIANTS

DEFAULT_LOOPS, DEFAULT_TRACE_LOOPS, MAX_LOOPS = 100, 2, 10**7
KNOB_KEYS = ("nointxmask", "xics_variant", "xive_set_pq00_retriggers")


def add_arguments(p):
    p.add_argument("bdf", nargs="?", help="run the scenario's matrix on this card (bound to vfio-pci)")
    p.add_argument("--model", action="store_true",
                   help="run on the model host (the default when no device is given)")
    p.add_argument("--lab", metavar="ARCH", choices=("x86_64", "ppc64le"),
                   help="run the scenario's matrix in lab VMs (x86_64 or ppc64le)")
    p.add_argument("--here", action="store_true",
                   help="keep vfio-pci as loaded: run only the cells of its nointxmask (used in lab VMs)")
    p.add_argument("--force", action="store_true",
                   help="reload vfio-pci even though other devices are bound to it")
    p.add_argument("--svg", metavar="FILE", help="draw the verdict grid and latency histograms")
    p.add_argument("--timeout", type=float, default=900, metavar="S",
                   help="--lab: seconds per VM boot before it is killed (default 900)")
    sel = p.add_argument_group("scenario selection (each repeatable or comma-separated; default: all)")
    sel.add_argument("--controller", action="append", metavar="NAME",
                     help=f"interrupt controller: {', '.join(AXES['controller'])}")
    sel.add_argument("--card", action="append", metavar="KIND",
                     help="2.3 (DisINTx masking) or non-2.3 (masking at the controller)")
    sel.add_argument("--policy", action="append", metavar="NAME",
                     help="genirq disable: lazy (no 8b9f128947dd) or unlazy (IRQ_DISABLE_UNLAZY); "
                          "applies only where vfio masks at the controller")
    sel.add_argument("--unmask", action="append", metavar="MODE",
                     help="per-interrupt unmask: ioctl or eventfd")
    sel.add_argument("--nointxmask", action="store_true",
                     help="vfio-pci loaded with nointxmask=1: a 2.3 card is masked at the controller")
    sel.add_argument("--xics-variant", default="qemu", metavar="NAME",
                     help=f"XICS behaviour: {', '.join(XICS_VARIANTS)} (default qemu)")
    sel.add_argument("--xive-set-pq00-retriggers", action="store_true",
                     help="XIVE knob: SET_PQ_00 re-triggers an asserted LSI (QEMU: it does not)")
    sel.add_argument("--scenario", metavar="FILE",
                     help="scenarios from a TOML file ([[scenario]] tables with the keys above)")
    p.add_argument("-l", "--loops", type=int, metavar="N",
                   help=f"interrupts per scenario (default {DEFAULT_LOOPS}, "
                        f"{DEFAULT_TRACE_LOOPS} with --trace)")
    p.add_argument("--recover", action="store_true",
                   help="after a stall, poll the card and disable/re-enable INTx, then go on")
    p.add_argument("--trace", action="store_true",
                   help="print the step-by-step event trace of one scenario")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON (atomically)")


# -- scenario selection --------------------------------------------------------

def _values(opt):
    if not opt:
        return None
    return [v.strip() for item in opt for v in item.split(",") if v.strip()]


def _knobs(d):
    return {"nointxmask": d.get("nointxmask", False),
            "xics_variant": d.get("xics_variant", "qemu"),
            "xive_set_pq00_retriggers": d.get("xive_set_pq00_retriggers", False)}


def select_scenarios(args):
    axes_given = any((args.controller, args.card, args.policy, args.unmask, args.nointxmask,
                      args.xics_variant != "qemu", args.xive_set_pq00_retriggers))
    if args.scenario:
        if axes_given:
            raise UsageError("--scenario and the scenario options (--controller, --card, ...) "
                             "exclude each other", "put every choice in the file, or drop --scenario")
        return load_scenario_file(args.scenario)
    return matrix.scenarios(_values(args.controller), _values(args.card),
                            _values(args.policy), _values(args.unmask),
                            **_knobs(vars(args)))


def _as_list(path, n, key, value):
    vals = value if isinstance(value, list) else [value]
    if not vals or not all(isinstance(v, str) for v in vals):
        raise UsageError(f"{path}: [[scenario]] #{n}: {key} must be a name or a list of names")
    return vals


def load_scenario_file(path):
    """[[scenario]] tables; each axis key a name or a list (omitted: every value)."""
    from ..repro import named_scenario
    path = named_scenario(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read scenario file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        where = str(exc)
        if "end of document" in where:             # tomllib names no line there
            with open(path, "rb") as f:
                where += f" (line {max(1, len(f.read().splitlines()))}, the last)"
        raise UsageError(f"{path}: not valid TOML: {where}",
                         "see https://toml.io; each case is a [[scenario]] table") from None
    unknown = set(doc) - {"scenario", "loops", "run", "matrix", "lab", "expect"}
    if unknown:
        raise UsageError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}",
                         "expected [[scenario]] tables (and optionally loops = N)")
    tables = doc.get("scenario")
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"{path}: no [[scenario]] table", "add one, e.g. [[scenario]] controller = \"xive\"")
    out = []
    for n, t in enumerate(tables, 1):
        bad = set(t) - SCENARIO_KEYS
        if bad:
            raise UsageError(f"{path}: [[scenario]] #{n}: unknown key(s) {', '.join(sorted(bad))}",
                             f"known keys: {', '.join(sorted(SCENARIO_KEYS))}")
        for key in ("nointxmask", "xive_set_pq00_retriggers"):
            if key in t and not isinstance(t[key], bool):
                raise UsageError(f"{path}: [[scenario]] #{n}: {key} must be true or false")
        if "xics_variant" in t and not isinstance(t["xics_variant"], str):
            raise UsageError(f"{path}: [[scenario]] #{n}: xics_variant must be a name")
        axes = {k: _as_list(path, n, k, t[k]) if k in t else None for k in AXES}
        try:
            out.extend(matrix.scenarios(axes["controller"], axes["card"], axes["policy"],
                                        axes["unmask"], **_knobs(t)))
        except UsageError as exc:
            raise UsageError(f"{path}: [[scenario]] #{n}: {exc.message}", exc.hint) from None
    loops = doc.get("loops")
    if loops is not None and (not isinstance(loops, int) or isinstance(loops, bool)):
        raise UsageError(f"{path}: loops must be an integer")
    return _dedup(out), loops


def _dedup(items):
    seen, out = set(), []
    for s in items:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


# -- backends ------------------------------------------------------------------

BACKENDS = {"model": matrix.run_model}


def pick_backend(args):
    """Only the model host exists yet; a BDF or --lab ARCH will choose others."""
    return "model"


# -- the command ---------------------------------------------------------------

def run(args):
    if args.bdf or args.lab or args.here:
        if args.model:
            raise UsageError("--model runs the model host; it excludes a BDF, --lab and --here",
                             "drop --model to run on a real kernel")
        from ..repro import real
        return real.run(args)
    picked = select_scenarios(args)
    file_loops = None
    if isinstance(picked, tuple):
        picked, file_loops = picked
    if args.loops is not None:
        loops = args.loops
    elif file_loops is not None:
        loops = file_loops
    else:
        loops = DEFAULT_TRACE_LOOPS if args.trace else DEFAULT_LOOPS
    if not 1 <= loops <= MAX_LOOPS:
        raise UsageError(f"loop count {loops} is out of range", f"use 1 to {MAX_LOOPS}")
    backend = pick_backend(args)
    runner = BACKENDS[backend]

    if args.trace:
        if len(picked) != 1:
            names = ", ".join(s.name for s in picked[:4]) + (", ..." if len(picked) > 4 else "")
            raise UsageError(f"--trace shows one scenario; the options select {len(picked)} ({names})",
                             "choose one value each of --controller, --card, --policy, --unmask")
        trace = Trace()
        outcome = runner(picked[0], loops, recover=args.recover, trace=trace)
        print(f"scenario {picked[0].name}, {loops} interrupt(s), {backend} host")
        print(trace.format())
        print(f"verdict: {outcome.verdict}  (delivered {outcome.delivered}/{loops}, "
              f"/proc/interrupts {outcome.irq_count}, controller deliveries "
              f"{outcome.controller_deliveries})")
        at_stall = outcome.detail.get("host_at_stall")
        if at_stall:
            print("host state at the stall: " + ", ".join(
                f"{k}={v}" for k, v in at_stall.items() if k not in ("irq", "chip")))
        outcomes = [outcome]
        extra = {"trace": trace.as_json()}
    else:
        outcomes = matrix.run_matrix(picked, loops, runner=runner, recover=args.recover)
        print(matrix.table(outcomes))
        extra = {}
    if args.json:
        write_json(args.json, envelope("repro", backend=backend, loops=loops,
                                       scenarios=[o.to_json() for o in outcomes], **extra))
    sys.stdout.flush()
    return 0
