"""`pyvfio report FILE|DIR [--html OUT.html] [--svg OUT.svg] [--baseline FILE]`: the
summary table of a result file, and the pictures people look at.  `--html` writes
one static page (pyvfio/report/html.py: the verdict grid machine x cell, each
cell's histogram, the machines' facts, the comparison across machines and with the
baseline); a DIR is the --out of `pyvfio fleet run`, or a folder of result files.
`--svg` draws one result file as `repro --svg` does.  With `--baseline` it is a gate,
as `pyvfio compare` is: exit 1 when a machine's verdict changed against the
baseline, a cell is on one side only (unless --allow-missing), or the baseline has
no cell of a machine."""

import os

from ..errors import UsageError
from ..report import cells, html, machines, summary, svg
from ..results import check_writable


def add_arguments(p):
    p.add_argument("path", metavar="FILE|DIR",
                   help="a result of pyvfio run/repro --json, or the --out folder of pyvfio fleet run")
    p.add_argument("--html", metavar="OUT", help="write the static HTML page here")
    p.add_argument("--svg", metavar="OUT", help="draw the result file's picture here (a FILE only)")
    p.add_argument("--baseline", metavar="FILE",
                   help="a result to compare every machine with (exit 1 when one differs)")
    p.add_argument("--allow-missing", action="store_true",
                   help="with --baseline: a cell on one side only is not a difference")


def run(args):
    check_writable(args.html, "write the page to")
    check_writable(args.svg, "write the picture to")
    if not os.path.exists(args.path):
        raise UsageError(f"{args.path}: no such file or folder",
                         "give a result of pyvfio repro --json or the --out folder of pyvfio fleet run")
    if args.svg and os.path.isdir(args.path):
        raise UsageError("--svg draws one result file", "use --html for a folder (a fleet's --out)")
    ms, base, bname, fleet = html.load(args.path, args.baseline)
    if os.path.isdir(args.path):
        for m in ms:
            print(f"{m.name}: " + summary.table(m.report).splitlines()[-1] if m.cells else f"{m.name}: no cells")
        comb = machines.combined(ms)
        print(f"together: {comb['cells']} cell(s), {comb['mismatched']} not as expected")
    else:
        print(summary.table(cells.load(args.path)))
    if args.svg:
        svg.write(cells.load(args.path), args.svg)
    gate = _against_baseline(ms, base, bname, args.allow_missing) if base is not None else 0
    if args.html:
        from ..results import write_atomic
        write_atomic(args.html, html.render(ms, base, bname, fleet), "write the page to")
        print(f"wrote {args.html}")
    return gate


def _against_baseline(ms, base, bname, allow_missing):
    """One line per machine (pyvfio.report.compare's summary); 1 when one differs."""
    from ..report import compare
    failed = False
    for m in ms:
        r = machines.against(m, base, bname or "baseline", allow_missing=allow_missing)
        if r is None:
            print(f"against the baseline, {m.name}: DIFFERENT (the baseline has no cell of this machine)")
            failed = True
            continue
        print(f"against the baseline, {m.name}: " + compare.summary_line(r).removeprefix("summary: "))
        failed |= r["changed"]
    return 1 if failed else 0
