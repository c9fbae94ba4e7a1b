"""pyvfio repro, whatever runs the cells: one plan (scenario.load), one backend, one
judgement, one report.

    backend "vfio"   a card here (pyvfio repro BDF; --here inside a lab guest): cells.py
    backend "lab"    lab VMs, one boot per machine and nointxmask (--lab ARCH): lab.py
    backend "model"  the model host (--model, the default): model.py

Each backend returns cells ({"key", "verdict", "outcome", ...Run.to_json()}); every
cell is then judged against the scenario's [[expect]] (a real cell without one
expects what the model host predicts), and the report (envelope "repro" with
`cells`) is printed as the summary table, written as JSON and drawn as SVG.  Exit
0 when every cell matches, 1 when one does not (or a lab boot failed); with
`--format ktap`, kselftest's (pyvfio/report/formats/ktap.py).
"""

import json
import os
import sys

from .. import limits, verdict
from ..errors import EXIT_INTERRUPTED, EXIT_NOT_AS_EXPECTED, EXIT_OK, UsageError
from ..report.cells import check as cells_check
from ..results import STDOUT, check_outputs, envelope, write_outputs
from ..signals import held
from . import predict
from .scenario import Plan, load

TRACE_LOOPS = 2       # --trace without -l: a stall shows after two interrupts


def plan_from(args, backend):
    if args.scenario is not None or backend == "model":
        # the model's default: its whole matrix; in a lab VM (--here) the boot loaded the variant
        plan = load("model" if args.scenario is None else args.scenario, read_patches=not args.here)
    else:
        plan = Plan("(default matrix)")
    loops = args.loops if args.loops is not None else (TRACE_LOOPS if args.trace else None)
    if loops is not None:
        limits.check("loops", loops)
        plan.loops = loops
    if args.recover:
        plan.run["recover"] = True
    if args.nointxmask is not None:
        plan.axes["nointxmask"] = [args.nointxmask]
    return plan


def judge(plan, cells, with_model=True):
    """Expectation, model prediction and match for each cell (in place).  The model
    host's own cells are not predicted by the model (`with_model` False)."""
    for c in cells:
        key = c["key"]
        got = verdict.of_run_json(c)
        predicted = None
        if with_model:
            predicted = predict.predict(key, plan.loops, c.get("masks_at_device"), c.get("unlazy_fix"),
                                        c.get("chip"), plan.run["recover"], c.get("threaded"))
        exp = plan.expected(key)
        expected = exp if exp is not None else predicted
        c["predicted"] = predicted.to_json() if predicted else None
        c["expected"] = expected.to_json() if expected else None
        c["expected_from"] = "scenario" if exp is not None else ("model" if predicted else None)
        c["match"] = got.matches(expected) if got else None
        c["model_agrees"] = got.matches(predicted) if got and predicted else None
        limit = plan.run.get("threshold_p99_us")
        p99 = (c.get("latency") or {}).get("round_trip", {}).get("p99_us")
        if limit is not None and p99 is not None and p99 > limit:
            c["match"] = False
            c["threshold_exceeded"] = True


def backend_of(args):
    if args.force and not (args.bdf or args.here):
        raise UsageError("--force reloads vfio-pci on this machine's card, where other devices are bound to it",
                         "use it with a BDF; the model host and the lab's VMs reload nothing of yours")
    if args.bdf or args.lab or args.here:
        if args.model:
            raise UsageError("--model runs the model host; it excludes a BDF, --lab and --here",
                             "drop --model to run on a real kernel")
        given = [f"--{'card-kind' if a == 'card' else a.replace('_', '-')}"
                 for a in ("ic", "card", "policy", "unmask", "xics_variant", "xive_set_pq00_retriggers", "trace")
                 if getattr(args, a)]
        if given:
            raise UsageError(f"{', '.join(given)} select and trace the model host's cells",
                             "on a card or in the lab, put the axes in the scenario file ([matrix])")
        if args.kernel and not args.lab:
            raise UsageError("--kernel boots the scenario's lab machines on another lab kernel",
                             "use it with --lab ARCH")
        if args.vfio and not (args.bdf or args.here):
            raise UsageError("--vfio names the vfio-pci variant loaded on a card here",
                             "with --lab, put the variants in the scenario ([matrix] vfio = [...])")
        return "lab" if args.lab else "vfio"
    if args.vfio:
        raise UsageError("--vfio names the vfio-pci variant loaded on a card here",
                         "the model host runs the scenario's [matrix] vfio values")
    if args.kernel:
        raise UsageError("--kernel boots the scenario's lab machines on another lab kernel",
                         "use it with --lab ARCH")
    return "model"


def run(args):
    backend = backend_of(args)
    if args.format and args.trace:   # the trace's lines would break the format on stdout
        raise UsageError("--trace prints one cell's steps on stdout; --format prints the results there",
                         "use one of them (repro --json FILE, then pyvfio report FILE --format ...)")
    plan = plan_from(args, backend)
    # before any cell runs, not after the last one
    to_stderr = check_outputs([("--json", args.json), ("--svg", args.svg),
                               ("--format", STDOUT if args.format else None)], [("the scenario", plan.path)])
    extra, trace = {}, None
    if backend == "lab":
        from .lab import run_lab
        cells, boots, failures, stopped = run_lab(plan, args.lab, timeout=args.timeout, kernel=args.kernel)
        extra = {"boots": boots, "failures": failures, **({"stopped": stopped} if stopped else {})}
    elif backend == "vfio":
        from .cells import run_here
        vfio = args.vfio or "shipped"
        if vfio not in plan.axes["vfio"]:
            raise UsageError(f"--vfio {vfio} is not a vfio value of {plan.path}",
                             f"use one of {', '.join(plan.axes['vfio'])}")
        cells, extra = run_here(plan, args.bdf, here=args.here, force=args.force, vfio=vfio)
    else:
        cells, trace, stopped = _model(plan, args)
        if trace is not None:
            extra = {"trace": trace.as_json()}
        if stopped:
            extra = {"stopped": stopped}
    with held() as late:   # what was measured is judged and saved before a signal acts
        judge(plan, cells, with_model=backend != "model")  # (--lab judges the guests' cells again here)
        report = envelope("repro", backend=backend, scenario=plan.path, loops=plan.loops, cells=cells, **extra)
        fmt_exit = None
        if args.format:   # a format kernel CI reads, on stdout instead of the table
            from ..report import formats
            fmt_exit = formats.emit(formats.from_report(cells_check(report), os.path.basename(plan.path)),
                                    args.format)
        else:
            from ..report import summary
            print(summary.table(report), file=sys.stderr if to_stderr else sys.stdout)
        sys.stdout.flush()  # the summary first: a failed write below says where the cells are kept
        from ..report import svg
        write_outputs([(args.json, lambda: json.dumps(report, indent=2) + "\n", "write results to"),
                       (args.svg, lambda: svg.render(report), "write the picture to")])
    for f in extra.get("failures") or ():
        print(f"boot failed: {f['boot']}: {f['error']}", file=sys.stderr)
    bad = [c for c in cells if c.get("match") is False]
    if bad:
        print(f"{len(bad)} of {len(cells)} cells do not match their expectation", file=sys.stderr)
    stopped = extra.get("stopped")
    if stopped:  # the cells before it are judged and saved; the one it cut short is not
        during = f" during {stopped['during']}" if stopped["during"] else ""
        saved = f", saved in {args.json}" if args.json else ""
        print(f"pyvfio: {stopped['why']}{during}: {len(cells)} of {stopped['planned']} cells "
              f"measured{saved}", file=sys.stderr)
        return stopped["exit"]
    if late:
        print(f"pyvfio: interrupted after the last cell: {len(cells)} cells measured"
              f"{', saved in ' + args.json if args.json else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.format == "ktap":   # kselftest's exit: a stall fails, whatever was expected
        return fmt_exit
    return EXIT_NOT_AS_EXPECTED if bad or extra.get("failures") else EXIT_OK


def _model(plan, args):
    """The model backend's (cells, --trace's event trace of its one cell or None,
    `stopped` or None)."""
    from . import model
    select = {a: _values(getattr(args, a)) for a in model.SELECT if getattr(args, a)}
    knobs = {"xics_variant": args.xics_variant,
             "xive_set_pq00_retriggers": True if args.xive_set_pq00_retriggers else None}
    model.check_selection(select, knobs)
    planned = model.planned(plan, select, knobs)
    if not args.trace:
        cells, stopped = model.run_plan(planned, plan)
        return cells, None, stopped
    if len(planned) != 1:
        names = "; ".join(_label(k) for _, _, k in planned[:3]) + ("; ..." if len(planned) > 3 else "")
        raise UsageError(f"--trace shows one cell; the selection has {len(planned)} ({names})",
                         "choose one value each of --ic, --card-kind, --policy, --unmask")
    from ..sim.trace import Trace
    trace = Trace()
    m, c, k = planned[0]
    cell, o = model.run_cell(m, c, k, plan, trace=trace)
    if o.run.interrupted:   # the one cell cut short: nothing to show
        raise KeyboardInterrupt
    print(f"cell {_label(k)}, {plan.loops} interrupt(s), model host")
    print(trace.format())
    print(f"verdict: {o.judged.text}  (delivered {o.delivered}/{plan.loops}, "
          f"/proc/interrupts {o.irq_count}, controller deliveries {o.controller_deliveries})")
    at_stall = o.detail.get("host_at_stall")
    if at_stall:
        print("host state at the stall: " + ", ".join(
            f"{k}={v}" for k, v in at_stall.items() if k not in ("irq", "chip")))
    print()
    return [cell], trace, None


def _values(opt):
    return [v.strip() for item in opt for v in item.split(",") if v.strip()]


def _label(key):
    return " ".join(f"{a}={v}" for a, v in key.items())
