"""Reports on result files: the summary table, compare, and SVG pictures.

    summary.table(report) -> str                 # repro/run: verdict, delivered/lost, p50/p99, throughput
    compare.compare(a, b, a_name, b_name) -> dict; compare.render(result) -> str
    svg.render(report) -> str; svg.write(report, path)   # verdict grid + histograms (repro), histograms (run)
    explain.of(cell) -> Breakdown | None         # a cell's run --explain section, read tolerantly

`cells` holds the schema they read and the loader (`cells.load(path)`).
"""
