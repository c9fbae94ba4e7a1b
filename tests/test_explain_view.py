"""What reads a result's `explain` section (docs/results.md): the summary's line per
cell, compare's moved segment, the CI formats' segment p50s, the HTML page's bar.
From fixture results written to the section's shape (tests/fixtures/reports/explain-*):
two runs whose ack got 48 us slower (handler), and a lab repro whose cells have all
seven segments, five (return and reenable folded), a `missing` reason, and none."""

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvfio.checkout import CHECKOUT
from pyvfio.cli import main
from pyvfio.report import cells as C
from pyvfio.report import compare, summary
from pyvfio.report import explain as X

FIX = CHECKOUT / "tests" / "fixtures" / "reports"
RUN_A, RUN_B, REPRO = (str(FIX / n) for n in ("explain-run-a.json", "explain-run-b.json", "explain-repro.json"))
SEVEN = ["raise", "hardirq", "wakeup", "return", "handler", "unmask", "reenable"]


def load(path):
    return C.load(path)


def write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


# -- reading ----------------------------------------------------------------------------

def test_reading_is_tolerant_of_missing_fewer_segments_and_no_section():
    cl = C.cells(load(REPRO))
    full, five, missing, none = (X.of(c) for c in cl)
    assert [n for n, _ in full.segments] == SEVEN
    assert [n for n, _ in five.segments] == ["raise", "hardirq", "wakeup", "handler", "unmask"]
    assert missing.missing.startswith("tracefs is not mounted") and missing.segments == []
    assert none is None
    # a segment named but without a histogram is left out; a section with none says so
    c = copy.deepcopy(cl[0])
    del c["explain"]["latency"]["return"]
    assert "return" not in [n for n, _ in X.of(c).segments] and len(X.of(c).segments) == 6
    c["explain"]["latency"] = {}
    assert "no segment" in X.of(c).missing


def test_the_bar_is_the_means_which_add_up_to_the_mean_round_trip():
    cell = C.cells(load(RUN_A))[0]
    stat, parts = X.of(cell).bar()
    assert stat == "mean" and [n for n, _, _ in parts] == SEVEN
    assert sum(p for _, _, p in parts) == pytest.approx(100.0)
    # the segments partition each round trip: their means add up to its mean (histogram precision)
    assert sum(us for _, us, _ in parts) == pytest.approx(cell["latency"]["round_trip"]["avg_us"], rel=0.02)
    # a file without means: the p50s, and the bar says so
    for h in cell["explain"]["latency"].values():
        del h["avg_us"]
    stat, parts = X.of(cell).bar()
    assert stat == "p50" and dict((n, us) for n, us, _ in parts) == X.of(cell).p50s()


def test_an_explain_section_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    doc = json.loads(open(RUN_A).read())
    doc["explain"]["segments"] = "raise,hardirq"
    assert main(["report", write(tmp_path, "bad.json", doc)]) == 2
    err = capsys.readouterr().err
    assert "explain.segments is" in err and "not a list" in err and len(err.splitlines()) == 1, err
    doc = json.loads(open(RUN_A).read())
    doc["explain"]["worst"]["blocking"][0]["pid"] = "42"
    assert main(["compare", write(tmp_path, "bad2.json", doc), RUN_A]) == 2
    err = capsys.readouterr().err
    assert "explain.worst.blocking[0].pid" in err and len(err.splitlines()) == 1, err


# -- the summary ------------------------------------------------------------------------

def test_summary_has_one_line_per_explained_cell():
    text = summary.table(load(REPRO))
    seg = [ln for ln in text.splitlines() if ln.startswith(("segments p50 us", "no breakdown"))]
    assert len(seg) == 3                                   # the cell without explain: nothing
    assert seg[0].startswith("segments p50 us (nointxmask=0 / policy=- / ioctl): raise 3.0, hardirq 2.0")
    assert "reenable 2.5" in seg[0] and "return" not in seg[1] and "unmask 8.6" in seg[1]
    assert seg[2].startswith("no breakdown (nointxmask=1 / kernel / ioctl): tracefs is not mounted")
    run = summary.table(load(RUN_B))
    assert "segments p50 us (run): raise 3.0, hardirq 2.0, wakeup 9.1, return 1.5, handler 60.4" in run
    assert "3 not attributed" in run
    assert not [ln for ln in summary.table(load(str(FIX / "lab-ppc64le-seed.json"))).splitlines()
                if "segments" in ln or "breakdown" in ln]


def test_report_prints_the_lines(capsys):
    assert main(["report", RUN_A]) == 0
    assert "segments p50 us (run): raise 3.0" in capsys.readouterr().out


# -- compare ----------------------------------------------------------------------------

def test_compare_names_the_segment_that_moved_first(tmp_path, capsys):
    out = tmp_path / "cmp.json"
    # the handler moved 48 us at p50: named first; the verdicts are the same: exit 0
    assert main(["compare", RUN_A, RUN_B, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "  run: moved: handler +48.4 us (p50)" in text
    lines = text.splitlines()
    first = lines.index("  run: moved: handler +48.4 us (p50)")
    assert lines[first + 1].split()[:5] == ["handler", "p50", "12.0", "->", "60.4"]
    assert "p99 15.9 -> 79.9 (+64.0)" in lines[first + 1]
    assert len([ln for ln in lines[first + 1:] if ln.startswith("    ")]) == 7
    ex = json.loads(out.read_text())["cells"][0]["explain"]
    assert ex["moved"] == "handler" and ex["words"] == "moved: handler +48.4 us (p50)"
    changes = [abs(s["p50"]["abs"]) for s in ex["segments"]]
    assert changes == sorted(changes, reverse=True) and len(changes) == 7
    # the other way round: the handler moved back
    assert main(["compare", RUN_B, RUN_A]) == 0
    assert "moved: handler -48.4 us (p50)" in capsys.readouterr().out


def test_a_moved_segment_never_changes_compare_s_exit(tmp_path, capsys):
    """One verdict rule: the gate is verdicts and cells; a segment alone is information."""
    res = compare.compare(load(RUN_A), load(RUN_B))
    assert res["changed"] is False and res["cells"][0]["explain"]["moved"] == "handler"
    b = json.loads(open(RUN_B).read())
    b["verdict"], b["outcome"] = "lost 3", None
    b["counts"]["lost"] = 3
    assert main(["compare", RUN_A, write(tmp_path, "lost.json", b)]) == 1   # a verdict change does
    assert "moved: handler" in capsys.readouterr().out


def test_compare_with_the_breakdown_on_one_side_only(tmp_path, capsys):
    b = json.loads(open(RUN_B).read())
    del b["explain"]
    plain = write(tmp_path, "plain.json", b)
    out = tmp_path / "c.json"
    assert main(["compare", RUN_A, plain, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "  run: the breakdown is on A only (B ran without --explain)" in text
    assert "moved:" not in text
    assert json.loads(out.read_text())["cells"][0]["explain"]["one_side"] == "A"
    b["explain"] = {"missing": "no root: tracefs needs CAP_SYS_ADMIN"}
    assert main(["compare", write(tmp_path, "m.json", b), RUN_A]) == 0
    assert "the breakdown is on B only (A has none: no root: tracefs needs CAP_SYS_ADMIN)" \
        in capsys.readouterr().out
    # neither side ran with --explain: compare says nothing about segments
    assert main(["compare", plain, plain]) == 0
    assert "where the time went" not in capsys.readouterr().out


def test_compare_fewer_segments_on_one_side_compares_the_common_ones():
    a, b = load(RUN_A), load(RUN_B)
    b["explain"]["segments"] = ["raise", "hardirq", "wakeup", "handler", "unmask"]
    res = compare.compare(a, b)
    ex = res["cells"][0]["explain"]
    assert [s["segment"] for s in ex["segments"]][0] == "handler"
    assert {s["segment"] for s in ex["segments"]} == {"raise", "hardirq", "wakeup", "handler", "unmask"}


# -- KTAP, JUnit, KCIDB, LAVA: each segment's p50 where the format has a place ---------

def test_the_formats_carry_each_segment_s_p50_and_stay_valid(tmp_path):
    import xml.etree.ElementTree as ET

    import formats_check
    from pyvfio.report import formats as F
    res = F.from_path(REPRO)
    seen = formats_check.check_all(res, tmp_path)     # kunit_parser, kcidb-io v5.3, junitparser
    full, five, missing, none = res.cases
    assert list(full.segments) == SEVEN and list(five.segments) == ["raise", "hardirq", "wakeup", "handler",
                                                                    "unmask"]
    assert missing.segments == {} and none.segments == {}
    assert full.segments["handler"] == X.of(C.cells(load(REPRO))[0]).p50s()["handler"]
    ktap = F.render(res, "ktap")
    assert f"  # {full.name}: segments p50 us: raise 3.0, hardirq 2.0, wakeup 9.1" in ktap
    assert ktap.count("segments p50 us") == 2
    kcidb = {t["path"]: t for t in seen["kcidb"]["tests"]}
    seg = kcidb[f"pyvfio.{full.name}.segment.handler"]
    assert seg["status"] == "DONE" and seg["number"]["value"] == pytest.approx(full.segments["handler"] * 1e-6)
    assert len([p for p in kcidb if ".segment." in p]) == 12
    tc = ET.fromstring(F.render(res, "junit")).find(f".//testcase[@name='{five.name}']")
    props = {p.get("name"): p.get("value") for p in tc.iter("property")}
    assert float(props["segment.unmask.p50_us"]) == five.segments["unmask"] and "segment.return.p50_us" not in props
    lava = [ln for ln in seen["lava"] if ".segment." in ln]
    assert len(lava) == 12 and f"lava-test-case {full.name}.segment.handler --result pass --measurement " \
        f"{full.segments['handler']:.3f} --units us" in lava


# -- any explain section: rendered, or refused in one line (hypothesis) -----------------

BOUNDED = dict(deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NUM = st.one_of(st.integers(0, 10**9), st.floats(0, 1e6, allow_nan=False))
HIST = st.fixed_dictionaries({}, optional={"count": st.integers(0, 5000), "avg_us": NUM, "p50_us": NUM,
                                           "p99_us": NUM, "max_us": NUM,
                                           "buckets": st.dictionaries(st.integers(0, 900).map(str),
                                                                      st.integers(0, 50), max_size=3)})
ANALYSIS = st.fixed_dictionaries({}, optional={
    "seq": st.integers(0, 10**6), "round_trip_ns": NUM, "text": st.text(max_size=30),
    "segments_ns": st.dictionaries(st.sampled_from(SEVEN), NUM, max_size=3),
    "blocking": st.lists(st.fixed_dictionaries({"comm": st.text(max_size=8), "pid": st.integers(-1, 99),
                                                "ns": NUM}), max_size=2)})


@st.composite
def explain_section(draw):
    """A section of the contract's shape: any ordered subset of the seven segments
    (or an unknown one), histograms with or without each field, or `missing`."""
    if draw(st.integers(0, 5)) == 0:
        return {"missing": draw(st.text(min_size=1, max_size=40))}
    names = [s for s in SEVEN if draw(st.booleans())] + draw(st.lists(st.sampled_from(["guest_exit"]),
                                                                      max_size=1))
    return {"missing": None, "segments": names, "explained": draw(st.integers(0, 10**6)),
            "unattributed": draw(st.integers(0, 100)),
            "latency": {n: draw(HIST) for n in names if draw(st.integers(0, 6))},
            "worst": draw(st.one_of(st.none(), ANALYSIS)), "breaches": draw(st.lists(ANALYSIS, max_size=2))}


@settings(max_examples=40, **BOUNDED)
@given(a=explain_section(), b=explain_section())
def test_any_explain_section_of_the_shape_is_shown_everywhere(tmp_path, a, b):
    from pyvfio.report import formats as F
    from pyvfio.report import html
    ra, rb = json.loads(open(RUN_A).read()), json.loads(open(RUN_B).read())
    ra["explain"], rb["explain"] = a, b
    for r in (ra, rb):
        C.check(r, "doc")
        assert ("no breakdown" in summary.table(r)) == bool(X.of(r).missing)
    res = compare.compare(ra, rb)
    assert res["changed"] is False                              # segments never decide the gate
    text = compare.render(res)
    ex = res["cells"][0]["explain"]
    assert (ex.get("words") or "") in text
    page = html.render(*html.load(write(tmp_path, "a.json", ra))[:2])
    bd = X.of(ra)
    assert ('class="segments"' in page) == bool(not bd.missing and bd.bar()[1])
    assert ('class="explain-missing"' in page) == bool(bd.missing)
    for fmt in ("ktap", "junit", "kcidb", "lava"):
        F.render(F.from_report(ra), fmt)


@st.composite
def mutated_explain(draw):
    """The run fixture with one value inside its explain section replaced by any JSON."""
    doc = json.loads(open(RUN_A).read())
    target, path = doc["explain"], []
    while isinstance(target, (dict, list)) and target:
        k = draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
        path.append((target, k))
        if not isinstance(target[k], (dict, list)) or not draw(st.integers(0, 2)):
            break
        target = target[k]
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(), st.text(max_size=5))
    parent, k = path[-1]
    parent[k] = draw(st.recursive(leaf, lambda i: st.one_of(st.lists(i, max_size=3),
                                                           st.dictionaries(st.text(max_size=4), i, max_size=3)),
                                  max_leaves=6))
    return doc


@settings(max_examples=40, **BOUNDED)
@given(doc=mutated_explain())
def test_a_mutated_explain_section_is_read_or_refused_in_one_line(tmp_path, capsys, doc):
    path = write(tmp_path, "m.json", doc)
    for argv in (["report", path, "--html", str(tmp_path / "p.html")], ["compare", RUN_A, path],
                 ["compare", path, RUN_B], ["report", path, "--format", "kcidb", "-o", str(tmp_path / "k.json")]):
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        assert "Traceback" not in err and code != 70, (argv, err)
        assert code in (0, 1) or (code == 2 and len(err.splitlines()) == 1 and err.startswith("pyvfio: error:")), \
            (argv, code, err)


def test_the_page_against_a_baseline_names_the_segment_that_moved(tmp_path, capsys):
    page = tmp_path / "b.html"
    assert main(["report", RUN_B, "--html", str(page), "--baseline", RUN_A]) == 0   # the gate: verdicts only
    text = page.read_text()
    assert "<th>segments</th>" in text and '<td class="moved">moved: handler +48.4 us (p50)</td>' in text
    plain = tmp_path / "p.html"
    assert main(["report", str(FIX / "lab-ppc64le-seed.json"), "--html", str(plain),
                 "--baseline", str(FIX / "lab-ppc64le-seed.json")]) == 0
    assert "<th>segments</th>" not in plain.read_text()


def test_the_segments_order_is_the_files_own_with_folded_ones_in_place():
    def b(*names):
        return X.Breakdown(segments=[(n, {"count": 1}) for n in names])
    assert X.order([b("raise", "wakeup", "handler"), b("raise", "hardirq", "wakeup", "return", "handler"),
                    b("handler", "unmask", "reenable")]) == ["raise", "hardirq", "wakeup", "return", "handler",
                                                             "unmask", "reenable"]
    assert X.order([b("wakeup", "handler"), b("raise", "wakeup")]) == ["raise", "wakeup", "handler"]
    assert X.order([]) == []


def test_the_page_of_a_lab_result_with_seven_five_missing_and_none(tmp_path):
    """The page's HTML (the browser's view of it: tests/test_report_html.py): a bar
    per explained cell, the worst interrupt's analysis in a <details>, the line saying
    why under the missing one, nothing under the cell without the section."""
    import re
    page = tmp_path / "explain.html"
    assert main(["report", REPRO, "--html", str(page)]) == 0
    text = page.read_text()
    figs = re.findall(r"<figure .*?</figure>", text, re.S)
    assert [re.search(r'data-explain="(\w+)"', f)[1] for f in figs] == ["yes", "yes", "missing", "no"]
    bars = [re.findall(r'<g class="segments"[^>]*data-stat="(\w+)" data-segments="(\d+)"', f) for f in figs]
    assert bars == [[("mean", "7")], [("mean", "5")], [], []]
    worst = re.findall(r'<details class="worst"[^>]*><summary>([^<]*)</summary><pre>([^<]*)</pre>', text)
    assert len(worst) == 2 and worst[0][0] == "worst interrupt: #137, round trip 521.5 µs"
    assert "kworker/0:1" in worst[0][1] and "thread wakeup" in worst[0][1]
    assert '<p class="explain-missing" data-cell="nointxmask=1 / kernel / ioctl">no breakdown: tracefs is ' \
           'not mounted' in figs[2]
    assert "<details" not in figs[2] + figs[3] and "explain-missing" not in figs[3]
    # the bar's segments: the file's order, widths by share, the whole bar's width
    rects = re.findall(r'<rect class="segment" data-segment="(\w+)"[^>]*data-percent="([\d.]+)" x="([\d.]+)"'
                       r' y="\d+" width="([\d.]+)"', figs[0])
    assert [r[0] for r in rects] == SEVEN
    assert sum(float(r[3]) for r in rects) == pytest.approx(288, abs=0.5)        # 300 px less the margins
    assert [float(r[2]) for r in rects] == sorted(float(r[2]) for r in rects)
    widest = max(rects, key=lambda r: float(r[1]))
    assert widest[0] == "handler" and float(widest[3]) == max(float(r[3]) for r in rects)


def test_a_segment_folded_on_one_side_is_said_not_hidden():
    a, b = load(RUN_A), load(RUN_B)
    b["explain"]["segments"] = [s for s in SEVEN if s != "reenable"]   # B had no unmask kprobe
    ex = compare.compare(a, b)["cells"][0]["explain"]
    assert ex["one_side_segments"] == ["reenable (A only)"]
    assert ex["words"] == ("moved: handler +48.4 us (p50); not on both sides: reenable (A only), "
                           "folded into a neighbour on the other")
    assert compare.compare(a, load(RUN_B))["cells"][0]["explain"]["one_side_segments"] == []


def test_the_svg_draws_the_bar_under_each_explained_histogram_and_a_legend():
    import re

    from pyvfio.report import svg
    rep = svg.render(load(REPRO))
    assert re.findall(r'<g class="segments" data-cell="[^"]*" data-stat="(\w+)" data-segments="(\d+)"', rep) == [
        ("mean", "7"), ("mean", "5")]
    assert "no breakdown: tracefs is not mounted" in rep
    legend = re.search(r'<g class="segments-legend" data-segments="(\d+)">(.*?)</g>', rep, re.S)
    assert legend[1] == "7" and all(f">{s}</text>" in legend[2] for s in SEVEN)
    run = svg.render(load(RUN_A))
    assert run.count('<rect class="segment"') == 7 and 'class="segments-legend"' in run
    height = lambda s: float(re.search(r'<svg [^>]*height="(\d+)"', s)[1])   # noqa: E731
    plain = json.loads(open(RUN_A).read())
    del plain["explain"]
    bare = svg.render(C.check(plain))
    assert 'class="segment' not in bare and height(run) > height(bare)     # room made for it, only then
