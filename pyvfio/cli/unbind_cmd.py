"""`pyvfio unbind BDF [--dry-run] [--json FILE]`: give a device back to the driver it had
before `pyvfio bind`, with every device bound together with it (bind --group).

--json FILE writes envelope("unbind") with pyvfio.host.bind.Plan.to_json plus
"done" and "not_restored"
({bdf: driver it has now} for devices whose old driver did not take them back).
"""

import sys

from ..errors import EXIT_OK, PyvfioError
from ..host import bind, paths
from ..results import check_outputs, envelope, write_json
from .bind_cmd import report
from .parser import add_json


def add_arguments(parser):
    parser.add_argument("bdf", metavar="BDF", help="PCI address, e.g. 0000:01:00.0")
    parser.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    add_json(parser, "the plan", was_flag=True)


def run(args):
    out = sys.stderr if check_outputs([("--json", args.json)]) else sys.stdout
    root = paths.host_root()
    plan = bind.plan_unbind(args.bdf, root=root)
    wrong = {} if args.dry_run else bind.unbind(plan, root=root)
    report(plan, args.dry_run, out)
    if args.json:
        out.flush()
        write_json(args.json, envelope("unbind", **plan.to_json(), done=not args.dry_run, not_restored=wrong))
    if wrong:
        bdf, got = next(iter(wrong.items()))
        raise PyvfioError(f"{bdf} did not go back to its old driver (now: {got or 'none'})",
                          f"load that driver and run: echo {bdf} > /sys/bus/pci/drivers_probe")
    return EXIT_OK
