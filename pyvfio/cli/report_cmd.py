"""`pyvfio report FILE|DIR [--html OUT.html] [--svg OUT.svg] [--baseline FILE]`: the
summary table of a result file, and the pictures people look at.  `--html` writes
one static page (pyvfio/report/html.py: the verdict grid machine x cell, each
cell's histogram, the machines' facts, the comparison across machines and with the
baseline); a DIR is the --out of `pyvfio fleet run`, or a folder of result files.
`--svg` draws one result file as `repro --svg` does.  With `--baseline` it is a gate,
as `pyvfio compare` is: exit 1 when a machine's verdict changed against the
baseline, a cell is on one side only (unless --allow-missing), the baseline has
no cell of a machine, or no result has a machine of the baseline (unless
--allow-missing).  `--format ktap|junit|kcidb|lava` prints (or with `-o OUT`
writes, atomically) the results in a format kernel CI reads instead of the table
(pyvfio/report/formats, docs/formats.md); with ktap the exit is kselftest's (0 pass,
1 fail, 4 skip)."""

import os
import sys

from ..errors import EXIT_NOT_AS_EXPECTED, EXIT_OK, UsageError
from ..report import cells, html, machines, summary, svg
from ..report.formats import FORMATS
from ..results import STDOUT, check_outputs, write_outputs


def add_arguments(p):
    p.add_argument("path", metavar="FILE|DIR",
                   help="a result of pyvfio run/repro --json, or the --out folder of pyvfio fleet run")
    p.add_argument("--html", metavar="FILE", help="write the static HTML page here")
    p.add_argument("--svg", metavar="FILE", help="draw the result file's picture here (of a result file only)")
    p.add_argument("--baseline", metavar="FILE",
                   help="a result to compare every machine with (exit 1 when one differs)")
    p.add_argument("--allow-missing", action="store_true",
                   help="with --baseline: a cell on one side only is not a difference")
    p.add_argument("--format", choices=FORMATS,
                   help="print the results as KTAP, JUnit XML, KCIDB v5.3 JSON or lava-test-case lines "
                        "instead of the table (docs/formats.md)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="--format: write it here (atomically) instead of stdout (- is stdout)")


def run(args):
    if args.allow_missing and not args.baseline:
        raise UsageError("--allow-missing is about the --baseline's cells", "add --baseline FILE, or drop it")
    if args.output is not None and not args.format:
        raise UsageError("-o writes a --format", "add --format ktap|junit|kcidb|lava, or use --html/--svg")
    to_stderr = check_outputs([("--html", args.html), ("--svg", args.svg),
                               ("-o", (args.output or STDOUT) if args.format else None)],
                              [("the result file", args.path), ("the --baseline", args.baseline)])
    out = sys.stderr if to_stderr else sys.stdout
    if not os.path.exists(args.path):
        raise UsageError(f"{args.path}: no such file or folder",
                         "give a result of pyvfio repro --json or the --out folder of pyvfio fleet run")
    if args.format:
        if args.html or args.svg or args.baseline:
            raise UsageError("--format prints one format", "run --html, --svg or --baseline without it")
        from ..report import formats
        return formats.emit(formats.from_path(args.path), args.format, args.output)
    if args.svg and os.path.isdir(args.path):
        raise UsageError("--svg draws one result file", "use --html for a folder (a fleet's --out)")
    ms, base, bname, fleet = html.load(args.path, args.baseline)
    if os.path.isdir(args.path):
        for m in ms:
            print(f"{m.name}: " + summary.table(m.report).splitlines()[-1] if m.cells else f"{m.name}: no cells",
                  file=out)
        comb = machines.combined(ms)
        print(f"together: {comb['cells']} cell(s), {comb['mismatched']} not as expected", file=out)
    else:
        print(summary.table(cells.load(args.path)), file=out)
    # a gate when the user named a baseline; a fleet folder's own (the model) only shows on the page
    gate = _against_baseline(ms, base, bname, args.allow_missing, out) if args.baseline else EXIT_OK
    out.flush()
    write_outputs([(args.svg, lambda: svg.render(cells.load(args.path)), "write the picture to"),
                   (args.html, lambda: html.render(ms, base, bname, fleet), "write the page to")])
    if args.html and args.html != STDOUT:
        print(f"wrote {args.html}", file=out)
    return gate


def _against_baseline(ms, base, bname, allow_missing, out):
    """One line per machine (pyvfio.report.compare's summary); 1 when one differs."""
    from ..report import compare
    failed = False
    for m in ms:
        r = machines.against(m, base, bname or "baseline", allow_missing=allow_missing)
        if r is None:
            print(f"against the baseline, {m.name}: DIFFERENT (the baseline has no cell of this machine)",
                  file=out)
            failed = True
            continue
        print(f"against the baseline, {m.name}: " + compare.summary_line(r).removeprefix("summary: "), file=out)
        failed |= r["changed"]
    for b in machines.missing(ms, base):
        if allow_missing:
            print(f"against the baseline, {b.name}: missing (--allow-missing)", file=out)
        else:
            print(f"against the baseline, {b.name}: DIFFERENT (no result has this machine of the "
                  "baseline; --allow-missing to accept)", file=out)
            failed = True
    return EXIT_NOT_AS_EXPECTED if failed else EXIT_OK
