"""pyvfio repro on the model host: the same pipeline as a card or the lab (table,
JSON cells, SVG, expectations and exit status), the trace, scenario files, bad input."""

import json
import xml.etree.ElementTree as ET

import pytest

from pyvfio.cli import main

NS = "{http://www.w3.org/2000/svg}"


def run(capsys, *argv):
    code = main(["repro", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def cols(line):
    return [c.strip() for c in line.split("  ") if c.strip()]


def test_the_whole_matrix_is_the_default(capsys):
    code, out, err = run(capsys, "--loops", "10")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "model host; model backend"
    assert lines[1] == "all cells: nointxmask=0, engine=python, access=mmap, vfio=shipped, irq=intx, guest=toy"
    head = cols(lines[2])
    assert head[:5] == ["ic", "card", "policy", "unmask", "verdict"]
    body = [cols(line) for line in lines[4:-1]]
    assert len(body) == 18                       # 3 ics x (2.3 x 2 unmask + non-2.3 x 2 policies x 2)
    by = {tuple(r[:4]): r for r in body}
    assert by[("xive", "non-2.3", "lazy", "ioctl")][4:7] == ["stall after 1", "stall after 1", "yes"]
    assert by[("ioapic", "non-2.3", "lazy", "eventfd")][4] == "ok, 1.00 spurious/irq"
    assert by[("ioapic", "non-2.3", "lazy", "eventfd")][-2:] == ["10", "20"]   # /proc/interrupts, deliveries
    assert by[("xive", "2.3", "-", "ioctl")][4] == "ok"
    assert lines[-1] == "18 cell(s): 16 ok, 2 stall; all as expected"


def test_selection(capsys):
    code, out, _ = run(capsys, "--model", "--ic", "xics,ioapic", "--card-kind", "non-2.3",
                       "--policy", "unlazy", "-l", "5")
    body = [cols(line) for line in out.splitlines()[4:-1]]
    assert code == 0 and len(body) == 4 and all(r[3] == "ok" for r in body)  # (ic, unmask vary)


def test_json_cells_and_svg_as_a_lab_run_writes_them(tmp_path, capsys):
    js, pic = tmp_path / "m.json", tmp_path / "m.svg"
    code, _, _ = run(capsys, "--loops", "5", "--json", str(js), "--svg", str(pic))
    doc = json.loads(js.read_text())
    assert code == 0 and doc["kind"] == "repro" and doc["backend"] == "model"
    assert len(doc["cells"]) == 18
    by = {(c["key"]["ic"], c["key"]["card"], c["key"]["policy"], c["key"]["unmask"]): c for c in doc["cells"]}
    stall = by[("xive", "non-2.3", "lazy", "ioctl")]
    assert stall["outcome"]["state"] == "stall" and stall["outcome"]["stalled_after"] == 1
    assert stall["verdict"] == "stall after 1" and stall["match"] is True
    assert stall["counts"]["delivered"] == 1 and stall["stalls"][0]["host_state"]["pq"] == "10"
    xics = by[("xics", "non-2.3", "lazy", "ioctl")]
    assert xics["outcome"]["spurious_per_irq"] == 1.0 and xics["controller_deliveries"] == 10
    assert "latency" not in xics                  # the model's Python speed is no INTx latency
    assert not list(tmp_path.glob(".pyvfio-*"))   # no temporary left behind
    grid = [g for g in ET.parse(pic).getroot().iter(NS + "g") if g.get("class") == "grid-cell"]
    assert len(grid) == 18 and sorted({g.get("data-verdict") for g in grid}) == ["ok", "stall"]


def test_trace_of_one_cell(capsys, tmp_path):
    path = tmp_path / "t.json"
    code, out, _ = run(capsys, "--trace", "--ic", "xive", "--card-kind", "non-2.3",
                       "--policy", "lazy", "--unmask", "ioctl", "--json", str(path))
    assert code == 0
    assert out.startswith("cell ic=xive card=non-2.3 nointxmask=0 policy=lazy unmask=ioctl")
    assert "source EOI skipped" in out and "LSI trigger ignored: PQ 10" in out
    assert "verdict: stall after 1" in out and "pq=10" in out
    doc = json.loads(path.read_text())
    assert doc["trace"] and len(doc["cells"]) == 1 and doc["cells"][0]["counts"]["raised"] == 2


def test_trace_needs_exactly_one_cell(capsys):
    code, _, err = run(capsys, "--trace", "--ic", "xive")
    assert code == 2 and "--trace shows one cell; the selection has 6" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv,needle", [
    (["--ic", "gic"], "argument --ic: invalid choice: 'gic' (choose from xive, xics, ioapic)"),
    (["--policy", "eager"], "argument --policy: invalid choice: 'eager'"),
    (["--unmask", "poll"], "argument --unmask: invalid choice: 'poll'"),
    (["--card-kind", "2.3", "--policy", "unlazy"], "no cell of"),
    (["--loops", "0"], "loop count 0 is out of range"),
    (["--xics-variant", "p10"], "unknown XICS variant"),
    (["0000:00:04.0", "--policy", "lazy"], "--policy select and trace the model host's cells"),
    (["--model", "--lab", "x86_64"], "--model runs the model host"),
    (["--model", "--force"], "--force reloads vfio-pci"),          # was ignored: exit 0
    (["--lab", "x86_64", "--force"], "--force reloads vfio-pci"),  # refused before a boot
])
def test_bad_options_are_one_line_errors(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and needle in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("spelling", [
    ["--card-kind", "2.3", "--policy", "unlazy,lazy", "--nointxmask", "1", "--ic", "xive"],
    ["--card", "2.3", "--policy", "unlazy,lazy", "--nointxmask", "--controller", "xive"],   # the old, one release
])
def test_a_23_card_with_nointxmask_is_masked_at_the_controller(capsys, spelling):
    code, out, _ = run(capsys, *spelling, "-l", "5")
    body = {tuple(cols(line)[:2]): cols(line)[2:5] for line in out.splitlines()[4:-1]}
    assert code == 0 and "nointxmask=1" in out.splitlines()[1]
    assert body[("lazy", "ioctl")] == body[("lazy", "eventfd")] == ["stall after 1", "stall after 1", "yes"]
    assert body[("unlazy", "ioctl")] == ["ok", "ok", "yes"]


def write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


def test_model_machines_and_knobs_from_a_scenario_file(tmp_path, capsys):
    f = write(tmp_path, 'loops = 7\n[matrix]\nnointxmask = 0\npolicy = ["lazy", "unlazy"]\n'
                        'unmask = "eventfd"\n[model]\nic = ["xive", "xics"]\ncard = "non-2.3"\n'
                        'xics_variant = "seed-hypothesis"\n')
    js = tmp_path / "k.json"
    code, out, _ = run(capsys, "--scenario", f, "--json", str(js))
    assert code == 0 and "7/7" in out
    cells = json.loads(js.read_text())["cells"]
    got = {(c["key"]["ic"], c["key"].get("xics_variant"), c["key"]["policy"]): c["verdict"] for c in cells}
    assert got == {("xive", None, "lazy"): "stall after 1", ("xive", None, "unlazy"): "ok",
                   ("xics", "seed-hypothesis", "lazy"): "stall after 1",     # the knob names the cell
                   ("xics", "seed-hypothesis", "unlazy"): "ok"}


def test_a_wrong_expectation_exits_1_for_the_model_as_for_the_lab(tmp_path, capsys):
    """The seed's machines with an [[expect]] that is deliberately wrong: every cell
    'ok', so the XIVE lazy cells miss it."""
    f = write(tmp_path, 'loops = 5\n[matrix]\nnointxmask = [0, 1]\npolicy = ["kernel", "lazy"]\n'
                        '[lab]\nppc64le = [{ kernel = "6.12", ic = "xive" }]\n'
                        '[[expect]]\nverdict = "ok"\n')
    js = tmp_path / "w.json"
    code, out, err = run(capsys, "--model", "--scenario", f, "--json", str(js))
    assert code == 1
    assert err.strip() == "2 of 6 cells do not match their expectation"
    bad = [c for c in json.loads(js.read_text())["cells"] if c["match"] is False]
    assert {(c["key"]["policy"], c["verdict"]) for c in bad} == {("lazy", "stall after 1")}
    assert out.splitlines()[-1] == "6 cell(s): 4 ok, 2 stall; 2 not as expected"


@pytest.mark.parametrize("text,needle", [
    ('[[scenario]]\ncontroller = "xive"\n', "s.toml:1: [[scenario]] tables are no longer read"),
    ('[model]\nic = "gic"\n', "s.toml:2: [model]: unknown ic 'gic'"),
    ('[model]\nicc = "xive"\n', "unknown key 'icc' in [model]"),
    ('[model]\ncard = ["2.3", 5]\n', "[model] card has the wrong type"),
    ('[model]\nkernel = "5.4"\n', "no lab kernel '5.4'"),
    ('[matrix]\npolicy = "kernel"\n[model]\nic = "xive"\n', "policy 'kernel' needs the machine's kernel"),
    ('[lab]\nx86_64 = [{ kernel = "6.5" }]\n', "s.toml:2: [lab] x86_64: no 6.5 kernel for the x86_64 lab"),
    ('[[expect]]\nverdict = "stall after one"\n', "s.toml:2: [[expect]] #1: 'stall after one' is not a verdict"),
    ('model = 5\n', "s.toml:1: model must be a table ([model])"),
    ('expect = "ok"\n', "s.toml:1: expect must be [[expect]] tables"),
])
def test_bad_scenario_files(tmp_path, capsys, text, needle):
    code, _, err = run(capsys, "--scenario", write(tmp_path, text))
    assert code == 2 and needle in err and len(err.splitlines()) == 1


def test_missing_scenario_file(capsys, tmp_path):
    code, _, err = run(capsys, "--scenario", str(tmp_path / "nope.toml"))
    assert code == 2 and "cannot read scenario file" in err


def test_a_scenario_with_no_machine_is_a_one_line_error(capsys, tmp_path):
    bare = tmp_path / "bare.toml"
    bare.write_text("loops = 10\n[matrix]\nnointxmask = [0]\n")
    code, _, err = run(capsys, "--scenario", str(bare))
    assert code == 2 and "names no machine for the model host" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
