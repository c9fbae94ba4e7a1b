"""One static HTML page for people: `pyvfio report FILE|DIR --html OUT.html`.

    load(path, baseline=None) -> (machines, baseline report or None, fleet dict or None)
    render(machines, baseline=None, baseline_name=None, fleet=None, title=None) -> str
    write(path, out, baseline=None) -> out       # load + render, written atomically

The page holds everything it shows (styles, pictures, a few lines of script): it
opens from a file with no server and no network.  Sections:

- the verdict grid, machine x cell: each <td class="cell"> coloured by its verdict
  with the SVG's palette (pyvfio.verdict.COLOURS), a cell not as expected framed
  in MISMATCH with the verdict it was expected to have; data-machine, data-cell,
  data-verdict and data-match say the same to tools and tests;
- the machines' facts (kernel, controller, unlazy fix present, nointxmask, and for a
  fleet the place's tags, card and exit);
- cells whose verdict differs across machines, and each machine against the
  baseline (pyvfio.report.compare, through report.machines), naming the segment
  that moved where both ran with --explain;
- per cell with latency samples: p50, p99, p99.9 and max, the round-trip
  histogram (svg.histogram_panel, one decade axis shared by the page), the round
  trip over the run where the result carries its series (svg.strip_panel: stalls
  and outliers in sequence) and its CDF against the baseline's same cell
  (svg.cdf_panel); a cell with no samples (a model run) has no panel at all;
- a cell run with --explain (report/explain.py): under its panels, a stacked bar
  of its round trip's segments (svg.segment_bar: their means, or p50s where the
  file has no means; µs and % in each segment's title) and the worst interrupt's
  analysis in a <details>; one line instead where the section says `missing`; a
  legend above the panels names each segment in docs/results.md's words;
- an ok with spurious interrupts is hatched (class "spurious", data-spurious).

A FILE is a run or repro result (a lab or model report holding several machines
is split by its cells' arch, kernel and ic); a DIR is what `pyvfio fleet run --out`
wrote (fleet.json and one result per place), or any folder of result files.
"""

import html
import os

from .. import verdict as V
from ..errors import UsageError
from ..results import FLEET_FILE, write_atomic
from . import cells as C
from . import explain as X
from . import machines as M
from . import svg

_e = html.escape


def load(path, baseline=None):
    """(machines, baseline report or None, baseline name, fleet dict or None)."""
    fleet = None
    if os.path.isdir(path):
        fpath = os.path.join(path, FLEET_FILE)
        if os.path.exists(fpath):
            fleet = _fleet(fpath)
            machines = []
            for name, place in fleet["places"].items():
                res = place.get("result")
                extra = {k: place.get(k) for k in ("tags", "card", "exit", "error", "kernel", "user")}
                if res and os.path.exists(os.path.join(path, res)):
                    rep = C.load(os.path.join(path, res))
                    for m in M.split(rep, name):
                        m.extra = extra
                        machines.append(m)
                else:
                    machines.append(M.MachineReport(name, {"kind": "repro", "cells": []}, extra))
            if baseline is None and fleet.get("baseline"):
                b = fleet["baseline"]
                baseline = b if os.path.isabs(b) else os.path.join(path, b)
        else:
            files = sorted(f for f in os.listdir(path) if f.endswith(".json"))
            machines = []
            for f in files:
                try:
                    rep = C.load(os.path.join(path, f))
                except UsageError:
                    continue          # a folder of results may hold other JSON
                machines += M.split(rep, f[:-5])
            if not machines:
                raise UsageError(f"{path} holds no pyvfio result file",
                                 "give a file written by pyvfio repro --json, or the --out of pyvfio fleet run")
    else:
        machines = M.split(C.load(path))
    base = C.load(baseline) if baseline else None
    return machines, base, (os.path.basename(baseline) if baseline else None), fleet


def _fleet(fpath):
    data = C.load_fleet(fpath)
    if not isinstance(data.get("places"), dict):
        raise UsageError(f"{fpath} is not a pyvfio fleet file (no places)", "give the --out folder of pyvfio fleet run")
    return data


# -- the page --------------------------------------------------------------------------

STYLE = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: separate; border-spacing: 4px; }
th { font-size: 12px; font-weight: bold; text-align: center; vertical-align: bottom; }
th.machine { text-align: left; white-space: nowrap; }
td.cell { width: 118px; height: 44px; text-align: center; font-size: 11px; border: 1px solid #777; }
td.cell.mismatch { outline: 4px solid %(mismatch)s; outline-offset: -4px; }
td.cell .sub { font-size: 10px; color: #333; }
td.cell.mismatch .sub { color: %(mismatch)s; font-weight: bold; }
td.empty { background: #f4f4f4; color: #999; font-size: 10px; text-align: center; }
#combined { padding: 8px 12px; font-weight: bold; display: inline-block; border-radius: 4px; }
#combined.ok { background: %(ok)s; } #combined.bad { background: %(stall)s; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 14px; height: 14px; vertical-align: middle;
            margin-right: 4px; border: 1px solid #777; }
table.facts td, table.facts th, table.cmp td, table.cmp th { font-size: 12px; padding: 2px 8px;
            text-align: left; border-bottom: 1px solid #eee; }
.hists { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; }
.changed { color: %(mismatch)s; font-weight: bold; }
/* an ok with spurious interrupts: the ok colour, hatched */
.spurious { background-image: repeating-linear-gradient(135deg, rgba(0,0,0,0.28) 0 3px,
            transparent 3px 9px) !important; }
figure.cellpanel { border: 1px solid #ddd; padding: 6px; display: flex; flex-direction: column; gap: 4px; }
table.stats { border-spacing: 0; font-size: 12px; }
table.stats th, table.stats td { padding: 1px 8px; text-align: right; }
table.stats th { font-weight: normal; color: #555; }
details.worst { font-size: 12px; max-width: 300px; }
details.worst pre { font-size: 10px; white-space: pre-wrap; margin: 4px 0; }
p.explain-missing { font-size: 11px; color: #666; max-width: 300px; margin: 0; }
#segments-legend span { display: block; margin: 2px 0; }
"""

SCRIPT = """
// Count what the grid shows and let a person hide the cells that went as expected.
(function () {
  var cells = document.querySelectorAll('#grid td.cell');
  var bad = document.querySelectorAll('#grid td.cell.mismatch');
  document.getElementById('counts').textContent =
    cells.length + ' cell(s) on ' + document.querySelectorAll('#grid tr.machine').length +
    ' machine(s), ' + bad.length + ' not as expected';
  var box = document.getElementById('only-mismatches');
  box.addEventListener('change', function () {
    cells.forEach(function (td) {
      td.style.visibility = (box.checked && !td.classList.contains('mismatch')) ? 'hidden' : '';
    });
  });
  document.body.setAttribute('data-ready', '1');
})();
"""


def _grid(machines):
    ids, order = {}, []
    for m in machines:
        for c in m.cells:
            cid = C.key_id(M.cell_id(c))
            if cid not in ids:
                ids[cid] = M.cell_id(c)
                order.append(cid)
    varying, constant = C.axes_of([{"key": ids[i]} for i in order])
    cols = [(i, C.key_label(ids[i], varying or None)) for i in order]
    out = ['<table id="grid"><tr><th class="machine">machine</th>']
    out += [f'<th>{_e(label)}</th>' for _, label in cols]
    out.append("</tr>")
    n = 0
    anchors = {}
    for mi, m in enumerate(machines):
        by = {C.key_id(M.cell_id(c)): c for c in m.cells}
        out.append(f'<tr class="machine" data-machine="{_e(m.name)}"><th class="machine">{_e(m.name)}</th>')
        for cid, label in cols:
            c = by.get(cid)
            if c is None:
                out.append('<td class="empty">not run</td>')
                continue
            cls = C.verdict_class(c)
            match = {True: "yes", False: "no"}.get(c.get("match"), "-")
            mism = c.get("match") is False
            if mism:
                sub = f"expected {C.text(c.get('expected'))}"
            elif c.get("match") is True:
                sub = "as expected"
            else:
                sub = ""
            spur = C.spurious(c)
            if spur and "spurious" not in (c.get("verdict") or ""):   # not a clean ok: hatched, and said
                sub = "with spurious interrupts" + (f"; {sub}" if sub else "")
            text = f'<b>{_e(c.get("verdict") or "?")}</b><br><span class="sub">{_e(sub)}</span>'
            if C.round_trip(c):   # only a cell with samples has a panel to go to
                anchor = f"hist-{mi}-{n}"
                anchors[(mi, cid)] = anchor
                n += 1
                text = f'<a href="#{anchor}" style="color:inherit;text-decoration:none">{text}</a>'
            out.append(
                f'<td class="cell v-{cls}{" mismatch" if mism else ""}{" spurious" if spur else ""}"'
                f' style="background:{V.COLOURS[cls]}"'
                f' data-machine="{_e(m.name)}" data-cell="{_e(label)}" data-verdict="{cls}"'
                f' data-spurious="{"yes" if spur else "no"}"'
                f' data-match="{match}" title="{_e(C.key_label(c["key"]))}">{text}</td>')
        out.append("</tr>")
    out.append("</table>")
    const = ", ".join(f"{a}={C.plain(v)}" for a, v in constant.items())
    return "\n".join(out), const, anchors, cols


def _legend(machines):
    present = {C.verdict_class(c) for m in machines for c in m.cells}
    parts = [f'<span><i style="background:{V.COLOURS[cls]}"></i>{_e(name)}</span>'
             for cls, name in V.LEGEND if cls not in V.OPTIONAL or cls in present]
    if any(C.spurious(c) for m in machines for c in m.cells):
        parts.append(f'<span><i class="spurious" style="background:{V.COLOURS["ok"]}"></i>'
                     'ok, with spurious interrupts</span>')
    parts.append(f'<span><i style="background:white;border:3px solid {V.MISMATCH}"></i>not as expected</span>')
    return '<div class="legend">' + "".join(parts) + "</div>"


def _yes(v):
    return {True: "yes", False: "no"}.get(v, "-")


def _facts(machines):
    fleet = any(m.extra for m in machines)
    head = ["machine", "arch", "kernel", "controller", "unlazy fix", "nointxmask", "masks at card", "cells"]
    if fleet:
        head += ["card", "tags", "exit"]
    out = ['<table class="facts" id="facts"><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for m in machines:
        f = M.facts(m)
        row = [m.name, f["arch"] or "-", f["kernel"] or "-", f["controller"] or "-", _yes(f["unlazy_fix"]),
               ", ".join(map(str, f["nointxmask"])) or "-", _yes(f["masks_at_device"]), str(f["cells"])]
        if fleet:
            card = m.extra.get("card") or {}
            card = (f"{card.get('name', '')} {card.get('bdf', '')} ({card.get('profile', '-')})"
                    if isinstance(card, dict) and card else "-")
            tags = ", ".join(f"{k}={v}" for k, v in (m.extra.get("tags") or {}).items()) or "-"
            ex = m.extra.get("exit")
            err = m.extra.get("error")
            row += [card, tags, ("-" if ex is None else str(ex)) + (f": {err}" if err else "")]
        out.append(f'<tr data-machine="{_e(m.name)}">' + "".join(f"<td>{_e(str(x))}</td>" for x in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _across(machines):
    diff = M.across(machines)
    if len(machines) < 2:
        return "<p>One machine: nothing to compare across machines.</p>"
    if not diff:
        return '<p id="across">Every cell that ran on more than one machine has the same verdict on each.</p>'
    out = ['<table class="cmp" id="across"><tr><th>cell</th>'
           + "".join(f"<th>{_e(m.name)}</th>" for m in machines) + "</tr>"]
    for d in diff:
        out.append(f"<tr><td>{_e(d['label'])}</td>"
                   + "".join(f"<td>{_e(d['verdicts'].get(m.name, '-'))}</td>" for m in machines) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _num(v):
    return "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))


def _baseline(machines, baseline, name):
    if baseline is None:
        return "<p>No baseline given (<code>--baseline FILE</code>).</p>"
    out = [f"<p>Baseline: <b>{_e(name or 'baseline')}</b> ({_e(C.host_line(baseline))}).</p>"]
    for m in machines:
        res = M.against(m, baseline, name or "baseline")
        if res is None:
            out.append(f'<h3>{_e(m.name)}</h3><p>the baseline has no cell of this machine</p>')
            continue
        n = len(res["verdict_changes"])
        out.append(f'<h3>{_e(m.name)}</h3><p class="{"changed" if n else ""}" data-machine="{_e(m.name)}"'
                   f' data-verdict-changes="{n}">{n} verdict change(s) against the baseline, '
                   f'{len(res["cells"])} cell(s) matched'
                   + (f", {len(res['only_b'])} only here" if res["only_b"] else "")
                   + (f", {len(res['only_a'])} only in the baseline" if res["only_a"] else "") + "</p>")
        if res["cells"]:
            segs = any(r.get("explain") for r in res["cells"])   # run --explain: which segment moved
            out.append('<table class="cmp baseline"><tr><th>cell</th><th>baseline</th><th>here</th>'
                       '<th>delivered</th><th>p50 µs</th><th>p99 µs</th>'
                       + ("<th>segments</th>" if segs else "") + "</tr>")
            for r in res["cells"]:
                a, b = r["a"], r["b"]
                cls = ' class="changed"' if r["verdict_changed"] else ""
                moved = (f'<td class="moved">{_e((r.get("explain") or {}).get("words") or "-")}</td>'
                         if segs else "")
                out.append(f"<tr{cls}><td>{_e(r['label'])}</td><td>{_e(a['verdict'] or '?')}</td>"
                           f"<td>{_e(b['verdict'] or '?')}</td>"
                           f"<td>{_num(a['delivered'])} → {_num(b['delivered'])}</td>"
                           f"<td>{_num(a['p50_us'])} → {_num(b['p50_us'])}</td>"
                           f"<td>{_num(a['p99_us'])} → {_num(b['p99_us'])}</td>{moved}</tr>")
            out.append("</table>")
    return "\n".join(out)


STATS = (("p50", "p50_us"), ("p99", "p99_us"), ("p99.9", "p99.9_us"), ("max", "max_us"))


def _stats(hist):
    """p50, p99, p99.9 and max side by side (µs): the tail beside the middle."""
    head = "".join(f"<th>{name}</th>" for name, _ in STATS)
    row = "".join(f'<td data-stat="{name}">{_num(hist.get(k))}</td>' for name, k in STATS)
    return f'<table class="stats"><tr><th>µs</th>{head}</tr><tr><th>round trip</th>{row}</tr></table>'


def _baseline_cells(m, baseline):
    """The baseline's cell for each of this machine's cells, by cell id."""
    if baseline is None:
        return {}
    out = {}
    for b in C.cells(M.baseline_part(m, baseline)):
        out.setdefault(C.key_id(M.cell_id(b)), b)
    return out


def _panels(machines, anchors, cols, baseline=None, baseline_name=None):
    """Per cell with latency samples: its numbers, histogram, strip over time and
    CDF against the baseline.  A cell without samples (a model run) gets no panel:
    nothing empty is drawn."""
    hists = [C.round_trip(c) for m in machines for c in m.cells]
    if not any(hists):
        return ('<p id="no-latency">No latency samples in these results (model verdicts only): '
                'no latency panels.</p>')
    bases = {mi: _baseline_cells(m, baseline) for mi, m in enumerate(machines)}
    every = [h for h in hists if h] + [C.round_trip(b) for bc in bases.values() for b in bc.values()
                                       if C.round_trip(b)]
    lo, hi = svg.decade_range(every)
    labels = dict(cols)
    order = _segment_order(machines)
    out = [_segments_legend(machines, order)] if order else []
    for mi, m in enumerate(machines):
        drawn = [c for c in m.cells if C.round_trip(c)]
        if not drawn:
            continue
        out.append(f'<h3>{_e(m.name)}</h3><div class="hists">')
        for c in drawn:
            cid = C.key_id(M.cell_id(c))
            hist = C.round_trip(c)
            label = labels.get(cid, "run")
            sub = f"{c.get('verdict') or '?'} · n={hist.get('count')}"
            parts = [_stats(hist),
                     svg.histogram_panel(hist, label, sub, lo, hi, cell=C.key_label(c["key"]))]
            pts = C.series(c)
            if pts:
                parts.append(svg.strip_panel(pts, c.get("stalls") or [], lo, hi, cell=label))
            base = C.round_trip(bases[mi].get(cid) or {})
            parts.append(svg.cdf_panel(hist, base, lo, hi, cell=label, base_name=baseline_name or "baseline"))
            bd = X.of(c)
            parts += _breakdown(bd, label, order)
            out.append(f'<figure class="histogram cellpanel" id="{anchors.get((mi, cid), "")}"'
                       f' data-machine="{_e(m.name)}" data-cell="{_e(label)}"'
                       f' data-samples="{hist.get("count", 0)}" data-strip="{"yes" if pts else "no"}"'
                       f' data-baseline="{"yes" if base else "no"}"'
                       f' data-explain="{"no" if bd is None else "missing" if bd.missing else "yes"}">'
                       + "".join(parts) + "</figure>")
        out.append("</div>")
    return "\n".join(out)


def _segment_order(machines):
    """Every segment name a drawn cell's breakdown has, in the round trip's order."""
    return X.order(X.of(c) for m in machines for c in m.cells if C.round_trip(c) and X.of(c))


def _segments_legend(machines, order):
    stats = {X.of(c).bar()[0] for m in machines for c in m.cells
             if C.round_trip(c) and X.of(c) and not X.of(c).missing}
    said = (" (or their p50s, where a result has no means: the bar says which)" if "p50" in stats
            else "") if "mean" in stats else ""
    head = ("Where the time went (pyvfio run --explain): each bar is the round trip split into its "
            + ("segments' means, which add up to the mean round trip" if "mean" in stats
               else "segments' p50s (the result has no means; p50s do not add up to the round trip's)")
            + said + "; hover a segment for its µs and %.")
    spans = "".join(f'<span data-segment="{_e(n)}"><i style="background:{svg.segment_colour(n, order)}"></i>'
                    f'<b>{_e(n)}</b>: {_e(X.MEANING.get(n, "a segment this pyvfio does not know"))}</span>'
                    for n in order)
    return f'<div class="legend" id="segments-legend"><p>{_e(head)}</p>{spans}</div>'


def _breakdown(bd, label, order):
    """A cell's bar and its worst interrupt's analysis; a line when it has none."""
    if bd is None:
        return []
    if bd.missing:
        return [f'<p class="explain-missing" data-cell="{_e(label)}">no breakdown: {_e(bd.missing)}</p>']
    stat, parts = bd.bar()
    out = [svg.segment_bar(parts, stat, cell=label, meaning=X.MEANING, order=order)] if parts else []
    w = bd.worst
    if w and w.get("text"):
        rt = w.get("round_trip_ns")
        head = f"worst interrupt: #{w.get('seq', '?')}" + (f", round trip {rt / 1000:.1f} µs"
                                                           if isinstance(rt, (int, float)) else "")
        more = f"; {len(bd.breaches)} --threshold breach(es) analysed in the result" if bd.breaches else ""
        out.append(f'<details class="worst" data-cell="{_e(label)}"><summary>{_e(head + more)}</summary>'
                   f'<pre>{_e(w["text"])}</pre></details>')
    return out


def render(machines, baseline=None, baseline_name=None, fleet=None, title=None):
    grid, const, anchors, cols = _grid(machines)
    comb = M.combined(machines)
    failed = [m.name for m in machines if m.extra.get("exit") not in (None, 0, 1)]
    ok = comb["ok"] and not failed
    if ok and not comb["matched"]:      # runs: no expectation to meet (as summary.py says)
        verdict_line = f"{comb['cells']} cell(s), none with an expectation"
    elif ok:
        verdict_line = (f"all {comb['matched']} cell(s) as expected"
                        + (f"; {comb['unjudged']} without an expectation" if comb["unjudged"] else ""))
    else:
        verdict_line = (f"{comb['mismatched']} of {comb['cells']} cell(s) not as expected"
                        + (f"; machines that failed: {', '.join(failed)}" if failed else ""))
    if not title and fleet:
        title = f"pyvfio fleet: {fleet.get('scenario') or ''} on {len(fleet['places'])} place(s)"
    elif not title:
        backends = sorted({m.report.get("backend") for m in machines if m.report.get("backend")})
        title = (f"pyvfio {machines[0].report.get('kind', 'repro') if machines else 'report'}: "
                 + ", ".join(m.name for m in machines) + (f" ({', '.join(backends)} backend)" if backends else ""))
    started = (fleet or {}).get("started") or next((m.report.get("started") for m in machines
                                                    if m.report.get("started")), "")
    style = STYLE % {"mismatch": V.MISMATCH, "ok": V.COLOURS["ok"], "stall": V.COLOURS["stall"]}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        # no request leaves the page: a strict policy makes sure of it
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'; script-src \'unsafe-inline\'; img-src data:">',
        f"<title>{_e(title)}</title><style>{style}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p>{_e(started)}{"; " + _e(const) if const else ""}</p>',
        f'<div id="combined" class="{"ok" if ok else "bad"}" data-ok="{"1" if ok else "0"}"'
        f' data-mismatched="{comb["mismatched"]}">{_e(verdict_line)}</div>',
        '<p id="counts"></p>',
        "<h2>Verdicts, machine by cell</h2>", _legend(machines),
        '<p><label><input type="checkbox" id="only-mismatches"> show only the cells not as expected</label></p>',
        grid,
        "<h2>Machines</h2>", _facts(machines),
        "<h2>Across machines</h2>", _across(machines),
        "<h2>Against the baseline</h2>", _baseline(machines, baseline, baseline_name),
        "<h2>Round-trip latency per cell</h2>",
        "<p>log scale, one axis shared by every panel; p50 and p99 marked; over the run, a stall "
        "is a red dashed line and a window whose max is ten times the median a red tick</p>",
        _panels(machines, anchors, cols, baseline, baseline_name),
        f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def write(path, out, baseline=None):
    machines, base, bname, fleet = load(path, baseline)
    write_atomic(out, render(machines, base, bname, fleet), "write the page to")
    return out
