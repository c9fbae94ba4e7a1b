"""Scenario files for real kernels, expectations and the model's predictions."""

import pathlib

import pytest

from pyvfio.checkout import CHECKOUT
from pyvfio import verdict
from pyvfio.errors import UsageError
from pyvfio.repro import machines, predict
from pyvfio.repro.scenario import NA, Cell, load


def write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


def test_the_shipped_seed_parses():
    plan = load("seed")
    assert plan.loops == 100 and plan.run["profile"] == "edu"
    assert [m.key for m in plan.lab["ppc64le"]] == [{"arch": "ppc64le", "kernel": "6.12", "ic": "xive"},
                                                    {"arch": "ppc64le", "kernel": "6.12", "ic": "xics"}]
    x86 = plan.lab["x86_64"]
    assert [(m.ic, m.card, m.unlazy_fix) for m in x86] == [("ioapic", "2.3", False), ("ioapic", "2.3", True)]
    assert [m.key["arch"] for m in plan.machines()] == ["ppc64le"] * 2 + ["x86_64"] * 2
    key = {"ic": "xive", "nointxmask": 1, "policy": "lazy", "unmask": "ioctl"}
    assert plan.expected(key) == verdict.Verdict("stall", stalled_after=1, stalls=1)
    assert plan.expected({**key, "ic": "xics"}) == verdict.Verdict("ok")
    assert plan.needs_policy_module()


def test_the_model_knows_every_lab_kernel_and_card():
    """machines.py is the one place for what a boot measures and the model is told."""
    from pyvfio.lab.config import ARCHES, CARDS
    assert set(machines.LAB_UNLAZY_FIX) == {k for a in ARCHES.values() for k in a["kernels"]}
    assert set(machines.LAB_CARD_KIND) == set(CARDS)


def test_policy_collapses_where_vfio_masks_at_the_card():
    plan = load("seed")
    cells = plan.cells(masks_at_device=True, x86=False)    # POWER: no kvm cell
    assert Cell(nointxmask=0, policy=NA, unmask="ioctl", engine="c", access="mmap") in cells
    assert not any(c.nointxmask == 0 and c.policy != NA for c in cells)
    assert len(cells) == 2 + 6 + 2      # + the prefix, with the kernel's own policy
    assert len(plan.cells(masks_at_device=False, x86=False)) == 12 + 4  # DisINTx-: every policy counts


def test_vfio_axis_prefix_cells_have_no_policy_module_and_collapse_where_the_fix_is_moot():
    plan = load("seed")
    assert plan.axes["vfio"] == ["shipped", "prefix"]
    cells = plan.cells(masks_at_device=True)
    prefix = [c for c in cells if c.vfio == "prefix"]
    # only controller masking reaches the code 8b9f128947dd changes; a rebuilt module is its own policy
    assert {(c.nointxmask, c.policy) for c in prefix} == {(1, "kernel")}
    # a kernel shipped without the fix (x86 6.1): its prefix is the shipped module
    assert not [c for c in plan.cells(masks_at_device=True, kernel_fix=False) if c.vfio == "prefix"]
    key = {"ic": "xive", "nointxmask": 1, "policy": "kernel", "vfio": "prefix", "unmask": "ioctl"}
    assert plan.expected(key) == verdict.Verdict("stall", stalled_after=1, stalls=1)
    assert plan.expected({**key, "ic": "xics"}) == verdict.Verdict("ok")


def test_lab_boots_one_per_nointxmask_and_vfio_variant_policy_module_only_where_used():
    from pyvfio.repro.lab import boots
    got = [(m.ic, nim, vfio, module) for m, nim, vfio, module in boots(load("seed"), "ppc64le")]
    assert got == [("xive", 0, "shipped", False), ("xive", 1, "shipped", True), ("xive", 1, "prefix", False),
                   ("xics", 0, "shipped", False), ("xics", 1, "shipped", True), ("xics", 1, "prefix", False)]
    x86 = [(m.kernel, nim, vfio) for m, nim, vfio, _ in boots(load("seed"), "x86_64")]
    assert ("6.1", 1, "prefix") not in x86 and ("6.12", 1, "prefix") in x86


def test_vfio_patch_values_are_named_relative_to_the_scenario(tmp_path):
    fixture = pathlib.Path(__file__).parent / "fixtures" / "vfio-unlazy-by-hand.patch"
    (tmp_path / "fix.patch").write_bytes(fixture.read_bytes())
    s = tmp_path / "s.toml"
    s.write_text('[matrix]\nvfio = ["shipped", "prefix+patch:fix.patch"]\n')
    plan = load(str(s))
    assert plan.vfio_specs["prefix+patch:fix.patch"] == f"prefix+patch:{tmp_path / 'fix.patch'}"
    s.write_text('[matrix]\nvfio = ["shipped", "patch:missing.patch"]\n')
    with pytest.raises(UsageError, match=r"s.toml:2: cannot read the patch .*missing.patch"):
        load(str(s))
    s.write_text('[matrix]\nvfio = "sloppy"\n')
    with pytest.raises(UsageError, match=r"s.toml:2: unknown vfio-pci variant 'sloppy'"):
        load(str(s))


@pytest.mark.parametrize("text,msg", [
    ("loops = 10\n[matrix]\npolicy = ['lazy', 'sloppy']\n", r"s.toml:3: unknown policy value 'sloppy'"),
    ("loops = 10\n\n[matrix]\nnointxmask = [0, 2]\n", r"s.toml:4: unknown nointxmask value 2"),
    ("[run]\nwatchdog = 5\n", r"s.toml:2: unknown key 'watchdog' in \[run\]"),
    ("colour = 'red'\n", r"s.toml:1: unknown key 'colour'"),
    ("loops = 0\n", r"loops must be a whole number"),
    ("[lab]\nppc64le = [{ kernel = '6.12', cpu = 'power9' }]\n", r"unknown key\(s\) cpu"),
    ("[lab]\ncard = 'ne2000'\n", r"unknown lab card 'ne2000'"),
    ("[[expect]]\nwhen = { colour = 'red' }\nverdict = 'ok'\n", r"unknown key 'colour' in when"),
    ("loops = 10\n[matrix\n", r"not valid TOML: .*line 2"),
])
def test_bad_files_name_the_key_and_line(tmp_path, text, msg):
    with pytest.raises(UsageError, match=msg):
        load(write(tmp_path, text))


def test_missing_file():
    with pytest.raises(UsageError, match="cannot read scenario file"):
        load("/nonexistent/x.toml")


@pytest.mark.parametrize("key,fix,want", [
    ({"ic": "xive", "nointxmask": 1, "policy": "lazy", "unmask": "ioctl"}, True, "stall after 1"),
    ({"ic": "xive", "nointxmask": 1, "policy": "kernel", "unmask": "ioctl"}, True, "ok"),
    ({"ic": "xive", "nointxmask": 1, "policy": "kernel", "unmask": "eventfd"}, False, "stall after 1"),
    ({"ic": "xics", "nointxmask": 1, "policy": "lazy", "unmask": "ioctl"}, True, "ok, 1.00 spurious/irq"),
    ({"ic": "ioapic", "nointxmask": 0, "policy": NA, "unmask": "ioctl"}, False, "ok"),
])
def test_model_predictions(key, fix, want):
    assert predict.predict(key, 20, masks_at_device=True, unlazy_fix=fix).text == want


def test_no_prediction_without_the_facts():
    key = {"nointxmask": 1, "policy": "kernel", "unmask": "ioctl"}
    assert predict.predict(key, 20, True, None, chip="XIVE-IRQ") is None          # fix unknown
    assert predict.predict({**key, "policy": "lazy"}, 20, True, None, chip="PCI-MSI") is None
    assert predict.predict({**key, "policy": "lazy"}, 20, True, None, chip="XIVE-IRQ").essence() == ("stall", 1)


def test_verdicts_match_on_what_a_real_run_can_see():
    ok, stall1 = verdict.expectation("ok"), verdict.expectation("stall after 1")
    assert verdict.Verdict("ok", spurious_per_irq=1.0).matches(ok)
    assert verdict.judge([(1, True)] * 3).matches(stall1)          # recovered: still the stall
    assert not verdict.judge([(2, False)]).matches(stall1)
    assert not verdict.Verdict("ok").matches(stall1)
    assert verdict.Verdict("ok").matches(None) is None
    assert verdict.expectation("lost 3") == verdict.Verdict("lost", lost=3)
    for bad in ("stall after one", "fine", "stall after 1, recovered 2x", 5):
        with pytest.raises(ValueError):
            verdict.expectation(bad)


def test_recovered_only_when_every_stall_was():
    every = verdict.judge([(1, True), (2, True)])
    assert (every.text, every.cls) == ("stall after 1, recovered 2x", "recovered")
    last_left = verdict.judge([(1, True), (2, False)])       # the run ended on a dead line
    assert (last_left.text, last_left.cls) == ("stall after 1", "stall")
    assert last_left.recovered == 1 and last_left.stalls == 2
    assert verdict.judge([], lost=2).text == "lost 2" and verdict.failed("EBUSY").text == "error: EBUSY"
    for v in (every, last_left, verdict.Verdict("ok", spurious_per_irq=0.5), verdict.failed("x")):
        assert verdict.Verdict.from_json(v.to_json()) == v


def test_a_run_json_without_outcome_is_judged_by_the_same_rule():
    """A result file written before verdicts were data: its stalls and counts."""
    old = {"verdict": "stall after 1", "counts": {"lost": 0},
           "stalls": [{"after_delivered": 1, "recovered": True}, {"after_delivered": 2, "recovered": False}]}
    assert verdict.of_run_json(old) == verdict.judge([(1, True), (2, False)])
    assert verdict.of_run_json({"verdict": "error: gone", "error": "gone"}).state == "error"
    assert verdict.of_run_json({"verdict": "ok"}) is None


def test_policy_module_without_kernel_headers_is_a_clear_error():
    from pyvfio.errors import PyvfioError
    from pyvfio.host import policy_module as policy
    if policy.available():
        pytest.skip("pyvfio_policy is loaded on this host")
    with pytest.raises(PyvfioError, match=r"needs the kernel headers of 0\.0-none.*linux-headers-0\.0-none"):
        policy.ensure_module("0.0-none")


def test_the_card_survey_parses():
    plan = load("card")
    assert plan.loops == 10000 and plan.run["threshold_p99_us"] == 1000.0
    assert not plan.needs_policy_module()
    assert plan.lab_card == "pci-serial" and sorted(plan.lab) == ["ppc64le", "x86_64"]
    assert len(plan.cells(masks_at_device=True)) == 2 * 2 + 2 * 2


def test_the_irq_scenario_runs_intx_and_msi_on_one_card_in_one_boot():
    plan = load("irq")
    assert plan.lab_card == "edu" and sorted(plan.lab) == ["ppc64le", "x86_64"]
    assert plan.axes["nointxmask"] == [0]       # one boot per machine
    # an MSI cell has no line: no policy, no unmask
    assert plan.cells(masks_at_device=True) == [
        Cell(nointxmask=0, policy=NA, unmask="ioctl", engine="c", access="mmap", irq="intx"),
        Cell(nointxmask=0, policy=NA, unmask=NA, engine="c", access="mmap", irq="msi")]


def test_the_irq_axis_defaults_to_intx_and_is_checked(tmp_path):
    assert {c.irq for c in load("seed").cells(masks_at_device=False)} == {"intx"}
    with pytest.raises(UsageError, match=r"s.toml:2: unknown irq value 'msi-x'.*intx, msi, msix"):
        load(write(tmp_path, "[matrix]\nirq = ['intx', 'msi-x']\n"))


def test_the_model_runs_no_msi_cell_and_predicts_none():
    from pyvfio.repro import model
    plan = load("irq")
    assert {key["irq"] for _, _, key in model.planned(plan)} == {"intx"}
    key = {"arch": "x86_64", "ic": "ioapic", "nointxmask": 0, "policy": NA, "unmask": NA, "irq": "msi"}
    assert predict.predict(key, 10, True, True) is None


def _cell(irq, unmask, p50, p99, rate, arch="x86_64"):
    return {"key": {"arch": arch, "nointxmask": 0, "policy": NA, "unmask": unmask, "irq": irq},
            "verdict": "ok", "counts": {"raised": 10, "delivered": 10, "lost": 0},
            "latency": {"round_trip": {"count": 10, "p50_us": p50, "p99_us": p99}}, "throughput_per_s": rate}


def test_the_table_sets_each_msi_cell_against_intx_on_the_same_machine():
    from pyvfio.report import summary
    report = {"tool": "pyvfio", "kind": "repro", "backend": "lab", "cells": [
        _cell("intx", "ioctl", 40.0, 80.0, 20000), _cell("intx", "eventfd", 50.0, 90.0, 18000),
        _cell("msi", NA, 20.0, 60.0, 40000),
        _cell("intx", "ioctl", 100.0, 200.0, 8000, "ppc64le"), _cell("msi", NA, 75.0, 300.0, 10000, "ppc64le")]}
    lines = summary.table(report).splitlines()
    assert lines[-3:] == [
        "msi against intx (ioctl) on x86_64: p50 40.0 -> 20.0 (-50%) us, p99 80.0 -> 60.0 (-25%) us, "
        "per s 20000 -> 40000 (+100%)",
        "msi against intx (eventfd) on x86_64: p50 50.0 -> 20.0 (-60%) us, p99 90.0 -> 60.0 (-33%) us, "
        "per s 18000 -> 40000 (+122%)",
        "msi against intx (ioctl) on ppc64le: p50 100.0 -> 75.0 (-25%) us, p99 200.0 -> 300.0 (+50%) us, "
        "per s 8000 -> 10000 (+25%)"]
    assert summary.irq_differences(report["cells"][:2]) == []   # no MSI: no such lines


def test_reload_is_refused_while_another_device_uses_vfio_pci(tmp_path):
    """A running VM's passthrough device would be torn away: refused before any write."""
    from fixtures.fakehost import FakeHost
    from pyvfio.errors import RefusedError
    from pyvfio.repro.cells import reload_vfio_pci
    h = FakeHost(tmp_path)
    for bdf in ("0000:01:00.0", "0000:02:00.0"):
        h.add_device(bdf, driver="vfio-pci")
    with pytest.raises(RefusedError, match="would tear 0000:02:00.0 away.*--force"):
        reload_vfio_pci("0000:01:00.0", 1, root=str(tmp_path))


def test_a_lab_guest_names_patch_variants_without_reading_them(tmp_path):
    """repro --lab copies the scenario into the checkout for the guest: a patch named
    relative to the original is not there, and the guest needs only its spelling."""
    s = tmp_path / "s.toml"
    s.write_text('[matrix]\nvfio = ["shipped", "prefix+patch:elsewhere/fix.patch"]\n')
    plan = load(str(s), read_patches=False)
    assert plan.axes["vfio"] == ["shipped", "prefix+patch:elsewhere/fix.patch"]
    with pytest.raises(UsageError, match="cannot read the patch"):
        load(str(s))


def test_the_guest_axis_defaults_to_toy_and_kvm_cells_are_x86_intx_only(tmp_path):
    assert {c.guest for c in load("card").cells(masks_at_device=True)} == {"toy"}
    plan = load(write(tmp_path, "[matrix]\nnointxmask = 0\nunmask = ['ioctl', 'resample']\n"
                                "guest = ['toy', 'kvm']\nirq = ['intx', 'msi']\nengine = ['c', 'python']\n"))
    cells = plan.cells(masks_at_device=True)
    # the toy guest has no resampler; a kvm cell drives INTx, its vCPU is the engine
    assert [(c.guest, c.unmask, c.engine) for c in cells if c.irq == "intx"] == [
        ("toy", "ioctl", "c"), ("kvm", "ioctl", "c"), ("toy", "ioctl", "python"),
        ("kvm", "resample", "c")]
    assert not any(c.guest == "kvm" and c.irq != "intx" for c in cells)
    assert {c.guest for c in plan.cells(masks_at_device=True, x86=False)} == {"toy"}  # ppc64le
    with pytest.raises(UsageError, match=r"s.toml:2: unknown guest value 'qemu'.*toy, kvm"):
        load(write(tmp_path, "[matrix]\nguest = ['qemu']\n"))


def test_the_seed_has_kvm_cells_on_x86_only():
    from pyvfio.repro import model
    keys = [k for _, _, k in model.planned(load("seed"))]
    kvm = [k for k in keys if k["guest"] == "kvm"]
    assert {k["arch"] for k in kvm} == {"x86_64"} and {k["kernel"] for k in kvm} == {"6.1", "6.12"}
    assert {k["unmask"] for k in kvm} == {"ioctl", "eventfd", "resample"}
    assert not any(k["unmask"] == "resample" for k in keys if k["guest"] == "toy")


def test_old_report_cells_read_as_the_toy_guest():
    from pyvfio.report import cells as C
    report = {"tool": "pyvfio", "kind": "repro", "cells": [
        {"key": {"nointxmask": 0, "unmask": "ioctl"}, "verdict": "ok"}]}
    assert C.cells(report)[0]["key"]["guest"] == "toy"


@pytest.mark.parametrize("body,needle", [
    # issue 22: each of these was accepted and the expectation silently dropped
    ('[[expect]]\nwhen = { ic = "xiv" }\nverdict = "ok"\n', 'when ic = "xiv" matches no cell: ic is one of "xive"'),
    ('[[expect]]\nwhen = { policy = "lazy" }\nverdict = "ok"\n', 'when policy = "lazy" matches no cell'),
    ('[[expect]]\nwhen = { nointxmask = true }\nverdict = "ok"\n', "when nointxmask = true matches no cell"),
    ('[[expect]]\nwhen = { nointxmask = 2 }\nverdict = "ok"\n', "when nointxmask = 2 matches no cell"),
    ('[[expect]]\nwhen = { arch = 1 }\nverdict = "ok"\n', "when arch = 1 matches no cell"),
    # the bounds run enforces
    ('[run]\nwatchdog_ms = 600001\n', "[run] watchdog_ms is 600001: use 0 to 600000 ms"),
    ('[run]\nthreshold_p99_us = nan\n', "[run] threshold_p99_us is nan: use a finite number"),
    ('[run]\nthreshold_p99_us = -1.0\n', "[run] threshold_p99_us is -1.0"),
    ('loops = 10000000000\n', "loops must be a whole number in range"),
    # found by tests/test_properties.py: a TypeError traceback, and a machine with ic = []
    ('[lab]\ncard = []\n', "unknown lab card []"),
    ('[lab]\nppc64le = [{ kernel = "6.12", ic = [] }]\n', "[lab] ppc64le: ic = [] is not a name"),
])
def test_values_no_cell_can_have_and_numbers_run_refuses_are_errors(tmp_path, body, needle):
    f = tmp_path / "s.toml"
    f.write_text(body + '[matrix]\npolicy = ["kernel"]\n[model]\nic = ["xive"]\n')
    with pytest.raises(UsageError) as exc:
        load(str(f))
    assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_the_line_finder_knows_escapes_and_multi_line_strings(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[run]\nprofile = """a\\"""\n[loops]\nx"""\nwatchdog_ms = -1\n')
    with pytest.raises(UsageError, match=r"s.toml:5: \[run\] watchdog_ms is -1"):
        load(str(f))


@pytest.mark.parametrize("edit, words", [
    (("policy = [\"kernel\", \"lazy\", \"unlazy\"]", "policy = [\"lazy\", \"kernel\", \"lazy\"]"),
     ':23: policy lists "lazy" twice'),
    (("nointxmask = [0, 1]", "nointxmask = [1, 1]"), ":22: nointxmask lists 1 twice"),
    (("vfio = [\"shipped\", \"prefix\"]", "vfio = [\"shipped\", \"shipped\"]"), ':27: vfio lists "shipped" twice'),
    (('{ kernel = "6.12", ic = "xics" }', '{ kernel = "6.12", ic = "xive" }'),
     ':32: [lab] ppc64le lists the machine { kernel = "6.12", ic = "xive" } twice'),
])
def test_a_value_or_machine_listed_twice_is_refused(tmp_path, edit, words):
    # each was accepted (exit 0), and every cell of it ran twice: two cells of one
    # key in the result, which compare and report --baseline refuse
    text = (CHECKOUT / "pyvfio/scenarios/seed.toml").read_text()
    assert edit[0] in text
    path = write(tmp_path, text.replace(edit[0], edit[1]))
    with pytest.raises(UsageError, match="list each value once") as exc:
        load(path)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_a_model_controller_listed_twice_is_refused(tmp_path):
    path = write(tmp_path, '[model]\nic = ["xive", "xics", "xive"]\ncard = ["2.3"]\n')
    with pytest.raises(UsageError, match=r':2: \[model\] ic lists "xive" twice'):
        load(path)
