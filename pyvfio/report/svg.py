"""Pictures of result files, as SVG written here (no plotting dependency).

    render(report) -> str      # repro: verdict grid + one round-trip histogram per cell
                               # run:   wakeup / service / round-trip histograms
    write(report, path)        # the same, written atomically (write_report(path, report) too)
    verdict_grid(report, rows=None, cols=None) -> str
    histograms(report) -> str
    segment_bar(parts, stat) -> str   # a cell's round trip by segment (run --explain),
                                      # a stacked bar the HTML page shows per cell
                                      # (render draws it under each such histogram)

The verdict grid lays the cells out as a pivot table: the key axes that vary are
split into row axes and column axes (the last axes go to columns while there are
at most 6 columns); constant axes go in the subtitle.  A cell is coloured by its
verdict (ok, stall, recovered, lost); a cell whose verdict differs from the
scenario's expectation gets a thick magenta frame and says what was expected.

Histograms are log-x (decades of microseconds, shared by every panel so they
compare), re-binned from the recorded log buckets (pyvfio.histogram.bucket_range)
to 20 bins a decade, log-y counts (so a tail of a few samples shows), with p50
and p99 marked.  Each panel is a
<g class="histogram" data-cell="..."> so tools (and tests) can find them.
"""

import math
from xml.sax.saxutils import escape, quoteattr

from ..histogram import bucket_range
from ..results import write_atomic
from ..verdict import COLOURS, LEGEND, MISMATCH, OPTIONAL  # noqa: F401 (one palette: pyvfio.verdict)
from . import cells as C
from . import explain as X

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
BINS_PER_DECADE = 20
MAX_COLUMNS = 6
HIST_PER_ROW = 3


class Canvas:
    """Collects SVG elements; coordinates in px."""

    def __init__(self):
        self.parts = []

    def add(self, text):
        self.parts.append(text)

    def rect(self, x, y, w, h, fill, stroke="none", sw=1, extra=""):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
                 f'fill="{fill}" stroke="{stroke}" stroke-width="{sw}"{extra}/>')

    def line(self, x1, y1, x2, y2, stroke="#444", sw=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{stroke}" stroke-width="{sw}"{d}/>')

    def text(self, x, y, s, size=12, anchor="start", weight="normal", fill="#222"):
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{fill}">{escape(str(s))}</text>')

    def open(self, cls, **data):
        attrs = "".join(f" data-{k}={quoteattr(str(v))}" for k, v in data.items())
        self.add(f'<g class="{cls}"{attrs}>')

    def close(self):
        self.add("</g>")

    def svg(self, width, height):
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
                f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}">')
        return "\n".join([head, '<rect width="100%" height="100%" fill="white"/>', *self.parts,
                          "</svg>"]) + "\n"


def _fit(s, width, size):
    """`s`, cut with an ellipsis to about `width` px."""
    n = int(width / (size * 0.6))
    return s if len(s) <= n else s[:max(1, n - 1)] + "…"


def _wrap(label, width, size, sep=" / "):
    """A "a / b / c" label on one line, or two split at a separator (then cut)."""
    if _tw(label, size) <= width or sep not in label:
        return [_fit(label, width, size)]
    parts = label.split(sep)
    for k in range(len(parts) - 1, 0, -1):
        first = sep.join(parts[:k]) + sep.rstrip()
        if _tw(first, size) <= width:
            return [first, _fit(sep.join(parts[k:]), width, size)]
    return [_fit(parts[0], width, size), _fit(sep.join(parts[1:]), width, size)]


def _tw(s, size=12):
    """A rough text width (no font metrics here): good enough to size boxes."""
    return len(str(s)) * size * 0.6


# -- the verdict grid -------------------------------------------------------------------

def grid_axes(cell_list, rows=None, cols=None):
    """(row axes, column axes, constant axes) for a grid of these cells."""
    varying, constant = C.axes_of(cell_list)
    if rows is not None or cols is not None:
        cols = list(cols or [a for a in varying if a not in (rows or [])])
        rows = list(rows or [a for a in varying if a not in cols])
        return rows, cols, constant
    if len(varying) < 2:
        return [], list(varying), constant
    # Try every split of the varying axes into rows and columns; count the combinations
    # that really occur (a policy that applies to one card only makes a product sparse)
    # and keep the split with the fewest empty slots, then the most columns (<= 6).
    best = None
    for mask in range(1, 2 ** len(varying) - 1):
        cand = [a for i, a in enumerate(varying) if mask >> i & 1]
        others = [a for a in varying if a not in cand]
        ncols, nrows = len(_combos(cell_list, cand)), len(_combos(cell_list, others))
        if ncols > MAX_COLUMNS:
            continue
        score = (nrows * ncols - len(cell_list), -ncols, [varying.index(a) for a in others])
        if best is None or score < best[0]:
            best = (score, cand)
    cols = best[1] if best else varying[-1:]
    rows = [a for a in varying if a not in cols]
    return rows, cols, constant


def _combos(cell_list, axes):
    seen, out = set(), []
    for c in cell_list:
        t = tuple(C.key_id({a: c["key"].get(a)}) for a in axes)
        if t not in seen:
            seen.add(t)
            out.append((t, {a: c["key"].get(a) for a in axes}))
    return out


def _draw_grid(cv, report, x0, y0, rows=None, cols=None):
    """Draw the grid at (x0, y0); returns (width, height) used."""
    cl = C.cells(report)
    rows, cols, _ = grid_axes(cl, rows, cols)
    rcombos, ccombos = _combos(cl, rows), _combos(cl, cols)
    where = {}
    for c in cl:
        r = tuple(C.key_id({a: c["key"].get(a)}) for a in rows)
        k = tuple(C.key_id({a: c["key"].get(a)}) for a in cols)
        where[(r, k)] = c
    row_labels = [C.key_label(v, rows) if rows else "" for _, v in rcombos]
    label_w = max([_tw(s) for s in row_labels] + [_tw(" / ".join(rows), 11)] + [_tw(a, 11) for a in cols]
                  + [40]) + 16
    texts = [c.get("verdict") or "?" for c in cl] + [f"expected {C.text(c.get('expected'))}" for c in cl]
    cell_w = max(118, max(_tw(t, 11) for t in texts) + 16)
    cell_h, head_h = 48, 18 * max(1, len(cols)) + 22
    # column headers: one line per column axis, its name in the corner
    for level, axis in enumerate(cols):
        y = y0 + 16 + 18 * level
        cv.text(x0 + label_w - 8, y, axis, 11, "end", fill="#666")
        for i, (_, values) in enumerate(ccombos):
            cv.text(x0 + label_w + i * cell_w + cell_w / 2, y,
                    C.plain(values[axis]), 12, "middle", "bold")  # the corner names the axis
    cv.text(x0 + 4, y0 + head_h - 4, " / ".join(rows), 11, fill="#666")
    for j, ((rid, _), label) in enumerate(zip(rcombos, row_labels)):
        y = y0 + head_h + j * cell_h
        cv.text(x0 + 4, y + cell_h / 2 + 4, label, 12, weight="bold")
        for i, (cid, _) in enumerate(ccombos):
            x = x0 + label_w + i * cell_w
            c = where.get((rid, cid))
            if c is None:
                cv.rect(x + 2, y + 2, cell_w - 4, cell_h - 4, "#f4f4f4", "#ddd")
                cv.text(x + cell_w / 2, y + cell_h / 2 + 4, "not run", 10, "middle", fill="#999")
                continue
            cls = C.verdict_class(c)
            mismatch = c.get("match") is False
            cv.open("grid-cell", verdict=cls, match={True: "yes", False: "no"}.get(c.get("match"), "-"),
                    cell=C.key_label(c["key"]))
            cv.rect(x + 2, y + 2, cell_w - 4, cell_h - 4, COLOURS[cls],
                    MISMATCH if mismatch else "#777", 4 if mismatch else 0.5)
            cv.text(x + cell_w / 2, y + 20, c.get("verdict") or "?", 11, "middle", "bold")
            m = C.metrics(c)
            if mismatch:
                sub = f"expected {C.text(c.get('expected'))}"
            elif c.get("match") is True:
                sub = "as expected"
            elif m["delivered"] is not None:
                sub = f"{m['delivered']}/{m['raised']} delivered" if m["raised"] else f"{m['delivered']} delivered"
            else:
                sub = ""
            cv.text(x + cell_w / 2, y + 36, sub, 10, "middle",
                    "bold" if mismatch else "normal", MISMATCH if mismatch else "#333")
            cv.close()
    width = label_w + max(1, len(ccombos)) * cell_w
    height = head_h + max(1, len(rcombos)) * cell_h
    # legend
    ly, lx = y0 + height + 14, x0
    present = {C.verdict_class(c) for c in cl}
    for cls, name in LEGEND:
        if cls in OPTIONAL and cls not in present:
            continue
        cv.rect(lx, ly, 14, 14, COLOURS[cls], "#777", 0.5)
        cv.text(lx + 19, ly + 11, name, 11)
        lx += 30 + _tw(name, 11)
    if any(c.get("match") is not None for c in cl):
        cv.rect(lx, ly, 14, 14, "white", MISMATCH, 3)
        cv.text(lx + 19, ly + 11, "not as expected", 11)
        lx += 30 + _tw("not as expected", 11)
    return max(width, lx - x0), height + 34


# -- histograms -------------------------------------------------------------------------

def _bins(hist):
    """[(bin index from 0 at 10^lo us, count)], lo/hi decades, from a histogram dict."""
    pts = []
    for idx, n in (hist.get("buckets") or {}).items():
        low, high = bucket_range(int(idx))
        mid_us = max((low + high) / 2.0, 0.5) / 1000.0
        pts.append((mid_us, n))
    return pts


def decade_range(hists):
    """(lo, hi) decades of microseconds covering every sample of every histogram."""
    mids = [m for h in hists for m, _ in _bins(h)]
    if not mids:
        return 0, 2
    lo = math.floor(math.log10(min(mids)))
    hi = math.ceil(math.log10(max(mids)) + 1e-9)
    return lo, max(hi, lo + 1)


def _us_label(decade):
    v = 10.0 ** decade
    if v >= 1e6:
        return f"{v / 1e6:g} s"
    if v >= 1e3:
        return f"{v / 1e3:g} ms"
    if v >= 1:
        return f"{v:g} µs"
    return f"{v * 1e3:g} ns"


def _draw_histogram(cv, x, y, w, h, title, subtitle, hist, lo, hi, cell=""):
    """One panel: title lines, log-x axis lo..hi decades, bars, p50/p99 markers."""
    cv.open("histogram", cell=cell, samples=(hist or {}).get("count", 0) if hist else 0)
    cv.rect(x, y, w, h, "white", "#ccc", 1)
    lines = _wrap(title, w - 12, 11)
    for n, text in enumerate(lines):
        cv.text(x + 6, y + 15 + 13 * n, text, 11, weight="bold")
    cv.text(x + 6, y + 16 + 13 * len(lines), _fit(subtitle, w - 12, 10), 10, fill="#444")
    top = 26 + 13 * len(lines)
    px, py, pw, ph = x + 36, y + top, w - 58, h - top - 24
    cv.line(px, py + ph, px + pw, py + ph)
    cv.line(px, py, px, py + ph)
    span = hi - lo
    xpos = lambda us: px + (math.log10(us) - lo) / span * pw
    for d in range(lo, hi + 1):
        xx = px + (d - lo) / span * pw
        cv.line(xx, py + ph, xx, py + ph + 4)
        cv.text(xx, py + ph + 15, _us_label(d), 9, "middle", fill="#444")
        if d < hi:
            for m in range(2, 10):
                xm = xpos(m * 10.0 ** d)
                cv.line(xm, py + ph, xm, py + ph + 2, "#999")
    pts = _bins(hist) if hist else []
    if not pts:
        cv.text(px + pw / 2, py + ph / 2, "no latency samples", 10, "middle", fill="#999")
        cv.close()
        return
    nbins = span * BINS_PER_DECADE
    counts = [0] * nbins
    for mid, n in pts:
        b = int((math.log10(mid) - lo) * BINS_PER_DECADE)
        counts[min(max(b, 0), nbins - 1)] += n
    # log-y (log10(1 + n)): the tail, a few samples out of thousands, stays visible
    top = max(counts)
    ymax = math.log10(1 + top)
    yh = lambda n: math.log10(1 + n) / ymax * ph
    bw = pw / nbins
    for b, n in enumerate(counts):
        if n:
            bh = max(1.0, yh(n))
            cv.rect(px + b * bw + 0.5, py + ph - bh, bw - 1, bh, "#4a78b5")
    for k in range(0, int(math.log10(top)) + 1):
        yy = py + ph - yh(10 ** k)
        cv.line(px - 3, yy, px, yy)
        cv.text(px - 5, yy + 3, f"{10 ** k:g}" if k < 4 else f"1e{k}", 8, "end", fill="#444")
    for name, colour in (("p50", "#2e7d32"), ("p99", "#c62828")):
        v = hist.get(f"{name}_us")
        if v and 10.0 ** lo <= v <= 10.0 ** hi:
            xx = xpos(v)
            cv.line(xx, py, xx, py + ph, colour, 1.2, "4 2")
            cv.text(xx + 2, py + 9 + (10 if name == "p99" else 0), name, 9, fill=colour)
    cv.close()


def _fmt_us(v):
    return "-" if v is None else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")


def _draw_cell_histograms(cv, report, x0, y0, per_row=HIST_PER_ROW, w=300, h=172):
    cl = C.cells(report)
    varying, _ = C.axes_of(cl)
    hists = [C.round_trip(c) for c in cl]
    lo, hi = decade_range([h_ for h_ in hists if h_])
    order = X.order(X.of(c) for c in cl if X.of(c))
    bar = BAR_H + 6 if any(X.of(c) for c in cl) else 0   # run --explain: a bar under each panel
    if order:
        _draw_segment_legend(cv, x0, y0, order)
        y0 += LEGEND_H
    for i, (c, hist) in enumerate(zip(cl, hists)):
        x, y = x0 + (i % per_row) * (w + 10), y0 + (i // per_row) * (h + bar + 10)
        _draw_breakdown(cv, c, x, y + h + 6, w, order)
        label = C.key_label(c["key"], varying or None)
        sub = c.get("verdict") or "?"
        if hist:
            sub += (f" · p50 {_fmt_us(hist.get('p50_us'))} µs · p99 {_fmt_us(hist.get('p99_us'))} µs"
                    f" · n={hist.get('count')}")
        _draw_histogram(cv, x, y, w, h, label, sub, hist, lo, hi, C.key_label(c["key"]))
    rows = max(1, math.ceil(len(cl) / per_row))
    return min(len(cl), per_row) * (w + 10), rows * (h + bar + 10) + (LEGEND_H if order else 0)


def _title(cv, report, x, y):
    kind = report.get("kind")
    head = f"pyvfio {kind}: {C.host_line(report)}"
    if report.get("backend"):
        head += f", {report['backend']} backend"
    if kind == "run":
        card = report.get("card")
        card = card.get("name") if isinstance(card, dict) else card
        head += f", {report.get('bdf', '')} {card or ''}".rstrip()
    cv.text(x, y, head, 15, weight="bold")
    _, constant = C.axes_of(C.cells(report))
    sub = ", ".join(f"{a}={C.plain(v)}" for a, v in constant.items())
    if report.get("started"):
        sub = (sub + "; " if sub else "") + f"started {report['started']}"
    cv.text(x, y + 18, sub, 11, fill="#555")
    return max(_tw(head, 15), _tw(sub, 11))


def verdict_grid(report, rows=None, cols=None):
    cv = Canvas()
    tw = _title(cv, report, 16, 24)
    w, h = _draw_grid(cv, report, 16, 50, rows, cols)
    return cv.svg(max(w, tw, 400) + 32, h + 66)


def histograms(report):
    cv = Canvas()
    tw = _title(cv, report, 16, 24)
    if report.get("kind") == "run":
        w, h = _draw_run_histograms(cv, report, 16, 50)
    else:
        w, h = _draw_cell_histograms(cv, report, 16, 50)
    return cv.svg(max(w, tw, 400) + 32, h + 66)


def _draw_run_histograms(cv, report, x0, y0, w=640, h=200):
    lat = report.get("latency") or {}
    parts = [(name, lat.get(name)) for name in ("round_trip", "wakeup", "service")
             if isinstance(lat.get(name), dict)]
    if not parts:
        parts = [("round_trip", None)]
    lo, hi = decade_range([p for _, p in parts if p and p.get("buckets")])
    for i, (name, hist) in enumerate(parts):
        sub = f"{report.get('verdict', '?')}"
        if hist and hist.get("count"):
            sub += (f" · min {_fmt_us(hist.get('min_us'))} · p50 {_fmt_us(hist.get('p50_us'))} · "
                    f"p99 {_fmt_us(hist.get('p99_us'))} · max {_fmt_us(hist.get('max_us'))} µs · "
                    f"n={hist.get('count')}")
        _draw_histogram(cv, x0, y0 + i * (h + 10), w, h, name.replace("_", " "), sub,
                        hist if hist and hist.get("buckets") else None, lo, hi, name)
    bd = X.of(report)
    order = X.order([bd] if bd else [])
    y = y0 + len(parts) * (h + 10)
    if not _draw_breakdown(cv, report, x0, y, w, order):
        return w, y - y0
    if order:
        _draw_segment_legend(cv, x0, y + BAR_H + 8, order)
    return w, y - y0 + BAR_H + 10 + (LEGEND_H if order else 0)


def render(report, rows=None, cols=None):
    """The whole picture of a report: for repro, the verdict grid above one round-trip
    histogram per cell; for a run, its histograms."""
    C.check(report)
    if report.get("kind") == "run":
        return histograms(report)
    cv = Canvas()
    tw = _title(cv, report, 16, 24)
    gw, gh = _draw_grid(cv, report, 16, 50, rows, cols)
    gw = max(gw, tw)
    if not any(C.round_trip(c) for c in C.cells(report)):
        cv.text(16, 50 + gh + 22, "no latency samples in this report (model verdicts only)", 12,
                fill="#666")
        return cv.svg(max(gw, 400) + 32, 50 + gh + 40)
    cv.text(16, 50 + gh + 22, "round-trip latency per cell (log scale; shared axis)", 13, weight="bold")
    hw, hh = _draw_cell_histograms(cv, report, 16, 50 + gh + 32)
    return cv.svg(max(gw, hw, 400) + 32, 50 + gh + 32 + hh + 16)


def write(report, path, rows=None, cols=None):
    """Write render(report) to `path` atomically; returns the path."""
    write_atomic(path, render(report, rows, cols))
    return path


def write_report(path, report):
    """write() with the arguments the other way round (what pyvfio repro --svg calls)."""
    return write(report, path)


def histogram_panel(hist, title, subtitle, lo, hi, w=300, h=172, cell=""):
    """One histogram panel as its own <svg> (the HTML page embeds one per cell), on
    the decades lo..hi that every panel of the page shares."""
    cv = Canvas()
    _draw_histogram(cv, 0, 0, w, h, title, subtitle, hist, lo, hi, cell)
    return cv.svg(w, h)


# -- latency over time, and the CDF against a baseline ----------------------------------

def _log_axis_y(cv, px, py, ph, lo, hi):
    """A vertical log axis of microseconds, decades lo..hi, bottom to top."""
    cv.line(px, py, px, py + ph)
    for d in range(lo, hi + 1):
        yy = py + ph - (d - lo) / (hi - lo) * ph
        cv.line(px - 3, yy, px, yy)
        cv.text(px - 5, yy + 3, _us_label(d), 8, "end", fill="#444")


def strip_panel(points, stalls, lo, hi, w=300, h=120, cell=""):
    """The round trip over the run (series points: t_s, n, p50_us, max_us): each
    window's max as a tick (red where it stands out: above ten times the run's
    median), its p50 as a line, and each stall as a red dashed line where it came (by
    the interrupts delivered before it).  Log-y, the page's decades."""
    cv = Canvas()
    cv.open("strip", cell=cell, points=len(points), stalls=len(stalls))
    cv.rect(0, 0, w, h, "white", "#ccc", 1)
    cv.text(6, 13, "round trip over the run (max per window, p50 line)", 10, fill="#444")
    px, py, pw, ph = 40, 20, w - 50, h - 40
    _log_axis_y(cv, px, py, ph, lo, hi)
    cv.line(px, py + ph, px + pw, py + ph)
    t_end = max(p["t_s"] for p in points) or 1.0
    xs = lambda t: px + t / t_end * pw                                            # noqa: E731
    ys = lambda us: py + ph - (min(max(math.log10(max(us, 1e-3)), lo), hi) - lo) / (hi - lo) * ph  # noqa: E731
    cv.text(px, py + ph + 13, "0 s", 9, "middle", fill="#444")
    cv.text(px + pw, py + ph + 13, f"{t_end:.3g} s", 9, "end", fill="#444")   # inside the panel
    medians = sorted(p["p50_us"] for p in points)
    outlier = 10 * medians[len(medians) // 2]
    for p in points:
        x = xs(p["t_s"])
        colour = "#c62828" if p["max_us"] > outlier else "#4a78b5"
        cv.line(x, ys(p["p50_us"]), x, ys(p["max_us"]), colour, 1.5)
    path = " ".join(f"{'M' if i == 0 else 'L'}{xs(p['t_s']):.1f},{ys(p['p50_us']):.1f}"
                    for i, p in enumerate(points))
    cv.add(f'<path d="{path}" fill="none" stroke="#2e7d32" stroke-width="1.2"/>')
    for s in stalls:
        after = s.get("after_delivered") or 0
        t = next((p["t_s"] for p in points if p["delivered"] >= after), t_end)
        cv.line(xs(t), py, xs(t), py + ph, "#c62828", 1.5, "4 2")
        cv.text(xs(t) + 2, py + 9, "stall" + (", recovered" if s.get("recovered") else ""), 9, fill="#c62828")
    cv.close()
    return cv.svg(w, h)


def _cdf(hist):
    """[(us, fraction at or below)] from a histogram dict's buckets."""
    pts = sorted((bucket_range(int(i))[1] / 1000.0, n) for i, n in (hist.get("buckets") or {}).items())
    total = sum(n for _, n in pts) or 1
    out, seen = [], 0
    for us, n in pts:
        seen += n
        out.append((max(us, 1e-3), seen / total))
    return out


def cdf_panel(hist, base, lo, hi, w=300, h=150, cell="", base_name="baseline"):
    """The round trip's CDF (log-x, the page's decades) and, where the baseline has
    this cell with samples, the baseline's beside it (grey, dashed)."""
    cv = Canvas()
    cv.open("cdf", cell=cell, baseline="yes" if base else "no")
    cv.rect(0, 0, w, h, "white", "#ccc", 1)
    cv.text(6, 13, "round trip CDF" + (f" against {base_name} (dashed)" if base else " (no baseline cell)"),
            10, fill="#444")
    px, py, pw, ph = 36, 20, w - 50, h - 44
    cv.line(px, py + ph, px + pw, py + ph)
    cv.line(px, py, px, py + ph)
    xs = lambda us: px + (min(max(math.log10(us), lo), hi) - lo) / (hi - lo) * pw   # noqa: E731
    for d in range(lo, hi + 1):
        cv.text(xs(10.0 ** d), py + ph + 13, _us_label(d), 9, "middle", fill="#444")
    for f in (0.5, 0.99, 1.0):
        yy = py + ph - f * ph
        cv.line(px - 3, yy, px + pw, yy, "#eee")
        if f != 0.99:   # a grid line only: its label would overlap 1's
            cv.text(px - 5, yy + 3, f"{f:g}", 8, "end", fill="#444")
    for data, colour, dash in ((base, "#888", "5 3"), (hist, "#4a78b5", None)):
        if not data:
            continue
        pts = _cdf(data)
        d = f"M{xs(pts[0][0]):.1f},{py + ph:.1f} " + " ".join(
            f"L{xs(us):.1f},{py + ph - frac * ph:.1f}" for us, frac in pts)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        cv.add(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.5"{dash_attr}/>')
    cv.close()
    return cv.svg(w, h)


# -- where the time went: a cell's round trip by segment (report/explain.py) -------------

# One colour per segment of the round trip, the same on every bar of a page; a segment
# this pyvfio does not know takes the next of the spare ones.
SEGMENT_COLOURS = {"raise": "#8e6bb8", "hardirq": "#d9534f", "wakeup": "#f0ad4e", "return": "#e6d34a",
                   "handler": "#5cb85c", "unmask": "#4a90c8", "reenable": "#6c7a89"}
SPARE_COLOURS = ("#b0805a", "#d47fb0", "#3fb7b0", "#999999")


def segment_colour(name, order=()):
    """The colour of segment `name` (`order`: every segment name on the page, for spares)."""
    if name in SEGMENT_COLOURS:
        return SEGMENT_COLOURS[name]
    unknown = [n for n in order if n not in SEGMENT_COLOURS]
    return SPARE_COLOURS[(unknown.index(name) if name in unknown else 0) % len(SPARE_COLOURS)]


def segment_bar(parts, stat, w=300, h=54, cell="", meaning=None, order=()):
    """One stacked horizontal bar: the round trip's segments left to right, each as
    wide as its share; `parts` [(segment, us, percent)], `stat` "mean" or "p50" (what
    the numbers are); each segment's µs and % in its <title> (a hover) and data-*."""
    cv = Canvas()
    _draw_segment_bar(cv, 0, 0, w, h, parts, stat, cell, meaning, order)
    return cv.svg(w, h)


def _draw_segment_bar(cv, x0, y0, w, h, parts, stat, cell="", meaning=None, order=()):
    total = sum(us for _, us, _ in parts)
    cv.open("segments", cell=cell, stat=stat, segments=len(parts), total_us=f"{total:.3f}")
    cv.rect(x0, y0, w, h, "white", "#ccc", 1)
    head = f"by segment ({stat}): {_fmt_us(total)} µs" + (" in all" if stat == "mean" else " summed")
    cv.text(x0 + 6, y0 + 13, _fit(head, w - 12, 10), 10, fill="#444")
    x, by, bw, bh = x0 + 6.0, y0 + 20, w - 12, h - 28
    for name, us, pct in parts:
        sw = bw * pct / 100.0
        what = f"{name}: {us:.1f} µs {stat} ({pct:.1f} %)" + (f": {meaning[name]}" if meaning and name in meaning
                                                                else "")
        cv.add(f'<rect class="segment" data-segment={quoteattr(name)} data-us="{us:.3f}" '
               f'data-percent="{pct:.1f}" x="{x:.1f}" y="{by}" width="{max(sw, 0):.1f}" height="{bh}" '
               f'fill="{segment_colour(name, order)}" stroke="white" stroke-width="0.5">'
               f'<title>{escape(what)}</title></rect>')
        if sw >= _tw(name, 9) + 4:   # a label where it fits; the title says it anyway
            cv.text(x + sw / 2, by + bh / 2 + 3, name, 9, "middle", fill="#111")
        x += sw
    cv.close()


BAR_H = 54
LEGEND_H = 22


def _draw_segment_legend(cv, x, y, order):
    """The segments' colours and names in one row (docs/results.md says what each is)."""
    cv.open("segments-legend", segments=len(order))
    cv.text(x, y + 11, "segments:", 11, fill="#444")
    lx = x + _tw("segments:", 11) + 8
    for name in order:
        cv.rect(lx, y, 14, 14, segment_colour(name, order), "#777", 0.5)
        cv.text(lx + 19, y + 11, name, 11)
        lx += 30 + _tw(name, 11)
    cv.close()
    return lx - x


def _draw_breakdown(cv, cell, x, y, w, order):
    """Under a histogram: the cell's segment bar, or why it has none; nothing for a
    cell run without --explain (True when something was drawn)."""
    bd = X.of(cell)
    if bd is None:
        return False
    stat, parts = bd.bar()
    if parts:
        _draw_segment_bar(cv, x, y, w, BAR_H, parts, stat, C.key_label(cell.get("key", {})), X.MEANING, order)
    else:
        cv.text(x + 6, y + 14, _fit(f"no breakdown: {bd.missing or 'no segment has samples'}", w - 12, 10),
                10, fill="#666")
    return True
