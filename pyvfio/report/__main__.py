"""python -m pyvfio.report FILE.json [--svg OUT.svg]: the summary table of a run or
repro result, and its picture (for results whose command did not draw one)."""

import argparse
import sys

from ..errors import PyvfioError
from . import cells, summary, svg


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m pyvfio.report", description=__doc__.split("\n")[0])
    p.add_argument("file", metavar="FILE.json", help="written by pyvfio run --json or repro --json")
    p.add_argument("--svg", metavar="OUT", help="write the picture here")
    args = p.parse_args(argv)
    try:
        report = cells.load(args.file)
        print(summary.table(report))
        if args.svg:
            svg.write(report, args.svg)
    except PyvfioError as exc:
        print(f"pyvfio: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
