"""The human-readable report: one line per check; evidence (for problems, the facts
doctor exists to show, or everything when verbose) and fix indented."""

from .check import FAIL, NA, OK, WARN

_MARK = {OK: "ok", WARN: "warn", FAIL: "FAIL", NA: "n/a"}
ALWAYS_EVIDENCE = ("platform", "unlazy_fix", "irq_controller", "card_controller", "disintx", "irq_route",
                   "irq_exclusive")


def render(d, verbose=False):
    s = d.system
    out = [f"pyvfio doctor: Linux {s.kernel} {s.machine}" + (f", card {d.bdf}" if d.bdf else "")]
    width = max((len(c.name) for c in d.checks), default=10)
    for c in d.checks:
        out.append(f"  {_MARK[c.status]:<4}  {c.name:<{width}}  {c.summary}")
        if c.evidence and (verbose or c.status not in (OK, NA) or c.name in ALWAYS_EVIDENCE):
            out.append(f"  {'':<4}  {'':<{width}}  evidence: {c.evidence}")
        if c.fix and c.status in (WARN, FAIL):
            out.append(f"  {'':<4}  {'':<{width}}  fix: {c.fix}")
    fails = d.failures
    warns = [c for c in d.checks if c.status == WARN]
    if fails:
        out.append(f"{len(fails)} problem(s) stop INTx passthrough here: "
                   + ", ".join(c.name for c in fails))
    elif warns:
        out.append(f"ready, with {len(warns)} warning(s): " + ", ".join(c.name for c in warns))
    else:
        out.append("ready")
    without = d.facts.get("without_vfio")
    if without:
        out.append(f"VFIO cannot run on this host as it is ({'; '.join(without['why'])}). "
                   "What runs without it:")
        out += [f"  {w['command']:<22}  {w['what']}" for w in without["what_runs"]]
    return "\n".join(out)
