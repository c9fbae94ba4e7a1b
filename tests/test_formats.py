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
    assert re.search(r"^    # intx\.edu\.xive\.na\.ioctl\.nointxmask_0\.vfio_shipped: round trip "
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
        assert re.search(rf"^    # {re.escape(name)}: stall after 1: the kernel's INTx path stalled .*\n"
                         rf"(    # .*\n)*    not ok \d+ {re.escape(name)}$", out, re.M), out
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
    assert main(["report", str(skipped), "--format", "ktap"]) == 4
    assert re.search(r"^    ok 1 \S+ # SKIP no verdict", capsys.readouterr().out, re.M)


@pytest.mark.parametrize("argv, message", [
    (["--format", "junit", "-o", "/nonexistent/x.xml"], "cannot write -o to /nonexistent/x.xml"),
    (["-o", "x.xml"], "-o writes a --format"),
    (["--format", "ktap", "--html", "x.html"], "--format prints one format"),
])
def test_report_format_bad_input_is_one_line(model_json, capsys, argv, message):
    assert main(["report", str(model_json), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyvfio: error: ") and message in err[0], err


def test_repro_trace_and_format_are_one_or_the_other(capsys):
    assert main(["repro", "--trace", "--ic", "xive", "--card", "non-2.3", "--policy", "lazy",
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
    order = [steps.index(s) for s in ("pip install \"$PYVFIO\"", "pyvfio bind \"$CARD_BDF\"",
                                      "--scenario \"$SCENARIO\"", "--format lava > /tmp/pyvfio-cases.sh",
                                      "sh -e /tmp/pyvfio-cases.sh", "pyvfio unbind \"$CARD_BDF\"")]
    assert order == sorted(order)
