"""pyvfio repro on real kernels: a card here (BDF), or lab VMs (--lab ARCH).
Runs the cells, sets each one's expectation (the scenario's [[expect]], else the
model host's prediction), prints one table and writes one report."""

import sys

from ..cardlock import card_lock
from ..errors import PyvfioError, UsageError
from ..results import envelope, write_json
from . import predict
from .scenario import Plan, load


def plan_from(args):
    plan = load(args.scenario) if args.scenario else Plan("(default matrix)")
    if args.loops is not None:
        if not 1 <= args.loops <= 10**7:
            raise UsageError(f"loop count {args.loops} is out of range", "use 1 to 10000000")
        plan.loops = args.loops
    if args.recover:
        plan.run["recover"] = True
    return plan


def _here(args, plan):
    from ..host import pci
    from ..lab import guest
    from ..unlazy_fix import detect
    from .cells import run_cells

    facts = guest.facts()
    bdf = args.bdf
    if bdf is None:
        # in a lab guest: the scenario's lab card, or the only card bound
        bound = facts["bound"] if facts else []
        bdf = guest.bdf_of(plan.lab_card, facts) if facts else None
        if bdf is None and len(bound) == 1:
            bdf = bound[0]["bdf"]
        if bdf is None:
            raise UsageError("no card named", "give a BDF (pyvfio repro BDF), or --lab ARCH, or --model")
    bdf = pci.require(bdf)
    from ..host import system
    blockers = system.vfio_blockers(system.probe(), pci.device(bdf))
    if blockers:
        raise PyvfioError(f"VFIO cannot drive {bdf} here: " + "; ".join(r for r, _ in blockers),
                          "; ".join(f for _, f in blockers) + " (pyvfio doctor explains)")
    with card_lock(bdf):
        cells, machine = run_cells(bdf, plan, here=args.here, force=args.force,
                                   echo=lambda s: print(s, file=sys.stderr))
    if facts:
        fix = facts.get("unlazy_fix")
    else:
        fix = detect(machine["kernel"]).present
    for c in cells:
        c.update(masks_at_device=machine["masks_at_device"], chip=c.get("chip") or machine["chip"],
                 unlazy_fix=fix, kver=machine["kernel"])
    return "vfio", cells, {"bdf": bdf, "machine": machine, "lab": facts}


def judge(plan, cells):
    """Expectation, model prediction and match for each cell (in place)."""
    for c in cells:
        key = c["key"]
        c["predicted"] = predict.predict(key, plan.loops, c.get("masks_at_device"), c.get("unlazy_fix"),
                                         c.get("chip"), plan.run["recover"])
        exp = plan.expected(key)
        c["expected"] = exp if exp is not None else c["predicted"]
        c["expected_from"] = "scenario" if exp is not None else ("model" if c["predicted"] else None)
        c["match"] = predict.matches(c["verdict"], c["expected"])
        c["model_agrees"] = predict.matches(c["verdict"], c["predicted"])
        limit = plan.run.get("threshold_p99_us")
        p99 = (c.get("latency") or {}).get("round_trip", {}).get("p99_us")
        if limit is not None and p99 is not None and p99 > limit:
            c["match"] = False
            c["threshold_exceeded"] = True


def run(args):
    plan = plan_from(args)
    if args.lab:
        from .lab import run_lab
        cells, boots, failures = run_lab(plan, args.lab, timeout=args.timeout)
        backend, extra = "lab", {"boots": boots, "failures": failures}
    else:
        backend, cells, extra = _here(args, plan)
    judge(plan, cells)  # (repro --lab judges again on the host, with every boot's facts)
    report = envelope("repro", backend=backend, scenario=plan.path, loops=plan.loops,
                      cells=cells, **extra)
    if args.json:
        write_json(args.json, report)
    from ..report import summary
    print(summary.table(report))
    if args.svg:
        from ..report import svg
        svg.write_report(args.svg, report)
    if extra.get("failures"):
        for f in extra["failures"]:
            print(f"boot failed: {f['boot']}: {f['error']}", file=sys.stderr)
        return 1
    bad = [c for c in cells if c.get("match") is False]
    if bad:
        print(f"{len(bad)} of {len(cells)} cells do not match their expectation", file=sys.stderr)
        return 1
    return 0
