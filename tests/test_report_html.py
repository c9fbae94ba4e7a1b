"""pyvfio report --html: the static page, from real model runs (one scenario whose
expectation is wrong on XIVE, so one cell must be framed), read as HTML and opened
in headless Chromium with no network: the DOM after the page's script ran, and
the pixels of a screenshot (the verdict colours and the mismatch frame)."""

import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import zlib

import pytest

from pyvfio import verdict as V
from pyvfio.checkout import CHECKOUT
from pyvfio.cli import main
from pyvfio.report import svg

FIXTURES = CHECKOUT / "tests" / "fixtures" / "reports"
SEVEN = ["raise", "hardirq", "wakeup", "return", "handler", "unmask", "reenable"]

# One wrong expectation: every cell "ok", but lazy masking stalls on XIVE.
SCENARIO = """
loops = 20
[run]
profile = "edu"
watchdog_ms = 300
[matrix]
nointxmask = [1]
policy = ["lazy", "unlazy"]
unmask = ["ioctl"]
[lab]
card = "edu"
ppc64le = [{ kernel = "6.12", ic = "xive" }]
x86_64 = [{ kernel = "6.12" }]
[[expect]]
verdict = "ok"
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("html")
    (d / "wrong.toml").write_text(SCENARIO)
    assert main(["repro", "--model", "--scenario", str(d / "wrong.toml"), "--json", str(d / "wrong.json")]) == 1
    assert main(["repro", "--model", "--scenario", "seed", "--json", str(d / "seed.json")]) == 0
    return d


class Cells(html.parser.HTMLParser):
    """The grid's <td class="cell"> attributes, and every URL the page names."""

    def __init__(self):
        super().__init__()
        self.cells, self.urls, self.attrs_of = [], [], {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "cell" in (a.get("class") or "").split():
            self.cells.append(a)
        if a.get("id"):
            self.attrs_of[a["id"]] = a
        for k in ("src", "href"):
            if a.get(k) and not a[k].startswith("#"):
                self.urls.append(a[k])


def parse(text):
    p = Cells()
    p.feed(text)
    return p


def test_page_grid_colours_and_frame(results, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["report", str(results / "wrong.json"), "--html", str(out),
                 "--baseline", str(results / "seed.json"), "--allow-missing"]) == 0
    text = out.read_text()
    p = parse(text)
    assert len(p.cells) == 4                                  # 2 machines x 2 cells
    by = {(c["data-machine"], c["data-cell"]): c for c in p.cells}
    stall = by[("ppc64le 6.12 xive", "lazy")]
    assert stall["data-verdict"] == "stall" and stall["data-match"] == "no"
    assert "mismatch" in stall["class"].split()
    assert f"background:{V.COLOURS['stall']}" in stall["style"]
    assert [c for c in p.cells if "mismatch" in c["class"].split()] == [stall]
    assert all(f"background:{V.COLOURS['ok']}" in c["style"] for c in p.cells if c is not stall)
    assert f"outline: 4px solid {V.MISMATCH}" in text          # the frame's colour is the SVG's
    assert p.attrs_of["combined"]["data-ok"] == "0" and p.attrs_of["combined"]["data-mismatched"] == "1"
    # a model run has no latency: no panel at all (nothing empty drawn), one line says why
    assert "<figure" not in text and "no-latency" in p.attrs_of
    # the comparison with the baseline (the seed, same machines): lazy on XIVE stalls in
    # both, so no verdict changed; the machines' facts name controller and fix
    assert 'data-verdict-changes="0"' in text and "XIVE-IRQ" in text
    assert p.urls == []                                        # nothing to fetch
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_report_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none.json"), "--html", str(tmp_path / "o.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err
    (tmp_path / "x.json").write_text("{}")
    assert main(["report", str(tmp_path / "x.json")]) == 2
    assert main(["report", str(tmp_path), "--html", str(tmp_path / "o.html")]) == 2   # no results in it


# -- in a browser ------------------------------------------------------------------------

def chromium():
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: tools/setup --lab installs it (tools/test-packages.txt)"
    return exe


# No network: every host resolves to nothing and every proxy is a closed port.
OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
           "--disable-background-networking", "--hide-scrollbars"]


def browse(page, *args):
    r = subprocess.run([chromium(), *OFFLINE, *args, f"file://{page}"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "HOME": str(os.path.dirname(page))})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def png_pixels(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and not interlace
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def rgb(hexcolour):
    return tuple(int(hexcolour[i:i + 2], 16) for i in (1, 3, 5))


def test_chromium_offline_dom_and_screenshot(results, tmp_path):
    page = tmp_path / "page.html"
    assert main(["report", str(results / "wrong.json"), "--html", str(page),
                 "--baseline", str(results / "seed.json"), "--allow-missing"]) == 0
    dom = browse(str(page), "--dump-dom", "--virtual-time-budget=2000")
    p = parse(dom)
    # the DOM after the script ran: it counted the grid and marked the page ready
    assert 'data-ready="1"' in dom
    assert "4 cell(s) on 2 machine(s), 1 not as expected" in dom
    assert sorted(c["data-verdict"] for c in p.cells) == ["ok", "ok", "ok", "stall"]
    shot = tmp_path / "page.png"
    browse(str(page), f"--screenshot={shot}", "--window-size=1200,900")
    w, h, rows = png_pixels(shot)
    count = {name: sum(row.count(rgb(col)) for row in rows)
             for name, col in (("ok", V.COLOURS["ok"]), ("stall", V.COLOURS["stall"]),
                               ("frame", V.MISMATCH))}
    # three ok cells and one stall cell, about 118 x 44 px each; the stall cell framed
    assert count["ok"] > 3 * 3000 and count["stall"] > 2000, count
    assert count["frame"] > 4 * 100, count
    with open(os.environ.get("PYVFIO_SCREENSHOT", os.devnull), "wb") as keep:
        keep.write(shot.read_bytes())   # PYVFIO_SCREENSHOT=FILE keeps the picture to look at


def test_fleet_dir_page(results, tmp_path):
    """A fleet's --out folder: fleet.json names each place's result; a place whose
    machine failed has no result and shows its exit."""
    shutil.copy(results / "wrong.json", tmp_path / "p1.json")
    fleet = {"tool": "pyvfio", "kind": "fleet", "scenario": "wrong.toml", "baseline": None,
             "places": {"p1": {"result": "p1.json", "exit": 1, "tags": {"arch": "ppc64le"},
                               "card": {"name": "edu", "bdf": "0000:00:04.0", "profile": "edu"}},
                        "p2": {"result": None, "exit": 5, "error": "ssh: connection refused"}}}
    (tmp_path / "fleet.json").write_text(json.dumps(fleet))
    out = tmp_path / "f.html"
    assert main(["report", str(tmp_path), "--html", str(out)]) == 0
    text = out.read_text()
    assert "p1: ppc64le 6.12 xive" in text and "machines that failed: p2" in text
    assert "5: ssh: connection refused" in text and "arch=ppc64le" in text


def test_real_lab_report_page_has_each_cells_histogram(results, tmp_path):
    """A report of real lab boots (ppc64le, XIVE and XICS): every cell that delivered
    has its round-trip histogram drawn, and against the model's seed no verdict changed."""
    lab = os.path.join(os.path.dirname(__file__), "fixtures", "reports", "lab-ppc64le-seed.json")
    out = tmp_path / "lab.html"
    assert main(["report", lab, "--html", str(out), "--baseline", str(results / "seed.json"), "--allow-missing"]) == 0
    text = out.read_text()
    figs = [a for a in parse_figures(text)]
    data = json.load(open(lab))
    sampled = [c for c in data["cells"] if (c.get("latency") or {}).get("round_trip", {}).get("buckets")]
    assert sampled and len(figs) == len(sampled)                 # a cell without samples: no panel
    assert all(int(f["data-samples"]) > 0 for f in figs)
    # this file predates the series: no strip; the seed (a model run) has no latency: no baseline CDF
    assert {f["data-strip"] for f in figs} == {"no"} and {f["data-baseline"] for f in figs} == {"no"}
    assert text.count('data-verdict-changes="0"') == 2           # XIVE and XICS machines


def parse_figures(text):
    class F(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.figs = []

        def handle_starttag(self, tag, attrs):
            if tag == "figure":
                self.figs.append(dict(attrs))
    f = F()
    f.feed(text)
    return f.figs


# -- per-cell panels: the numbers, the run over time, the CDF against the baseline -----

def _run_file(path, **kw):
    """A `run` result from the engine on the model host (real latency, a real series)."""
    from pyvfio.results import envelope

    from test_engine import run
    _, r = run(**kw)
    data = envelope("run", bdf="0000:00:04.0", **r.to_json())
    path.write_text(json.dumps(data))
    return data


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    (d / "here").mkdir()
    _run_file(d / "here" / "recovered.json", controller="xive", loops=10, recover=True)
    _run_file(d / "here" / "clean.json", controller="ioapic", card="2.3", policy="unlazy", loops=3000)
    spur = _run_file(d / "here" / "spurious.json", controller="ioapic", card="2.3", policy="unlazy", loops=3000)
    spur["counts"]["spurious_triggers"] = 7     # an ok whose acks found no cause 7 times
    (d / "here" / "spurious.json").write_text(json.dumps(spur))
    _run_file(d / "base.json", controller="xics", card="2.3", policy="unlazy", loops=2000)
    # run --explain's section (tests/fixtures/reports/explain-repro.json's): all seven
    # segments on one run, five (two folded) on another, none on the third
    explained = json.loads((FIXTURES / "explain-repro.json").read_text())["cells"]
    for name, cell in (("clean", explained[0]), ("recovered", explained[1])):
        doc = json.loads((d / "here" / f"{name}.json").read_text())
        doc["explain"] = cell["explain"]
        (d / "here" / f"{name}.json").write_text(json.dumps(doc))
    return d


def test_each_cell_has_its_tail_numbers_its_run_over_time_and_its_cdf_against_the_baseline(runs, tmp_path):
    page = tmp_path / "panels.html"
    # recovered differs from the baseline's ok: the page is written, the gate says 1
    assert main(["report", str(runs / "here"), "--html", str(page), "--baseline", str(runs / "base.json")]) == 1
    dom = browse(str(page), "--dump-dom", "--virtual-time-budget=2000")
    assert 'data-ready="1"' in dom
    figs = {f["data-machine"]: f for f in parse_figures(dom)}
    assert sorted(figs) == ["clean", "recovered", "spurious"]
    assert all(f["data-strip"] == "yes" and f["data-baseline"] == "yes" for f in figs.values())
    # the tail beside the middle, per cell
    for stat in ("p50", "p99", "p99.9", "max"):
        assert dom.count(f'data-stat="{stat}"') == 3, stat
    # the stalls in sequence: the recovered run's five, on its strip
    strips = re.findall(r'<g class="strip" data-cell="[^"]*" data-points="(\d+)" data-stalls="(\d+)"', dom)
    assert sorted(int(s) for _, s in strips) == [0, 0, 5] and all(int(n) >= 1 for n, _ in strips)
    assert dom.count('<g class="cdf"') == 3 and dom.count('data-baseline="yes"') >= 3
    # ok with spurious interrupts is not a clean ok
    p = parse(dom)
    by = {c["data-machine"]: c for c in p.cells}
    assert by["spurious"]["data-spurious"] == "yes" and "spurious" in by["spurious"]["class"].split()
    assert by["clean"]["data-spurious"] == "no" and "spurious" not in by["clean"]["class"].split()
    assert "with spurious interrupts" in dom and "ok, with spurious interrupts" in dom   # cell and legend
    # run --explain: under its panels, each explained cell's stacked bar, its segments in
    # the file's order with µs and % on hover, the worst interrupt's analysis in a
    # <details>; the run without the section draws nothing of it
    panel = {re.search(r'data-machine="([^"]*)"', f)[1]: f for f in re.findall(r"<figure .*?</figure>", dom, re.S)}
    assert {m: re.search(r'data-explain="(\w+)"', f)[1] for m, f in panel.items()} == {
        "clean": "yes", "recovered": "yes", "spurious": "no"}
    segs = {m: re.findall(r'<rect class="segment" data-segment="(\w+)" data-us="([\d.]+)" data-percent="([\d.]+)"'
                          r'[^>]*><title>([^<]*)</title>', f) for m, f in panel.items()}
    assert [s[0] for s in segs["clean"]] == SEVEN
    assert [s[0] for s in segs["recovered"]] == ["raise", "hardirq", "wakeup", "handler", "unmask"]
    assert segs["spurious"] == [] and 'class="segments"' not in panel["spurious"]
    for bar in (segs["clean"], segs["recovered"]):
        assert abs(sum(float(p) for _, _, p, _ in bar) - 100.0) < 0.5
        for name, us, pct, title in bar:    # the hover: name, µs, which statistic and %, what it is
            assert title.startswith(f"{name}: {float(us):.1f} µs mean ({pct} %): "), title
    for m in ("clean", "recovered"):
        assert re.search(r'<g class="segments"[^>]*data-stat="mean"', panel[m])
        assert re.search(r'<details class="worst"[^>]*><summary>worst interrupt: #\d+, round trip', panel[m])
    assert "<details" not in panel["spurious"]
    legend = re.search(r'<div class="legend" id="segments-legend">.*?</div>', dom, re.S)[0]
    assert re.findall(r'<span data-segment="(\w+)"', legend) == SEVEN and "segments' means" in legend
    shot = tmp_path / "panels.png"
    browse(str(page), f"--screenshot={shot}", "--window-size=1200,3600")   # down to the last bar
    w, h, rows = png_pixels(shot)
    # the hatching: the spurious cell shows the ok colour and, darker, its stripes
    ok = rgb(V.COLOURS["ok"])
    ok_rows = [row for row in rows if row.count(ok) > 50]
    assert ok_rows, "no ok cell drawn"
    blue = sum(row.count(rgb("#4a78b5")) for row in rows)
    assert blue > 1000, blue                                   # the bars, ticks and curves
    keep = os.environ.get("PYVFIO_SCREENSHOT")
    if keep:   # PYVFIO_SCREENSHOT=FILE: this page beside the grid's, as FILE-panels.png
        shutil.copy(shot, os.path.splitext(keep)[0] + "-panels.png")
    # the segment bars are drawn: the handler's colour (two bars and a legend swatch)
    handler = sum(row.count(rgb(svg.SEGMENT_COLOURS["handler"])) for row in rows)
    assert handler > 1500, handler


def test_runs_without_an_expectation_are_not_called_all_as_expected(runs, tmp_path):
    # a run judges no expectation: its banner counts the cells and says so, never
    # "all 0 cell(s) as expected" (no Chromium needed: the banner is in the HTML)
    page = tmp_path / "runs.html"
    assert main(["report", str(runs / "here"), "--html", str(page)]) == 0
    text = page.read_text()
    assert "3 cell(s), none with an expectation" in text
    assert "all 0 cell(s)" not in text

