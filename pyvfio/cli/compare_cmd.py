"""`pyvfio compare A.json B.json [--json FILE]`: what changed between two result files
(`pyvfio run --json` or `pyvfio repro --json`; two kernels, machines or policies),
cell by cell.  Exit 0 when no verdict changed, 1 when one did; a file that is not a
pyvfio run/repro result is a one-line error (exit 2)."""

import sys

from ..report import cells, compare
from ..results import envelope, write_json


def add_arguments(parser):
    parser.add_argument("a", metavar="A.json", help="the reference result")
    parser.add_argument("b", metavar="B.json", help="the result to compare with it")
    parser.add_argument("--json", metavar="FILE", help="write the comparison as JSON (atomically)")
    parser.add_argument("--ignore", action="append", default=[], metavar="AXIS",
                        help="leave this key axis out when matching cells (repeatable); axes that "
                             "differ only between the two files are left out anyway")


def run(args):
    a, b = cells.load(args.a), cells.load(args.b)
    ignore = [x.strip() for item in args.ignore for x in item.split(",") if x.strip()]
    result = compare.compare(a, b, args.a, args.b, ignore)
    print(compare.render(result))
    if args.json:
        body = {k: v for k, v in result.items() if k != "kind"}
        write_json(args.json, envelope("compare", **body))
    sys.stdout.flush()
    return 1 if result["changed"] else 0
