"""KTAP, JUnit, KCIDB and LAVA from one result model: a model repro, a run result
and a real lab result (tests/fixtures/reports, written by `repro --lab ppc64le
--scenario seed`), each read by what reads it in the world (formats_check.py);
the CLI's --format and -o, and its exit codes."""

import json
import re
import xml.etree.ElementTree as ET

import pytest

import formats_check
from pyvfio.cli import main
from pyvfio.report import cells
from pyvfio.report import formats as F
from pyvfio.results import envelope

LAB = "tests/fixtures/reports/lab-ppc64le-seed-vfio.json"


@pytest.fixture(scope="module")
def model_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed") / "seed.json"
    assert main(["repro", "--model", "--scenario", "seed", "-l", "5", "--json", str(path)]) == 0
    return path


def run_result(policy="lazy", controller="xive"):
    """What `pyvfio run --json` writes, from the engine on the model host."""
    from pyvfio.engine import Run, RunConfig
    from pyvfio.profiles import probe
    from pyvfio.sim import ModelHost

    host = ModelHost(controller, "non-2.3", policy)
    profile = probe(host, "rw")
    config = RunConfig(loops=20, engine="python", watchdog_ms=0)
    r = Run(host, profile, config).execute()
    return envelope("run", bdf="0000:00:04.0", host={"kernel": "6.12.95+deb12-powerpc64le", "machine": "ppc64le",
                                                     "intx_line": {"chip": "XIVE-IRQ"}},
                    card=profile.describe(), modes={**config.__dict__, "policy": policy}, **r.to_json())


def src_of(path, ic, nim, policy, unmask):
    return next(c for c in cells.cells(cells.load(path)) if c["key"]["vfio"] == "shipped" and
                (c["key"]["ic"], c["key"]["nointxmask"], c["key"]["policy"], c["key"]["unmask"]) ==
                (ic, nim, policy, unmask))


def by_name(results):
    return {(m.name, c.name): c for m in results.machines for c in m.cases}


def test_model_seed_in_every_format(model_json, tmp_path):
    res = F.from_path(str(model_json))
    seen = formats_check.check_all(res, tmp_path)
    cases = by_name(res)
    lazy = cases[("ppc64le 6.12 xive", "intx.edu.xive.lazy.ioctl.nointxmask_1.vfio_shipped")]
    assert lazy.status == "fail" and lazy.verdict == "stall after 1" and "stalled" in lazy.why
    assert sum(c.status == "fail" for c in res.cases) == 4          # XIVE lazy and prefix, two unmasks
    assert seen["ktap"].counts.failed == 4 and seen["ktap"].counts.passed == len(res.cases) - 4
    paths = {t["path"]: t for t in seen["kcidb"]["tests"]}
    assert paths["pyvfio.intx.edu.xive.lazy.ioctl.nointxmask_1.vfio_shipped"]["status"] == "FAIL"
    builds = {b["id"]: b for b in seen["kcidb"]["builds"]}
    assert {b["config_name"] for b in builds.values()} == {"vfio-pci-shipped", "vfio-pci-prefix"}
    xive = next(s for s in seen["junit"] if s.name == "ppc64le 6.12 xive")
    assert xive.failures == 4 and xive.tests == 10


def test_lab_result_in_every_format(tmp_path):
    res = F.from_path(LAB)
    seen = formats_check.check_all(res, tmp_path)
    assert [m.name for m in res.machines] == ["ppc64le 6.12 xive", "ppc64le 6.12 xics"]
    assert [m.facts["kernel"] for m in res.machines] == ["6.12.95+deb12-powerpc64le"] * 2
    # the checkout is the kernel's release; the prefix build carries its srcversion
    assert {c["misc"]["kernel_release"] for c in seen["kcidb"]["checkouts"]} == {"6.12.95+deb12-powerpc64le"}
    prefix = [b for b in seen["kcidb"]["builds"] if b["config_name"] == "vfio-pci-prefix"]
    assert prefix and {b["misc"]["vfio_srcversion"] for b in prefix} == {"8E64EF2090B07C2C0FA04D5"}
    assert {b["architecture"] for b in seen["kcidb"]["builds"]} == {"ppc64le"}
    # latency percentiles are DONE tests with a number in seconds, metric prefix
    done = [t for t in seen["kcidb"]["tests"] if t["status"] == "DONE"]
    p99 = next(t for t in done if t["path"] == "pyvfio.intx.edu.xive.na.ioctl.nointxmask_0.vfio_shipped.p99")
    src = src_of(LAB, "xive", 0, "-", "ioctl")
    assert p99["number"] == {"value": pytest.approx(src["latency"]["round_trip"]["p99_us"] * 1e-6),
                             "unit": "s", "prefix": "metric"}
    # KTAP: figures on diagnostic lines; LAVA: measurements in us
    ktap = F.render(res, "ktap")
    assert re.search(r"^  # intx\.edu\.xive\.na\.ioctl\.nointxmask_0\.vfio_shipped: round trip "
                     r"p50 48\.1 us, p99 503\.8 us, max 2494\.8 us; 4501 interrupts/s", ktap, re.M), ktap
    assert "lava-test-case ppc64le_6.12_xive.intx.edu.xive.na.ioctl.nointxmask_0.vfio_shipped.p99 " \
           "--result pass --measurement 503.807 --units us" in seen["lava"]
    # JUnit: the key and the figures as properties, the verdict in failure
    name = "intx.edu.xive.lazy.ioctl.nointxmask_1.vfio_shipped"
    case = next(tc for tc in next(iter(seen["junit"])) if tc.name == name)
    assert case.result and case.result[0].message == "stall after 1" and "stalled" in case.result[0].text
    tc = ET.fromstring(F.render(res, "junit")).find(f".//testcase[@name='{name}']")
    props = {p.get("name"): p.get("value") for p in tc.iter("property")}
    assert props["key.policy"] == "lazy" and props["verdict"] == "stall after 1"
    assert float(props["p50_us"]) == src_of(LAB, "xive", 1, "lazy", "ioctl")["latency"]["round_trip"]["p50_us"]


def test_run_result_in_every_format(tmp_path):
    report = cells.check(run_result())
    res = F.from_report(report, "run")
    seen = formats_check.check_all(res, tmp_path)
    (case,) = res.cases
    assert case.name == "intx.edu.xive.lazy.ioctl" and case.status == "fail"
    assert res.machines[0].name == "Linux 6.12.95+deb12-powerpc64le ppc64le"
    assert res.machines[0].facts["kernel"] == "6.12.95+deb12-powerpc64le"
    assert seen["kcidb"]["tests"][0]["path"] == "pyvfio.intx.edu.xive.lazy.ioctl"
    ok = F.from_report(cells.check(run_result("unlazy")), "run")
    assert ok.cases[0].status == "pass" and F.exit_code(ok, "ktap") == 0
    assert {"p50_us", "p99_us", "max_us", "throughput_per_s"} <= set(ok.cases[0].figures)
    formats_check.check_all(ok, tmp_path)


def test_repro_format_ktap_shows_the_seed(capsys):
    """`pyvfio repro --model --scenario seed --format ktap`: the XIVE lazy cells are
    `not ok` with the stall on a diagnostic line; kselftest's exit 1."""
    code = main(["repro", "--model", "--scenario", "seed", "-l", "5", "--format", "ktap"])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("KTAP version 1\n")
    for unmask in ("ioctl", "eventfd"):
        name = f"intx.edu.xive.lazy.{unmask}.nointxmask_1.vfio_shipped"
        assert re.search(rf"^  # {re.escape(name)}: stall after 1: the kernel's INTx path stalled .*\n"
                         rf"(  # .*\n)*  not ok \d+ {re.escape(name)}$", out, re.M), out
    assert "not ok 1 ppc64le 6.12 xive" in out and "ok 2 ppc64le 6.12 xics" in out
    assert out.rstrip().splitlines()[-1].startswith("# Totals: pass:")
    assert formats_check.parse_ktap(out).counts.errors == 0


def test_report_format_output_and_exit_codes(model_json, tmp_path, capsys):
    out = tmp_path / "r.xml"
    assert main(["report", str(model_json), "--format", "junit", "-o", str(out)]) == 0
    assert out.read_text().startswith("<?xml") and capsys.readouterr().out == ""
    assert not list(tmp_path.glob(".pyvfio-*"))          # written atomically
    assert main(["report", str(model_json), "--format", "ktap", "-o", "-"]) == 1   # a stall fails
    assert capsys.readouterr().out.startswith("KTAP version 1")
    assert main(["report", str(model_json), "--format", "kcidb"]) == 0
    json.loads(capsys.readouterr().out)
    # every cell skipped (nothing to judge them by): kselftest's 4, SKIP with the reason
    data = json.loads(model_json.read_text())
    for c in data["cells"]:
        for f in ("outcome", "stalls", "counts"):
            c.pop(f, None)
    skipped = tmp_path / "skipped.json"
    skipped.write_text(json.dumps(data))
    assert main(["report", str(skipped), "--format", "ktap"]) == 4  # not ours: kselftest's skip
    assert re.search(r"^  ok 1 \S+ # SKIP no verdict", capsys.readouterr().out, re.M)


@pytest.mark.parametrize("argv, message", [
    (["--format", "junit", "-o", "/nonexistent/x.xml"], "cannot write -o to /nonexistent/x.xml"),
    (["-o", "x.xml"], "-o writes a --format"),
    (["--format", "ktap", "--html", "x.html"], "--format prints one format"),
    (["--format", "kcidb", "-o", "LINK"], "cannot write -o to LINK: it is a symbolic link"),
])
def test_report_format_bad_input_is_one_line(model_json, tmp_path, capsys, argv, message):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    argv = [str(link) if a == "LINK" else a for a in argv]
    message = message.replace("LINK", str(link))
    assert main(["report", str(model_json), *argv]) == 2
    assert not (tmp_path / "elsewhere.json").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyvfio: error: ") and message in err[0], err


@pytest.mark.parametrize("fmt", F.FORMATS)
def test_a_result_the_validator_refuses_is_one_line_in_every_format(tmp_path, capsys, fmt):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tool": "pyvfio", "kind": "repro", "cells": [{"verdict": 3}]}))
    assert main(["report", str(bad), "--format", fmt]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"pyvfio: error: {bad}: cells[0].verdict is 3, not a string")


def test_repro_trace_and_format_are_one_or_the_other(capsys):
    assert main(["repro", "--trace", "--ic", "xive", "--card-kind", "non-2.3", "--policy", "lazy",
                 "--unmask", "ioctl", "--format", "ktap"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("pyvfio: error: --trace prints one cell's steps")


def test_the_formats_dir_of_a_folder(model_json, tmp_path, capsys):
    """A folder of results (as a fleet's --out holds): every file's machines."""
    d = tmp_path / "many"
    d.mkdir()
    (d / "a.json").write_text(model_json.read_text())
    (d / "b.json").write_text(json.dumps(cells.check(run_result("unlazy"))))
    res = F.from_path(str(d))
    assert len(res.machines) == 5 and formats_check.check_all(res, tmp_path)


def test_the_lava_definition_installs_binds_runs_and_reports():
    """docs/lava/pyvfio-intx.yaml: a LAVA test definition whose run steps bind the
    job's card, run a scenario with --format lava and execute its lines."""
    import yaml

    with open("docs/lava/pyvfio-intx.yaml") as f:
        d = yaml.safe_load(f)
    assert d["metadata"]["format"] == "Lava-Test Test Definition 1.0"
    assert set(d["params"]) == {"CARD_BDF", "SCENARIO", "PYVFIO"}
    steps = "\n".join(d["run"]["steps"])
    order = [steps.rindex(s) for s in ("pip install \"$PYVFIO\"", "pyvfio bind \"$CARD_BDF\"",
                                       "--scenario \"$SCENARIO\"", "--format lava > /tmp/pyvfio-cases.sh",
                                       "sh -e /tmp/pyvfio-cases.sh", "pyvfio unbind \"$CARD_BDF\"")]
    assert order == sorted(order)


def lab_variant(tmp_path, name, edit):
    """The real lab result with `edit(data)` applied, written to tmp_path/NAME.json."""
    data = json.loads(open(LAB).read())
    edit(data)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_ktap_is_ktap_rst_itself_not_only_what_the_parser_forgives():
    """kunit_parser reads any indentation and a plan anywhere; ktap.rst says two
    spaces a level and the plan after the version line.  The checker holds the
    spec's own example valid and a four-space, plan-late rendering not."""
    spec_example = ["KTAP version 1", "1..2", "  KTAP version 1", "  1..2", "    KTAP version 1", "    1..2",
                    "    not ok 1 test_1", "    ok 2 test_2", "  not ok 1 test_3", "  ok 2 test_4 # SKIP",
                    "not ok 1 example_test_1", "ok 2 example_test_2"]
    assert formats_check.ktap_spec_errors("\n".join(spec_example)) == []
    old = ["KTAP version 1", "# pyvfio", "1..1", "    KTAP version 1", "    # Subtest: m", "    1..1",
           "    ok 1 a", "ok 1 m"]
    errors = formats_check.ktap_spec_errors("\n".join(old))
    assert "1: the version line is not followed by its plan" in errors and \
        "4: a version line at depth 2, expected 1" in errors, errors
    text = F.render(F.from_path(LAB), "ktap")
    assert text.startswith("KTAP version 1\n1..2\n# pyvfio") and "\n  KTAP version 1\n  # Subtest: " in text
    assert formats_check.ktap_spec_errors(text) == []


def test_error_and_profile_cells_in_every_format(tmp_path, capsys):
    """A cell that could not run is KTAP's `not ok ... # ERROR why`, JUnit's error,
    KCIDB's ERROR; a profile fault fails naming the profile; and text with
    characters XML 1.0 cannot hold (a guest's control bytes) still gives JUnit a
    parser reads."""
    def edit(d):
        d["cells"] = d["cells"][:3]
        d["cells"][0].update(outcome={"state": "error", "error": "the guest said \x01\x1b[0m <&\"'>"},
                             verdict="error: the guest said \x01\x1b[0m <&\"'>")
        d["cells"][1].update(outcome={"state": "profile", "fault": "uncleared"},
                             verdict="profile: cause not cleared by ack")
    path = lab_variant(tmp_path, "faults", edit)
    res = F.from_path(str(path))
    assert [c.status for c in res.cases] == ["error", "fail", "pass"]
    assert "the card's profile (or the card) is at fault" in res.cases[1].why
    seen = formats_check.check_all(res, tmp_path)
    assert [t["status"] for t in seen["kcidb"]["tests"] if t["status"] != "DONE"] == ["ERROR", "FAIL", "PASS"]
    ktap = F.render(res, "ktap")
    assert re.search(r"^  not ok 1 intx\.\S+ # ERROR the guest said .*<&\"'>$", ktap, re.M), ktap
    assert "# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:1" in ktap
    xml = F.render(res, "junit")
    assert "\x01" not in xml and "\x1b" not in xml and "&lt;&amp;" in xml
    assert main(["report", str(path), "--format", "ktap"]) == 1
    assert "lava-test-case intx.edu.xive.na.ioctl.nointxmask_0 --result fail" in F.render(res, "lava")


def test_a_result_with_no_cells_skips_and_a_failed_boot_errors(tmp_path, capsys):
    """No cells in the file: SKIP everywhere, kselftest's 4.  A lab boot that failed:
    `not ok N BOOT # ERROR why` and counted in the totals; when every boot failed the
    failures are the machines (no empty one beside them)."""
    empty = lab_variant(tmp_path, "empty", lambda d: d.update(cells=[]))
    res = F.from_path(str(empty))
    assert [(m.name, m.status) for m in res.machines] == [("machine", "skip")]
    seen = formats_check.check_all(res, tmp_path)
    assert seen["ktap"].counts.skipped == 1 and seen["kcidb"]["tests"][0]["status"] == "SKIP"
    assert main(["report", str(empty), "--format", "ktap"]) == 4  # not ours: kselftest's skip
    assert "\nok 1 machine # SKIP no cells in the result\n" in capsys.readouterr().out
    assert F.render(res, "lava") == "lava-test-case machine --result skip\n"

    failure = {"boot": "ppc64le 6.12 xive nointxmask=0 vfio=shipped", "error": "QEMU exited 1"}
    some = lab_variant(tmp_path, "some", lambda d: d.update(failures=[failure]))
    res = F.from_path(str(some))
    assert [m.status for m in res.machines] == [None, None, "error"]
    formats_check.check_all(res, tmp_path)
    ktap = F.render(res, "ktap")
    assert "\nnot ok 3 ppc64le 6.12 xive nointxmask=0 vfio=shipped # ERROR QEMU exited 1\n" in ktap
    assert ktap.endswith("# Totals: pass:16 fail:4 xfail:0 xpass:0 skip:0 error:1\n")
    assert main(["report", str(some), "--format", "ktap"]) == 1
    every = lab_variant(tmp_path, "every", lambda d: d.update(cells=[], failures=[failure]))
    res = F.from_path(str(every))
    assert [(m.name, m.status) for m in res.machines] == [(failure["boot"], "error")]
    formats_check.check_all(res, tmp_path)


def test_a_fleet_out_dir_with_a_failed_place(model_json, tmp_path):
    """A fleet's --out: fleet.json names each place's result; a place that gave none
    is an error with the place's own reason."""
    out = tmp_path / "fleet"
    out.mkdir()
    (out / "p1.json").write_text(model_json.read_text())
    fleet = {"tool": "pyvfio", "kind": "fleet", "scenario": "seed.toml", "baseline": None,
             "places": {"p1": {"result": "p1.json", "exit": 1},
                        "p2": {"result": None, "exit": 5, "error": "ssh: connection refused"}}}
    (out / "fleet.json").write_text(json.dumps(fleet))
    res = F.from_path(str(out))
    assert res.machines[-1].name == "p2" and res.machines[-1].error == "ssh: connection refused"
    assert all(m.name.startswith("p1: ") for m in res.machines[:-1])
    seen = formats_check.check_all(res, tmp_path)
    assert "\nnot ok 5 p2 # ERROR ssh: connection refused\n" in F.render(res, "ktap")
    assert "lava-test-case p2.machine --result fail" in seen["lava"]
    assert F.exit_code(res, "ktap") == 1


def kcidb_ids(path):
    doc = F._module("kcidb").document(F.from_path(str(path)))
    return [o["id"] for part in ("checkouts", "builds", "tests") for o in doc[part]]


def test_kcidb_ids_are_stable_per_file_and_never_shared_by_two_runs(tmp_path):
    """The same file: the same ids, every time.  Two runs of the same second on twin
    hosts (all their names alike, the figures not): no id in common."""
    ids = kcidb_ids(LAB)
    assert len(ids) == len(set(ids)) and ids == kcidb_ids(LAB)

    def twin(d):
        for c in d["cells"]:
            c["latency"]["round_trip"]["p99_us"] += 1.0
    assert not set(ids) & set(kcidb_ids(lab_variant(tmp_path, "twin", twin)))


def test_kcidb_build_names_a_cards_rebuilt_vfio_pci_and_its_srcversion(tmp_path):
    """A run (or a repro) on a card: the vfio-pci /sys/module showed is the build's,
    its srcversion in misc; the distribution's (no srcversion) is "shipped"."""
    report = run_result("unlazy")
    report["host"]["vfio_pci_core"] = {"module": "vfio-pci-core", "srcversion": "0123456789ABCDEF0123456",
                                       "taint": "OE"}
    res = F.from_report(cells.check(report), "run")
    (build,) = formats_check.check_all(res, tmp_path)["kcidb"]["builds"]
    assert build["config_name"] == "vfio-pci-rebuilt"
    assert build["misc"]["vfio_srcversion"] == "0123456789ABCDEF0123456" and build["misc"]["vfio_taint"] == "OE"
    report["host"]["vfio_pci_core"] = {"module": "vfio-pci-core", "srcversion": "", "taint": ""}
    res = F.from_report(cells.check(report), "run")
    (build,) = F._module("kcidb").document(res)["builds"]
    assert build["config_name"] == "vfio-pci-shipped" and "vfio_srcversion" not in build["misc"]

    def card(d):   # as `pyvfio repro BDF` records it: the variant, and what is loaded
        for c in d["cells"]:
            c["vfio"] = {"variant": c["key"]["vfio"], "loaded": {"module": "vfio-pci-core",
                                                                 "srcversion": "FEDCBA9876543210FEDCBA9",
                                                                 "taint": "O"}}
    doc = F._module("kcidb").document(F.from_path(str(lab_variant(tmp_path, "card", card))))
    assert {b["misc"]["vfio_srcversion"] for b in doc["builds"]} == {"FEDCBA9876543210FEDCBA9"}


def lava_shell(tmp_path, repro_exit, repro_out):
    """docs/lava/pyvfio-intx.yaml's run steps as lava-test-shell runs them: one
    script, `set -e`, the params exported first; pyvfio, pip, python3 and LAVA's
    helpers are stubs that log their arguments.  Returns (exit, the log's lines)."""
    import subprocess

    import yaml

    d = yaml.safe_load(open("docs/lava/pyvfio-intx.yaml"))
    log, bin_, venv = tmp_path / "log", tmp_path / "bin", tmp_path / "opt" / "venv" / "bin"
    bin_.mkdir()
    venv.mkdir(parents=True)
    stub = '#!/bin/sh\necho "$(basename "$0") $*" >> {log}\n{body}\n'
    shell = f'if [ "$2" = --shell ]; then n=$1; shift 2; "$@" && r=pass || r=fail; echo "$n: $r" >> {log}; fi'
    for name, body in {"lava-test-case": shell, "lava-test-raise": "exit 1", "python3": "", "pip": "",
                       "pyvfio": f'case "$1" in repro) printf "{repro_out}"; exit {repro_exit};; esac'}.items():
        path = (venv if name in ("pip", "pyvfio") else bin_) / name
        path.write_text(stub.format(log=log, body=body))
        path.chmod(0o755)
    params = {**d["params"], "CARD_BDF": "0000:01:00.0"}
    script = "set -e\n" + "".join(f"export {k}='{v}'\n" for k, v in params.items()) + \
        "\n".join(d["run"]["steps"]).replace("/opt/pyvfio/venv/bin", str(venv)) + "\n"
    script = script.replace("/tmp/pyvfio-", f"{tmp_path}/pyvfio-")
    p = subprocess.run(["sh", "-c", script], env={"PATH": f"{bin_}:/usr/bin:/bin"}, capture_output=True,
                       text=True, timeout=30)
    return p.returncode, log.read_text().splitlines()


def test_the_lava_definition_reports_and_unbinds_when_a_cell_fails(tmp_path):
    """repro exits 1 (a cell not as expected): under lava-test-shell's `set -e` the
    cells are still reported, as-expected fails, and the card is unbound."""
    code, log = lava_shell(tmp_path, 1, "lava-test-case intx.edu.ioapic.na.ioctl --result fail\\n")
    assert code == 0, log
    assert "lava-test-case intx.edu.ioapic.na.ioctl --result fail" in log
    assert "lava-test-case as-expected --result fail" in log
    assert log.index("pyvfio bind 0000:01:00.0") < log.index("pyvfio unbind 0000:01:00.0")
    assert log.count("pyvfio unbind 0000:01:00.0") == 1 and "unbind: pass" in log


def test_the_lava_definition_unbinds_when_a_step_aborts(tmp_path):
    """A step that fails under `set -e` (here the lines pyvfio printed are not
    lava-test-case's) ends the shell: the card is unbound on the way out."""
    code, log = lava_shell(tmp_path, 2, "garbage\\n")
    assert code != 0 and log.count("pyvfio unbind 0000:01:00.0") == 1, log
