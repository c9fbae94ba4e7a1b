"""repro BDF stopped mid-scenario (pyvfio/repro/cells.py run_cells): the cells
before the stop are kept, the one cut short is dropped, and vfio-pci's nointxmask
is put back.  The kernel's side (modprobe, the card) is faked here; the machine
tier does it for real (tests/machines/test_x86_64_faults.py)."""
import os
import subprocess

import pytest

from pyvfio.host import interrupts, system
from pyvfio.repro import cells as C
from pyvfio.repro.scenario import load

from fixtures.fakehost import FakeHost

TWO_PER_VALUE = """loops = 10
[run]
profile = "edu"
[matrix]
nointxmask = [0, 1]
policy = ["kernel"]
unmask = ["ioctl", "eventfd"]
engine = ["c"]
guest = ["toy"]
[[expect]]
verdict = "ok"
"""


@pytest.fixture
def host(monkeypatch, tmp_path):
    """A machine with vfio-pci loaded nointxmask=N; run_cell and the reload recorded."""
    f = tmp_path / "s.toml"
    f.write_text(TWO_PER_VALUE)
    state = {"loaded": False, "reloads": [], "ran": [], "stop_at": None}
    monkeypatch.setattr(system, "probe", lambda root="/": system.System(
        kernel="6.12.0", machine="x86_64", vfio_pci_loaded=True, nointxmask=state["loaded"],
        dev_vfio=True, vfio_container=True, iommu_groups=1))
    monkeypatch.setattr(C, "masks_at_device", lambda bdf, profile=None: True)
    monkeypatch.setattr(interrupts, "intx_line", lambda bdf: None)

    def reload(bdf, nim, force=False, root="/"):
        state["reloads"].append(nim)
        state["loaded"] = bool(nim)
    monkeypatch.setattr(C, "reload_vfio_pci", reload)

    def run_cell(bdf, cell, plan, status=None):
        if len(state["ran"]) == state["stop_at"]:
            raise state["how"]
        state["ran"].append(cell)
        return {"verdict": "ok"}
    monkeypatch.setattr(C, "run_cell", run_cell)
    state["plan"] = load(str(f))
    return state


def test_every_cell_runs_and_the_parameter_is_restored(host):
    results, facts = C.run_cells("0000:00:03.0", host["plan"])
    assert len(results) == 4 and "stopped" not in facts
    assert host["reloads"] == [1, 0] and host["loaded"] is False


@pytest.mark.parametrize("how, exit_code, why", [
    (KeyboardInterrupt(), 130, "interrupted"),
    (C.CellStopped("the kernel asked for 0000:00:03.0 back"), 7, "the kernel asked for 0000:00:03.0 back")])
def test_a_stop_keeps_the_cells_before_it_and_restores_the_parameter(host, how, exit_code, why):
    host["stop_at"], host["how"] = 3, how     # the second cell of nointxmask=1
    results, facts = C.run_cells("0000:00:03.0", host["plan"])
    assert len(results) == 3
    assert facts["stopped"] == {"why": why, "exit": exit_code, "planned": 4,
                                "during": str(host["plan"].cells(True, x86=True)[3])}
    assert host["reloads"] == [1, 0] and host["loaded"] is False


def test_a_stop_before_the_first_cell_keeps_nothing_and_reloads_nothing(host):
    host["stop_at"], host["how"] = 0, KeyboardInterrupt()
    results, facts = C.run_cells("0000:00:03.0", host["plan"])
    assert results == [] and facts["stopped"]["during"].startswith("Cell(nointxmask=0")
    assert host["reloads"] == []


def _sysfs(root, bound):
    h = FakeHost(root)
    h.add_driver("vfio-pci")
    for bdf in bound:
        h.add_device(bdf, driver="vfio-pci")
        h.write(f"sys/bus/pci/devices/{bdf}/driver_override", "vfio-pci\n")
    return root / "sys/bus/pci/drivers/vfio-pci"


def _kernel(monkeypatch, root, drv):
    """unbind, modprobe -r (unbinds every device), drivers_probe (driver_override)."""
    from pyvfio.host import writes

    def write(path, value):
        dev = root / "sys/bus/pci/devices" / value
        if path.endswith("/unbind"):
            os.unlink(drv / value)
            os.unlink(dev / "driver")
        elif path.endswith("/drivers_probe") and drv.exists():
            os.symlink(dev, drv / value)
            os.symlink(drv, dev / "driver")

    def run(argv, hint, timeout=300):
        if argv[:2] == ["modprobe", "-r"]:
            for link in [p for p in drv.iterdir() if p.is_symlink()]:     # not bind, unbind...
                os.unlink(root / "sys/bus/pci/devices" / link.name / "driver")
                os.unlink(link)
        return subprocess.CompletedProcess(argv, 0, "", "")
    monkeypatch.setattr(writes, "write", write)
    monkeypatch.setattr(writes, "run", run)


def test_a_forced_reload_rebinds_every_device_the_module_had(tmp_path, monkeypatch):
    """--force with a group mate bound to vfio-pci: modprobe -r unbinds it too, and
    it is given back, not left driverless."""
    drv = _sysfs(tmp_path, ["0000:01:00.0", "0000:01:01.0"])
    _kernel(monkeypatch, tmp_path, drv)
    C.reload_vfio_pci("0000:01:00.0", 1, force=True, root=str(tmp_path))
    assert sorted(p.name for p in drv.iterdir() if p.is_symlink()) == ["0000:01:00.0", "0000:01:01.0"]


def test_a_card_gone_is_not_rebound_and_the_module_is_reloaded(tmp_path, monkeypatch):
    drv = _sysfs(tmp_path, ["0000:01:01.0"])
    _kernel(monkeypatch, tmp_path, drv)
    C.reload_vfio_pci("0000:01:00.0", 0, force=True, root=str(tmp_path))
    assert [p.name for p in drv.iterdir() if p.is_symlink()] == ["0000:01:01.0"]


def test_a_signal_during_the_restoring_reload_waits_for_it_and_keeps_every_cell(host, monkeypatch):
    """Ctrl-C while vfio-pci is being reloaded back: the reload finishes (no module
    left half-loaded), then the scenario counts as interrupted with all its cells."""
    import signal

    def reload(bdf, nim, force=False, root="/"):
        if nim == 0:
            os.kill(os.getpid(), signal.SIGINT)   # delivered here, in the main thread
        host["reloads"].append(nim)
        host["loaded"] = bool(nim)
    monkeypatch.setattr(C, "reload_vfio_pci", reload)
    results, facts = C.run_cells("0000:00:03.0", host["plan"])
    assert len(results) == 4 and host["reloads"] == [1, 0] and host["loaded"] is False
    assert facts["stopped"] == {"why": "interrupted", "exit": 130, "during": None, "planned": 4}


def _cpu_s(pid):
    """The process's user + system CPU time so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_repro_model_stops_on_ctrl_c_with_the_cells_measured(tmp_path):
    """Ctrl-C mid-run ends `repro --model` (it used to end the current cell only and
    carry on to exit 0): exit 130 within a second, the cells measured before it in
    the JSON with `stopped`, the cell it cut short dropped."""
    import json
    import signal
    import sys
    import time

    out = tmp_path / "partial.json"
    p = subprocess.Popen([sys.executable, "-m", "pyvfio", "repro", "--model", "-l", "5000", "--json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # under way: past the imports (~0.4 s of CPU) and into the cells, whatever the load
        deadline = time.monotonic() + 30
        while _cpu_s(p.pid) < 0.9 and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, "the run ended before the signal: raise -l"
        p.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        stdout, stderr = p.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130 and took < 1.0, (p.returncode, took, stderr)
    assert "Traceback" not in stderr
    report = json.loads(out.read_text())
    assert report["stopped"]["why"] == "interrupted" and report["stopped"]["planned"] == 18
    assert 1 <= len(report["cells"]) < 18
    assert all(c["interrupted"] is False for c in report["cells"])   # no short cell among them
    assert f"{len(report['cells'])} of 18 cells measured, saved in {out}" in stderr


def test_repro_lab_keeps_the_boots_that_finished_on_ctrl_c(monkeypatch, tmp_path):
    """repro --lab: Ctrl-C while the second boot runs ends it (its stop is set) and
    starts no other; the first boot's cells come back with `stopped` (they used to
    be dropped with the exception)."""
    import json
    import signal
    import threading

    from pyvfio.lab.errors import LabError
    from pyvfio.repro import lab

    plan = load("seed")
    started = []
    monkeypatch.setattr(lab.session, "CHECKOUT", tmp_path)
    monkeypatch.setattr(lab.session, "vm_slots", lambda: 1)

    def boot(cfg, stop=None, echo=None):
        started.append(cfg)
        out = cfg.command[cfg.command.index("--json") + 1]
        if len(started) == 1:
            with open(out, "w") as f:
                json.dump({"cells": [{"key": {"policy": "lazy"}, "verdict": "ok"}], "lab": {}}, f)
            return 0, None
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        assert stop.wait(5), "the stop was not set"
        raise LabError("guest", "stopped: the run was interrupted, QEMU was ended")
    monkeypatch.setattr(lab.session, "run", boot)
    cells, boots, failures, stopped = lab.run_lab(plan, "x86_64", echo=lambda line: None)
    assert len(started) == 2 < len(list(lab.boots(plan, "x86_64")))   # no boot after the stop
    assert len(cells) == 1 and len(boots) == 1 and failures == []
    assert stopped["why"] == "interrupted" and stopped["exit"] == 130 and "x86_64" in stopped["during"]
