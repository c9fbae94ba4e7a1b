"""compare and report --baseline as gates: a cell on one side only, an empty side and
a verdict change each fail (exit 1); --allow-missing accepts the first; two cells one
axis apart are named with the --ignore that matches them; the summary counts."""

import copy
import json

import pytest

from pyvfio.cli import main


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    d = tmp_path_factory.mktemp("gate")
    path = d / "full.json"
    assert main(["repro", "--model", "--ic", "xive", "--card", "non-2.3", "--json", str(path)]) == 0
    return path


def variant(full, tmp_path, name, change):
    doc = json.loads(full.read_text())
    change(doc)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def compare(capsys, *args):
    code = main(["compare", *map(str, args)])
    return code, capsys.readouterr().out


def test_the_same_file_is_the_same(full, capsys):
    code, out = compare(capsys, full, full)
    assert code == 0 and "summary: 4 matched, 0 unmatched, 0 changed: same" in out


def test_an_empty_result_against_a_full_one_fails(full, tmp_path, capsys):
    empty = variant(full, tmp_path, "empty", lambda d: d.update(cells=[]))
    for a, b, words in ((full, empty, "B has no cell, A has some"), (empty, full, "A has no cell, B has some")):
        code, out = compare(capsys, a, b)
        assert code == 1 and words in out, out
        code, out = compare(capsys, a, b, "--allow-missing")   # nothing was compared: still a failure
        assert code == 1 and "0 matched, 4 unmatched" in out, out


def test_a_cell_only_in_a_is_a_difference_unless_allowed(full, tmp_path, capsys):
    fewer = variant(full, tmp_path, "fewer", lambda d: d["cells"].pop())
    code, out = compare(capsys, full, fewer)
    assert code == 1 and "only in A: " in out
    assert "summary: 3 matched, 1 unmatched, 0 changed: DIFFERENT (1 cell(s) on one side only" in out
    code, out = compare(capsys, full, fewer, "--allow-missing")
    assert code == 0 and out.rstrip().endswith("summary: 3 matched, 1 unmatched, 0 changed: same")
    code, _ = compare(capsys, fewer, full)          # only in B alike
    assert code == 1


def test_two_cells_one_axis_apart_name_the_axis(full, tmp_path, capsys):
    def other_engine(d):
        d["cells"][0]["key"]["engine"] = "c"
    moved = variant(full, tmp_path, "moved", other_engine)
    code, out = compare(capsys, full, moved, "--json", tmp_path / "cmp.json")
    assert code == 1
    assert "1 cell(s) only in A and only in B differ only by engine: to match them, --ignore engine" in out
    r = json.loads((tmp_path / "cmp.json").read_text())
    assert r["axis_hints"] == [{"axis": "engine", "pairs": 1}]
    assert r["summary"] == {"matched": 3, "unmatched": 2, "changed": 0}
    code, out = compare(capsys, full, moved, "--ignore", "engine")    # the hint works
    assert code == 0 and "4 matched, 0 unmatched" in out


@pytest.mark.parametrize("outcome", [{"state": "ok"}, {"state": "profile", "fault": "uncleared"}])
def test_a_changed_verdict_is_counted(full, tmp_path, capsys, outcome):
    from pyvfio.verdict import Verdict

    def replaced(d):
        c = d["cells"][0]
        c["outcome"] = outcome
        c["verdict"] = Verdict.from_json(outcome).text
    changed = variant(full, tmp_path, "changed", replaced)
    code, out = compare(capsys, full, changed)
    assert code == 1 and "summary: 4 matched, 0 unmatched, 1 changed: DIFFERENT (1 verdict(s) changed)" in out
    assert f"stall after 1 -> {Verdict.from_json(outcome).text}" in out


def test_report_against_a_baseline_is_a_gate(full, tmp_path, capsys):
    fewer = variant(full, tmp_path, "fewer", lambda d: d["cells"].pop())
    assert main(["report", str(full), "--baseline", str(full)]) == 0
    assert "0 changed: same" in capsys.readouterr().out
    assert main(["report", str(fewer), "--baseline", str(full)]) == 1
    assert "1 unmatched, 0 changed: DIFFERENT" in capsys.readouterr().out
    assert main(["report", str(fewer), "--baseline", str(full), "--allow-missing"]) == 0
    capsys.readouterr()
