"""pyvfio repro on the model host: table, JSON, trace, scenario files, bad input."""

import json

import pytest

from pyvfio.cli import main


def run(capsys, *argv):
    code = main(["repro", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_matrix_table_is_the_default(capsys):
    code, out, err = run(capsys, "--loops", "10")
    assert code == 0 and err == ""
    rows = [l.split() for l in out.splitlines()[2:]]
    assert len(rows) == 18
    by = {tuple(r[:4]): " ".join(r[7:]) for r in rows}
    assert by[("xive", "non-2.3", "lazy", "ioctl")] == "stall after 1"
    assert by[("ioapic", "non-2.3", "lazy", "eventfd")] == "ok, 1.00 spurious/irq"
    assert by[("xive", "2.3", "-", "ioctl")] == "ok"


def test_model_flag_and_filters(capsys):
    code, out, _ = run(capsys, "--model", "--controller", "xics,ioapic", "--card", "non-2.3",
                       "--policy", "unlazy", "-l", "5")
    rows = out.splitlines()[2:]
    assert code == 0 and len(rows) == 4 and all(r.split()[-1] == "ok" for r in rows)


def test_json_is_written(tmp_path, capsys):
    path = tmp_path / "m.json"
    code, _, _ = run(capsys, "--loops", "5", "--json", str(path))
    doc = json.loads(path.read_text())
    assert code == 0 and doc["kind"] == "repro" and doc["backend"] == "model"
    assert len(doc["scenarios"]) == 18
    s = {x["name"]: x for x in doc["scenarios"]}
    assert s["xive/non-2.3/lazy/ioctl"]["stalled_after"] == 1
    assert s["xics/non-2.3/lazy/ioctl"]["spurious"] == 5
    assert not list(tmp_path.glob(".pyvfio-*"))        # no temporary left behind


def test_trace_of_one_scenario(capsys, tmp_path):
    path = tmp_path / "t.json"
    code, out, _ = run(capsys, "--trace", "--controller", "xive", "--card", "non-2.3",
                       "--policy", "lazy", "--unmask", "ioctl", "--json", str(path))
    assert code == 0
    assert "source EOI skipped" in out and "LSI trigger ignored: PQ 10" in out
    assert "verdict: stall after 1" in out and "pq=10" in out
    assert json.loads(path.read_text())["trace"]


def test_trace_needs_exactly_one_scenario(capsys):
    code, _, err = run(capsys, "--trace", "--controller", "xive")
    assert code == 2 and "--trace shows one scenario" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv,needle", [
    (["--controller", "gic"], "unknown controller 'gic'"),
    (["--policy", "eager"], "unknown policy 'eager'"),
    (["--unmask", "poll"], "unknown unmask 'poll'"),
    (["--card", "2.3", "--policy", "unlazy"], "policy 'unlazy' does not apply to a PCI 2.3 card"),
    (["--loops", "0"], "loop count 0 is out of range"),
    (["--xics-variant", "p10"], "unknown XICS variant"),
])
def test_bad_options_are_one_line_errors(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and needle in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_unlazy_with_23_and_nointxmask_is_fine(capsys):
    code, out, _ = run(capsys, "--card", "2.3", "--policy", "unlazy", "--nointxmask",
                       "--controller", "xive", "-l", "5")
    assert code == 0 and "2.3+nointxmask" in out and "unlazy" in out


def write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


def test_scenario_file(tmp_path, capsys):
    f = write(tmp_path, 'loops = 7\n[[scenario]]\ncontroller = "xive"\ncard = "non-2.3"\n'
                        'policy = ["lazy", "unlazy"]\nunmask = "eventfd"\n'
                        '[[scenario]]\ncontroller = "xics"\ncard = "non-2.3"\npolicy = "lazy"\n'
                        'unmask = "ioctl"\nxics_variant = "seed-hypothesis"\n')
    code, out, _ = run(capsys, "--scenario", f)
    rows = out.splitlines()[2:]
    assert code == 0 and len(rows) == 3
    assert "stall after 1" in rows[0] and "7/7" in rows[1]
    assert "seed-hypothesis" in rows[2] and "stall after 1" in rows[2]


@pytest.mark.parametrize("text,needle", [
    ('[[scenario]]\ncontroller = "xive"\ncard = \n', "not valid TOML"),
    ('[[scenario]]\ncontroller = "gic"\n', "[[scenario]] #1: unknown controller 'gic'"),
    ('[[scenario]]\ncontroler = "xive"\n', "unknown key(s) controler"),
    ('[[scenario]]\ncard = "2.3"\npolicy = "unlazy"\n', "does not apply"),
    ('loops = 5\n', "no [[scenario]] table"),
    ('[[scenario]]\nnointxmask = "yes"\n', "nointxmask must be true or false"),
])
def test_bad_scenario_files(tmp_path, capsys, text, needle):
    code, _, err = run(capsys, "--scenario", write(tmp_path, text))
    assert code == 2 and needle in err and len(err.splitlines()) == 1


def test_unparsable_file_names_the_line(tmp_path, capsys):
    code, _, err = run(capsys, "--scenario", write(tmp_path, '[[scenario]]\n\ncard = 2.3.1\n'))
    assert code == 2 and "line 3" in err


def test_scenario_file_excludes_options(tmp_path, capsys):
    f = write(tmp_path, '[[scenario]]\ncontroller = "xive"\n')
    code, _, err = run(capsys, "--scenario", f, "--card", "2.3")
    assert code == 2 and "exclude each other" in err


def test_missing_scenario_file(capsys, tmp_path):
    code, _, err = run(capsys, "--scenario", str(tmp_path / "nope.toml"))
    assert code == 2 and "cannot read scenario file" in err


def test_unparsable_at_end_of_file_still_names_a_line(tmp_path, capsys):
    code, _, err = run(capsys, "--scenario", write(tmp_path, '[[scenario]]\ncontroller = "xive"\ncard = [\n'))
    assert code == 2 and "line 3" in err
