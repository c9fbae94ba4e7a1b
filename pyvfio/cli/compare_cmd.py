"""`pyvfio compare A.json B.json [--json FILE]`: what changed between two result files
(`pyvfio run --json` or `pyvfio repro --json`; two kernels, machines or policies),
cell by cell; `pyvfio compare R.json --split vfio=shipped,prefix`: one report's cells
of one axis value against another's (the kernel's shipped vfio-pci against the
prefix, each on the same kernel and machine).  Exit 0 when the two agree; 1 when a
verdict changed, a cell is on one side only (unless --allow-missing) or one side has
no cell while the other has some; a file that is not a pyvfio run/repro result is a
one-line error (exit 2).  Cells run with --explain also say which segment of the
round trip moved (report/compare.py): that never changes the exit."""

import sys

from ..errors import EXIT_NOT_AS_EXPECTED, EXIT_OK, UsageError
from ..report import cells, compare
from ..results import check_outputs, envelope, write_json
from .parser import add_json


def add_arguments(parser):
    parser.add_argument("a", metavar="A.json", help="the reference result")
    parser.add_argument("b", metavar="B.json", nargs="?", help="the result to compare with it")
    parser.add_argument("--split", metavar="AXIS=A,B",
                        help="compare one file's cells with AXIS=A against those with AXIS=B "
                             "(e.g. vfio=shipped,prefix)")
    add_json(parser, "the comparison")
    parser.add_argument("--ignore", action="append", default=[], metavar="AXIS",
                        help="leave this key axis out when matching cells (repeatable); axes that "
                             "differ only between the two files are left out anyway")
    parser.add_argument("--allow-missing", action="store_true",
                        help="a cell in one file only is not a difference (a narrower run against "
                             "a full matrix); an empty file against a full one still is")


def _ignored(args, a, b):
    """The --ignore axes, each one an axis of a cell of A or B (a typo would
    silently match nothing)."""
    ignore = [x.strip() for item in args.ignore for x in item.split(",")]
    axes = {k for side in (a, b) for c in cells.cells(side) for k in c.get("key", {})}
    for x in ignore:
        if x not in axes:
            named = repr(x) if not x else x
            raise UsageError(f"--ignore {named}: no cell of either file has that axis",
                             f"name one of: {', '.join(sorted(axes)) or '(the cells have no axes)'}")
    return ignore


def run(args):
    to_stderr = check_outputs([("--json", args.json)], [("A", args.a), ("B", args.b)])
    if args.split is not None:
        axis, _, values = args.split.partition("=")
        values = [v.strip() for v in values.split(",")]
        if args.b is not None or not axis or len(values) != 2 or not all(values) or values[0] == values[1]:
            raise UsageError(f"--split {args.split}: give one file and AXIS=A,B (two values)",
                             "e.g. pyvfio compare seed.json --split vfio=shipped,prefix")
        a, b = compare.split(cells.load(args.a), axis, *values)
        names = (f"{args.a} [{axis}={values[0]}]", f"{args.a} [{axis}={values[1]}]")
    else:
        if args.b is None:
            raise UsageError("compare needs two files (or one with --split AXIS=A,B)")
        a, b = cells.load(args.a), cells.load(args.b)
        names = (args.a, args.b)
    result = compare.compare(a, b, *names, _ignored(args, a, b), allow_missing=args.allow_missing)
    print(compare.render(result), file=sys.stderr if to_stderr else sys.stdout)
    sys.stdout.flush()
    if args.json:
        body = {k: v for k, v in result.items() if k != "kind"}
        write_json(args.json, envelope("compare", **body))
    sys.stdout.flush()
    return EXIT_NOT_AS_EXPECTED if result["changed"] else EXIT_OK
