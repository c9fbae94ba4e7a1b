"""The human-readable report: one line per check; evidence (for problems, the facts
doctor exists to show, or everything when verbose) and fix indented."""

from .check import FAIL, OK, WARN

_MARK = {OK: "ok", WARN: "warn", FAIL: "FAIL"}
ALWAYS_EVIDENCE = ("unlazy_fix", "irq_controller", "card_controller", "disintx", "irq_route",
                   "irq_exclusive")


def render(d, verbose=False):
    s = d.system
    out = [f"pyvfio doctor: Linux {s.kernel} {s.machine}" + (f", card {d.bdf}" if d.bdf else "")]
    width = max((len(c.name) for c in d.checks), default=10)
    for c in d.checks:
        out.append(f"  {_MARK[c.status]:<4}  {c.name:<{width}}  {c.summary}")
        if c.evidence and (verbose or c.status != OK or c.name in ALWAYS_EVIDENCE):
            out.append(f"  {'':<4}  {'':<{width}}  evidence: {c.evidence}")
        if c.fix and c.status != OK:
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
    return "\n".join(out)
