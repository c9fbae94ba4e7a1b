"""pyvfio fleet on the lab machines: a labgrid coordinator and exporter on 127.0.0.1,
the x86_64 6.12 machine and the ppc64le XIVE machine (tests/machines/conftest.py,
booted once per session and shared with the machines' own tests) as two places,
and one `pyvfio fleet run --scenario seed` across both: pyvfio installed through
labgrid's SSHDriver (pyvfio.deploy), the seed run on each machine's edu card through
vfio-pci, the results fetched and compared.  The same run is asserted on
(results, the lazy XIVE stall, none on x86, the combined verdict, every place
released, the HTML page in Chromium); the refusal, the dead machine and the killed
run are cheap: a second user's acquire, a place whose SSH port has nothing behind
it, and a one-cell scenario.

Both machines at once need two of the lab's VM slots: this module asks for two
(PYVFIO_LAB_VMS=2), which the lab's flock slots still bound machine-wide."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from pyvfio.cli import main
from pyvfio.fleet import local, places
from pyvfio.fleet.local import free_port
from pyvfio.errors import EXIT

pytestmark = pytest.mark.labhost

ONE_CELL = """
loops = 50
[run]
profile = "edu"
watchdog_ms = 300
[matrix]
nointxmask = [0]
unmask = ["ioctl"]
engine = ["c"]
access = ["mmap"]
[lab]
card = "edu"
"""
PLACES = {"x86": {"lab": "machines", "arch": "x86_64", "kernel": "6_12", "ic": "ioapic"},
          "ppc": {"lab": "machines", "arch": "ppc64le", "kernel": "6_12", "ic": "xive"}}
STATE = {}
LGC = os.path.join(os.path.dirname(sys.executable), "labgrid-client")


def _card(m):
    """The machine's edu card on the root bus (not one behind the bridge)."""
    c = next(c for c in m.cards if c["card"] == "edu" and not c.get("bridge"))
    return {"name": "edu0", "bdf": c["bdf"], "profile": c.get("profile") or "edu", "kind": "2.3",
            "description": f"QEMU edu on {m.arch}"}


@pytest.fixture(scope="module")
def _state(tmp_path_factory):
    STATE["dir"] = tmp_path_factory.mktemp("fleet-machines")
    yield STATE
    if STATE.get("lab"):
        STATE["lab"].stop()
    STATE.clear()


@pytest.fixture
def fleet_lab(_state, monkeypatch, request):
    """(coordinator address, {place: machine}, folder): both machines up, exported."""
    monkeypatch.setenv("PYVFIO_LAB_VMS", "2")    # the two machines at once
    x86, ppc = request.getfixturevalue("machine_x86"), request.getfixturevalue("machine_ppc")
    if "lab" not in _state:
        lab = local.LocalLab(_state["dir"] / "labgrid").start()
        _state["lab"] = lab
        lab.export("lab", {name: local.Exported(port=m.ssh_port, username=m.user, address=m.ssh_host,
                                                cards=[_card(m)])
                           for name, m in (("x86", x86), ("ppc", ppc))}
                   | {"down": local.Exported(port=free_port(), cards=[_card(x86)])})
        for name, tags in PLACES.items():
            places.create_place(lab.address, name, f"lab/{name}/*/*", tags)
        places.create_place(lab.address, "down", "lab/down/*/*", {"lab": "down"})
        _state["key"] = x86.key
    return _state["lab"].address, {"x86": x86, "ppc": ppc}, _state["dir"]


def nothing_held(addr):
    ps, res = places.snapshot(addr)
    return {p: i["acquired"] for p, i in ps.items() if i["acquired"]} == {} and res == []


def fleet(addr, out, *extra):
    return main(["fleet", "run", "--coordinator", addr, "--out", str(out), "--key", STATE["key"], *extra])


@pytest.fixture
def seed_run(fleet_lab):
    """The one fleet run of the seed across both machines (against the model's seed)."""
    addr, machines, d = fleet_lab
    if "seed" not in STATE:
        base = d / "model-seed.json"
        assert main(["repro", "--model", "--scenario", "seed", "--json", str(base)]) == 0
        t0 = time.monotonic()
        rc = fleet(addr, d / "seed", "--tag", "lab=machines", "--scenario", "seed", "--baseline", str(base),
                   "--timeout", "1500")
        STATE["seed"] = (rc, json.loads((d / "seed" / "fleet.json").read_text()), d / "seed",
                         round(time.monotonic() - t0, 1))
        print(f"fleet run of the seed on both machines: {STATE['seed'][3]} s")
    return STATE["seed"]


def cells_of(out, entry):
    return json.loads((out / entry["result"]).read_text())["cells"]


def test_seed_across_both_machines(seed_run, fleet_lab):
    rc, doc, out, took = seed_run
    addr, machines, _ = fleet_lab
    x86, ppc = doc["places"]["x86"], doc["places"]["ppc"]
    for name, e in (("x86", x86), ("ppc", ppc)):
        assert e["exit"] in (0, 1), (name, e.get("error"), (out / name / "repro.log").read_text()[-2000:]
                                     if (out / name / "repro.log").exists() else "no repro.log")
        assert e["card"]["bdf"] == _card(machines[name])["bdf"] and e["kernel"] == machines[name].release
        assert (out / e["result"]).exists()
    # the stall: lazy masking at the XIVE controller delivers one interrupt, then none
    lazy = [c for c in cells_of(out, ppc)
            if c["key"]["nointxmask"] == 1 and c["key"]["policy"] == "lazy" and c["key"].get("vfio") == "shipped"]
    assert lazy and all(c["verdict"] == "stall after 1" for c in lazy), [c["verdict"] for c in lazy]
    # none on x86 (the IO-APIC re-delivers the asserted line)
    assert not [c for c in cells_of(out, x86) if c["outcome"]["state"] == "stall"]
    comb = doc["comparison"]["combined"]
    assert comb["cells"] == len(cells_of(out, x86)) + len(cells_of(out, ppc))
    assert rc == doc["exit"] == (0 if comb["ok"] else 1), (rc, comb)
    assert any(d["cell"].get("policy") == "lazy" for d in doc["comparison"]["across"])
    assert nothing_held(addr)


def test_seed_page_in_chromium(seed_run, tmp_path):
    from test_report_html import browse, parse
    rc, doc, out, _ = seed_run
    page = tmp_path / "fleet.html"
    assert main(["report", str(out), "--html", str(page)]) == 0
    dom = browse(str(page), "--dump-dom", "--virtual-time-budget=2000")
    p = parse(dom)
    assert 'data-ready="1"' in dom
    stalls = [c for c in p.cells if c["data-verdict"] == "stall"]
    assert stalls and all(c["data-machine"].startswith("ppc") for c in stalls)
    mism = [c for c in p.cells if "mismatch" in c["class"].split()]
    assert len(mism) == doc["comparison"]["combined"]["mismatched"]


def test_second_user_is_refused_a_held_place(fleet_lab, tmp_path):
    addr, _, _ = fleet_lab
    alice = {**os.environ, "LG_USERNAME": "alice"}
    subprocess.run([LGC, "-x", addr, "-p", "ppc", "acquire"], env=alice, check=True, capture_output=True)
    try:
        r = subprocess.run([LGC, "-x", addr, "-p", "ppc", "acquire"], capture_output=True, text=True)
        assert r.returncode != 0 and "already acquired by" in r.stdout + r.stderr
        (tmp_path / "one.toml").write_text(ONE_CELL)
        assert fleet(addr, tmp_path / "o", "--place", "ppc", "--scenario", str(tmp_path / "one.toml"),
                     "--acquire-wait", "3") == EXIT['REFUSED']
    finally:
        subprocess.run([LGC, "-x", addr, "-p", "ppc", "release"], env=alice, check=True, capture_output=True)
    assert nothing_held(addr)


def test_down_machine_exits_machine_and_the_other_kept(fleet_lab, seed_run, tmp_path):
    addr, machines, _ = fleet_lab
    (tmp_path / "one.toml").write_text(ONE_CELL)
    assert fleet(addr, tmp_path / "o", "--place", "x86", "--place", "down", "--scenario",
                 str(tmp_path / "one.toml"), "--connect-timeout", "5") == EXIT['MACHINE']
    doc = json.loads((tmp_path / "o" / "fleet.json").read_text())
    down = doc["places"]["down"]
    assert down["exit"] == EXIT['MACHINE'] and "does not answer on SSH" in down["error"]
    x86 = doc["places"]["x86"]
    assert x86["exit"] == 0 and [c["verdict"] for c in cells_of(tmp_path / "o", x86)] == ["ok"]
    assert nothing_held(addr)


def test_killed_run_released_and_the_next_works(fleet_lab, seed_run, tmp_path, capsys):
    addr, machines, _ = fleet_lab
    (tmp_path / "one.toml").write_text(ONE_CELL)
    cmd = [os.path.join(os.path.dirname(sys.executable), "pyvfio"), "fleet", "run", "--coordinator", addr,
           "--place", "x86", "--scenario", str(tmp_path / "one.toml"), "--out", str(tmp_path / "k"),
           "--key", STATE["key"]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not places.snapshot(addr)[0]["x86"]["acquired"]:
            assert time.monotonic() < deadline and proc.poll() is None, "the run never acquired its place"
            time.sleep(0.3)
    finally:
        for pid in [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    assert places.snapshot(addr)[0]["x86"]["acquired"] == places.who()
    assert main(["fleet", "release", "--coordinator", addr]) == 0
    assert "x86: released" in capsys.readouterr().out
    assert nothing_held(addr)
    # the machine's card lock is a flock: the killed run's ssh session left none behind
    assert fleet(addr, tmp_path / "n", "--place", "x86", "--scenario", str(tmp_path / "one.toml")) == 0
