"""`pyvfio bind BDF [--group] [--force] [--dry-run] [--json FILE]`: hand a device (or its
whole IOMMU group) to vfio-pci, remembering the driver it had.

Refuses, with exit status 4 (REFUSED), a device the host is using (an interface that is up
or routed, a mounted disk, the console) unless --force.  --dry-run prints the
sysfs writes without making them.  --json FILE writes envelope("bind") with
pyvfio.host.bind.Plan.to_json plus "done" (false for a dry run).
"""

import sys

from ..errors import EXIT_OK
from ..host import bind, paths
from ..results import check_outputs, envelope, write_json
from .parser import add_json


def add_arguments(parser):
    parser.add_argument("bdf", metavar="BDF", help="PCI address, e.g. 0000:01:00.0")
    parser.add_argument("--group", action="store_true",
                        help="bind every device of its IOMMU group (bridges are left alone)")
    parser.add_argument("--force", action="store_true", help="bind even if the host is using it")
    parser.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    add_json(parser, "the plan", was_flag=True)


def report(plan, dry_run, out=None):
    """Print a plan (bind or unbind) for people."""
    out = out or sys.stdout  # looked up now: a default bound at import would outlive a replaced stdout
    verb = "would " + plan.action if dry_run else plan.action
    group = f" (IOMMU group {plan.group})" if plan.group is not None else ""
    print(f"{verb} {plan.bdf}{group}:", file=out)
    for t in plan.targets:
        if plan.action == "bind":
            print(f"  {t['bdf']}: {t['driver'] or 'no driver'} -> vfio-pci", file=out)
        else:
            back = t["restore_to"] or ("no driver, as before" if t["known"] else "the kernel's choice")
            print(f"  {t['bdf']}: {t['driver'] or 'no driver'} -> {back}", file=out)
    for s in plan.skipped:
        print(f"  skip {s['bdf']}: {s['why']}", file=out)
    for r in plan.refusals:
        print(f"  forced: {r['bdf']}: {r['why']}", file=out)
    for n in plan.notes:
        print(f"  note: {n}", file=out)
    if dry_run:
        for step in plan.steps:
            print(f"    {step.describe()}", file=out)


def run(args):
    out = sys.stderr if check_outputs([("--json", args.json)]) else sys.stdout
    root = paths.host_root()
    plan = bind.plan_bind(args.bdf, group=args.group, force=args.force, root=root)
    if not args.dry_run and plan.targets:
        bind.bind(plan, root=root)
        if root == "/":
            from .. import cardlock

            for t in plan.targets:
                cardlock.prepare(t["bdf"])
    report(plan, args.dry_run, out)
    if not plan.targets:
        print("nothing to do", file=out)
    elif not args.dry_run:
        print(f"done: `pyvfio unbind {plan.bdf}` gives "
              f"{'them' if len(plan.targets) > 1 else 'it'} back", file=out)
    if args.json:
        out.flush()
        write_json(args.json, envelope("bind", **plan.to_json(), done=not args.dry_run))
    return EXIT_OK
