"""`pyvfio unbind BDF [--dry-run] [--json]`: give a device back to the driver it had
before `pyvfio bind`, with every device bound together with it (bind --group).

--json prints pyvfio.host.bind.Plan.to_json plus "done" and "not_restored"
({bdf: driver it has now} for devices whose old driver did not take them back).
"""

import json

from ..errors import PyvfioError
from ..host import bind, paths
from .bind_cmd import report


def add_arguments(parser):
    parser.add_argument("bdf", metavar="BDF", help="PCI address, e.g. 0000:01:00.0")
    parser.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args):
    root = paths.host_root()
    plan = bind.plan_unbind(args.bdf, root=root)
    wrong = {} if args.dry_run else bind.unbind(plan, root=root)
    if args.json:
        print(json.dumps({**plan.to_json(), "done": not args.dry_run,
                          "not_restored": wrong}, indent=2))
    else:
        report(plan, args.dry_run)
    if wrong:
        bdf, got = next(iter(wrong.items()))
        raise PyvfioError(f"{bdf} did not go back to its old driver (now: {got or 'none'})",
                          f"load that driver and run: echo {bdf} > /sys/bus/pci/drivers_probe")
    return 0
