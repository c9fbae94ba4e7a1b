"""The seed in one command, end to end on real kernels: `pyvfio repro --lab ARCH
--scenario seed` boots the lab machines, runs the edu card under both policies and
both nointxmask settings, and every cell must match the scenario's expectation and
the model host's prediction.  Then `repro --model --scenario seed` runs the same
machines on the model host through the same pipeline: the same cells (keys), the
same verdicts, and `pyvfio compare` finds no change.  Booted from the host (slow:
one VM per machine and nointxmask value); skipped with the reason only when QEMU
cannot run here."""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import formats_check
from pyvfio.report import formats
from test_lab_vms import BATCH_VMS, CHECKOUT, need_lab

pytestmark = pytest.mark.labhost


@pytest.mark.parametrize("arch", ["ppc64le", "x86_64"])
def test_seed_reproduces_and_the_model_agrees(arch, tmp_path):
    if arch == "x86_64" and os.environ.get("PYVFIO_LAB_FULL") != "1":
        # CI's budget: the x86 kernels' before/after (6.1 lazy, 6.12 unlazy) is run by
        # every in-guest batch already; this end-to-end pass adds four boots
        pytest.skip("the x86_64 seed end to end runs with PYVFIO_LAB_FULL=1 (not in CI: its budget)")
    need_lab(arch)
    out, svg = tmp_path / "seed.json", tmp_path / "seed.svg"
    p = subprocess.run([sys.executable, "-m", "pyvfio", "repro", "--lab", arch, "--scenario", "seed",
                        "--json", str(out), "--svg", str(svg)], cwd=CHECKOUT,
                       capture_output=True, text=True, timeout=1500,
                       env=dict(os.environ, PYVFIO_LAB_VMS=BATCH_VMS))  # two boots at once
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads(out.read_text())
    cells = report["cells"]
    assert report["kind"] == "repro" and report["backend"] == "lab" and not report["failures"]
    assert all(c["match"] and c["model_agrees"] for c in cells), p.stdout
    # progress as each boot ended: cells done out of the total, the last one all of them
    said = re.findall(rf"repro --lab {arch}: (\d+)/(\d+) cell\(s\) done", p.stderr)
    assert len(said) == len(report["boots"]) and said[-1] == (str(len(cells)), str(len(cells))), p.stderr
    assert "left" in p.stderr or len(said) == 1
    # each guest judged its own cells as the host then did: `repro --here` (and `repro
    # BDF` on a machine) names a card's cells by arch and ic, as the scenario does
    assert [b["status"] for b in report["boots"]] == [0] * len(report["boots"]), report["boots"]
    by = {(c["key"]["ic"], c["key"]["kernel"], c["key"]["nointxmask"], c["key"]["policy"], c["key"]["unmask"]): c
          for c in cells if c["key"]["vfio"] == "shipped"}
    prefix = {(c["key"]["ic"], c["key"]["nointxmask"], c["key"]["policy"], c["key"]["unmask"]): c
              for c in cells if c["key"]["vfio"] == "prefix"}
    for c in cells:   # the vfio-pci-core loaded, as /sys/module saw it: the one built, or Debian's
        assert c["vfio"]["rebuilt"] == (c["key"]["vfio"] == "prefix"), c["vfio"]
        assert c["vfio"]["loaded"]["srcversion"] == (c["vfio"]["srcversion"] if c["vfio"]["rebuilt"] else "")
    if arch == "ppc64le":
        # the kernel's own code before 8b9f128947dd, no policy module: the seed again on
        # XIVE, none on XICS (the model: a spurious re-delivery per interrupt there)
        assert set(prefix) == {(ic, 1, "kernel", u) for ic in ("xive", "xics") for u in ("ioctl", "eventfd")}
        for unmask in ("ioctl", "eventfd"):
            assert prefix[("xive", 1, "kernel", unmask)]["verdict"] == "stall after 1"
            assert prefix[("xics", 1, "kernel", unmask)]["verdict"] == "ok"
            assert prefix[("xics", 1, "kernel", unmask)]["predicted"]["text"].startswith("ok, 1.00 spurious")
            assert prefix[("xive", 1, "kernel", unmask)]["unlazy_fix"] is False
        split = subprocess.run([sys.executable, "-m", "pyvfio", "compare", str(out), "--split",
                                "vfio=shipped,prefix"], cwd=CHECKOUT, capture_output=True, text=True, timeout=60)
        assert split.returncode == 1 and "verdict changes: 2" in split.stdout, split.stdout + split.stderr
        assert "xive / nointxmask=1 / kernel / ioctl: ok -> stall after 1" in split.stdout, split.stdout
        for unmask in ("ioctl", "eventfd"):
            assert by[("xive", "6.12", 1, "lazy", unmask)]["verdict"] == "stall after 1"
            assert by[("xive", "6.12", 1, "lazy", unmask)]["counts"]["delivered"] == 1
            for ic, policy in (("xive", "unlazy"), ("xive", "kernel"), ("xics", "lazy"), ("xics", "unlazy")):
                assert by[(ic, "6.12", 1, policy, unmask)]["verdict"] == "ok"
            for ic in ("xive", "xics"):
                assert by[(ic, "6.12", 0, "-", unmask)]["verdict"] == "ok"
    else:
        kernels = {c["key"]["kernel"]: c for c in cells}
        assert set(kernels) == {"6.1", "6.12"}
        assert {c["unlazy_fix"] for c in cells if c["key"]["kernel"] == "6.1"} == {False}
        assert {c["unlazy_fix"] for c in cells if c["key"]["kernel"] == "6.12"} == {True}
        assert all(c["verdict"] == "ok" and c["counts"]["delivered"] == report["loops"] for c in cells)
        # a real vCPU on KVM's IOAPIC (pyvfio/kvm) on both kernels: with the resample
        # irqfd the kernel unmasks (no userspace call), with ioctl/eventfd the VMM once per EOI
        kvm = [c for c in cells if c["key"]["guest"] == "kvm"]
        assert {(c["key"]["kernel"], c["key"]["nointxmask"], c["key"]["unmask"]) for c in kvm} == \
            {(k, n, u) for k in ("6.1", "6.12") for n in (0, 1) for u in ("ioctl", "eventfd", "resample")}
        for c in kvm:
            assert (c["kvm"]["irqchip"], c["kvm"]["unmask"]) == ("ioapic", c["key"]["unmask"]), c["key"]
            calls = 0 if c["key"]["unmask"] == "resample" else c["counts"]["delivered"]
            assert c["kvm"]["userspace_unmask_calls"] == calls, c["key"]
            assert c["host_interrupts"] == c["counts"]["delivered"], c["key"]
        assert not any(c["key"]["unmask"] == "resample" for c in cells if c["key"]["guest"] == "toy")
    ET.parse(svg)  # the picture is well-formed
    # the lab result in every format, read by the kernel's kunit_parser, kcidb-io and
    # junitparser (seconds): what KernelCI, LAVA and CI servers would take from it
    lab_formats = formats_check.check_all(formats.from_path(str(out)), tmp_path)
    assert lab_formats["ktap"].counts.failed == sum(c["outcome"]["state"] == "stall" for c in cells)

    # the model host, the same scenario, the same pipeline
    mout, msvg = tmp_path / "model.json", tmp_path / "model.svg"
    m = subprocess.run([sys.executable, "-m", "pyvfio", "repro", "--model", "--scenario", "seed",
                        "--json", str(mout), "--svg", str(msvg)], cwd=CHECKOUT,
                       capture_output=True, text=True, timeout=300)
    assert m.returncode == 0, m.stdout + m.stderr
    model = json.loads(mout.read_text())
    assert model["kind"] == "repro" and model["backend"] == "model"
    same_machine = lambda k: {a: v for a, v in k.items() if a != "engine"}  # noqa: E731  (model: python)
    mcells = {tuple(same_machine(c["key"]).items()): c for c in model["cells"] if c["key"]["arch"] == arch}
    assert set(mcells) == {tuple(same_machine(c["key"]).items()) for c in cells}
    for c in cells:
        mc = mcells[tuple(same_machine(c["key"]).items())]
        assert (mc["outcome"]["state"], mc["outcome"]["stalled_after"]) == \
            (c["outcome"]["state"], c["outcome"]["stalled_after"]), c["key"]
    # the model's seed has both architectures' machines, this lab run one
    cmp = subprocess.run([sys.executable, "-m", "pyvfio", "compare", str(out), str(mout), "--allow-missing"],
                         cwd=CHECKOUT,
                         capture_output=True, text=True, timeout=60)
    assert cmp.returncode == 0 and "verdict changes: none" in cmp.stdout, cmp.stdout + cmp.stderr
    ET.parse(msvg)


@pytest.mark.parametrize("arch, kernel, scenario", [("ppc64le", "6.12-64k", "seed"), ("x86_64", None, "rt")])
def test_the_rt_and_64k_kernels_run_as_the_model_predicts(arch, kernel, scenario, tmp_path):
    """The seed on Debian's 64 KiB-page POWER kernel, and scenarios/rt.toml: PREEMPT_RT
    (6.12-rt) beside 6.12 on the same card in one run, every cell as the model predicts
    with forced threading (docs/preempt-rt.md).  Opt-in: CI's budget."""
    if os.environ.get("PYVFIO_LAB_FULL") != "1":
        pytest.skip(f"{scenario} on {kernel or arch} runs with PYVFIO_LAB_FULL=1 (not in CI: its budget)")
    need_lab(arch)
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "pyvfio", "repro", "--lab", arch, "--scenario", scenario,
                        *(["--kernel", kernel] if kernel else []), "--json", str(out)], cwd=CHECKOUT,
                       capture_output=True, text=True, timeout=2400)
    assert p.returncode == 0, p.stdout + p.stderr
    cells = json.loads(out.read_text())["cells"]
    assert cells and all(c["match"] and c["model_agrees"] for c in cells), p.stdout
    if kernel:
        assert {c["key"]["kernel"] for c in cells} == {kernel}
        assert {c["verdict"] for c in cells if c["key"]["ic"] == "xive" and c["key"]["nointxmask"] == 1
                and (c["key"]["policy"] == "lazy" or c["key"]["vfio"] == "prefix")} == {"stall after 1"}
    else:
        assert {c["key"]["kernel"]: c["threaded"] for c in cells} == {"6.12-rt": True, "6.12": False}
        assert all(c["verdict"] == "ok" for c in cells)
