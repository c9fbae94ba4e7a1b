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
    assert main(["repro", "--model", "--ic", "xive", "--card-kind", "non-2.3", "--json", str(path)]) == 0
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


def refused(capsys, *args):
    code = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err

def _stall_cell(cell, recovered):
    """`cell` as one stall after 1, every stall re-armed (recovered) or none."""
    from pyvfio.verdict import Verdict
    v = Verdict("stall", stalled_after=1, stalls=1, recovered=1 if recovered else 0)
    cell["outcome"], cell["verdict"] = v.to_json(), v.text


def test_a_duplicate_cell_key_on_either_side_is_refused(full, tmp_path, capsys):
    # B holds cell 0 twice, once stalled and once ok: matched by key, the last copy
    # hid the other (exit 0 whichever order the copies came in)
    def doubled(d):
        twin = copy.deepcopy(d["cells"][2])                        # unlazy/ioctl: ok
        d["cells"].insert(2, copy.deepcopy(twin))
        _stall_cell(d["cells"][2], recovered=False)
    dup = variant(full, tmp_path, "dup", doubled)
    for a, b, side in ((full, dup, "B"), (dup, full, "A")):
        code, out, err = refused(capsys, a, b)
        assert code == 2 and not out and err.count("\n") == 1 and "2 cells" in err, (side, err)
    assert main(["report", str(dup), "--baseline", str(full)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 cells" in err and "policy=unlazy" in err, err


def test_an_ignore_that_merges_cells_is_refused(full, capsys):
    # --ignore policy leaves lazy/ioctl and unlazy/ioctl one key: the same file
    # against itself was "2 verdict(s) changed" (each matched with the other)
    code, out, err = refused(capsys, full, full, "--ignore", "policy")
    assert code == 2 and not out
    assert err.count("\n") == 1 and "once policy is left out" in err and "--ignore fewer" in err, err


@pytest.mark.parametrize("args, words", [
    (["--ignore", "nonesuch"], "--ignore nonesuch"),                 # was exit 0: a typo ignored
    (["--ignore", ""], "--ignore ''"),
])
def test_an_ignore_naming_no_axis_is_refused(full, capsys, args, words):
    code, out, err = refused(capsys, full, full, *args)
    assert code == 2 and not out and err.count("\n") == 1 and words in err, err


def test_split_on_one_value_twice_is_refused(full, capsys):
    code, out, err = refused(capsys, full, "--split", "policy=lazy,lazy")   # was exit 0: cells against themselves
    assert code == 2 and not out and err.count("\n") == 1 and "--split" in err, err


def test_a_recovery_lost_is_a_verdict_change(full, tmp_path, capsys):
    # every stall re-armed (run exits 0) against a line left dead (exit 5): the same
    # essence, "stall after 1", and compare said "same"
    recovered = variant(full, tmp_path, "rec", lambda d: _stall_cell(d["cells"][0], recovered=True))
    for a, b in ((recovered, full), (full, recovered)):
        code, out = compare(capsys, a, b)
        assert code == 1 and "1 changed" in out, out
    assert "stall after 1, recovered 1x -> stall after 1" in compare(capsys, recovered, full)[1]
    assert main(["report", str(full), "--baseline", str(recovered)]) == 1
    capsys.readouterr()


def test_report_fails_on_a_baseline_machine_no_result_has(full, tmp_path, capsys):
    # the baseline holds xive and xics; the result xive only: the xics machine was
    # never compared, and report said "same" (exit 0), for a FILE and a DIR alike
    def two_machines(d):
        d["cells"] += [dict(copy.deepcopy(c), key=dict(c["key"], ic="xics")) for c in d["cells"]]
    base = variant(full, tmp_path, "base", two_machines)
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "xive.json").write_text(full.read_text())
    for path in (full, folder):
        assert main(["report", str(path), "--baseline", str(base)]) == 1
        out = capsys.readouterr().out
        assert "against the baseline, xics: DIFFERENT (no result has this machine" in out, out
        assert main(["report", str(path), "--baseline", str(base), "--allow-missing"]) == 0
        assert "against the baseline, xics: missing (--allow-missing)" in capsys.readouterr().out


def test_report_allow_missing_without_a_baseline_is_refused(full, capsys):
    # it was ignored, exit 0: a gate the user thought was relaxed, or meant to set
    assert main(["report", str(full), "--allow-missing"]) == 2
    out, err = capsys.readouterr()
    assert not out and err.count("\n") == 1 and "--allow-missing" in err and "--baseline" in err


def test_a_fleet_folders_own_baseline_shows_but_does_not_gate(full, tmp_path, capsys):
    """A fleet's --out names the baseline the fleet ran against (fleet.json): `report
    DIR` shows it on the page, and gates on it only when the user asks (--baseline).
    (CI's fleet test: report on the seed's folder exited 1 against the model's whole seed.)"""
    out = tmp_path / "fleet"
    out.mkdir()
    (out / "p1.json").write_text(full.read_text())
    wider = variant(full, tmp_path, "wider", lambda d: d["cells"].append(
        {**d["cells"][0], "key": {**d["cells"][0]["key"], "card": "2.3"}}))
    (out / "fleet.json").write_text(json.dumps({
        "tool": "pyvfio", "kind": "fleet", "scenario": "seed.toml", "baseline": str(wider),
        "places": {"p1": {"result": "p1.json", "exit": 0}}}))
    page = tmp_path / "page.html"
    assert main(["report", str(out), "--html", str(page)]) == 0 and page.exists()
    assert "against the baseline" not in capsys.readouterr().out
    assert main(["report", str(out), "--baseline", str(wider)]) == 1
    assert "1 unmatched" in capsys.readouterr().out
