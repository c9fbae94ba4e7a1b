"""pyvfio fleet against a real labgrid coordinator and exporter on 127.0.0.1 and a
throwaway local sshd (tests/fleet_sshd.py): NOT the lab machines.  Both places
"local-a" and "local-b" are this host reached over SSH, so the scenario runs on its
model host (--model) with the pyvfio of this checkout (--remote-pyvfio): what is
tested here is labgrid's side (places, tags, reservations, locks, SSHDriver) and the
fleet's (workers in parallel, fetch, fleet.json, comparison, release in every case).
The real machines (x86_64 6.12 and ppc64le XIVE, cards through vfio) are
tests/machines/test_fleet.py.  A third place, "down", exports a port where nothing
listens: a dead machine."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from pyvfio.cli import main
from pyvfio.errors import EXIT_MACHINE
from pyvfio.fleet import local, places
from pyvfio.fleet.local import free_port

from fleet_sshd import LocalSshd
from pyvfio.errors import EXIT

PYVFIO = os.path.join(os.path.dirname(sys.executable), "pyvfio")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d = tmp_path_factory.mktemp("fleet")
    sshd = LocalSshd(d / "sshd").start()
    lg = local.LocalLab(d / "labgrid").start()
    try:
        card = {"name": "edu0", "bdf": "0000:00:04.0", "profile": "edu", "kind": "2.3", "description": "none here"}
        lg.export("host", {"a": local.Exported(port=sshd.port, cards=[card]),
                           "b": local.Exported(port=sshd.port, cards=[card]),
                           "down": local.Exported(port=free_port(), cards=[card])})
        for name, group, tags in (("local-a", "a", {"lab": "local", "arch": "x86_64"}),
                                  ("local-b", "b", {"lab": "local", "arch": "ppc64le"}),
                                  ("down", "down", {"lab": "down"})):
            places.create_place(lg.address, name, f"host/{group}/*/*", tags)
        yield lg.address, sshd, d
    finally:
        lg.stop()
        sshd.stop()


def fleet(addr, sshd, out, *extra):
    return main(["fleet", "run", "--coordinator", addr, "--scenario", "seed", "--out", str(out), "--model",
                 "--remote-pyvfio", PYVFIO, "--key", sshd.key, "--connect-timeout", "5", *extra])


def nothing_held(addr):
    ps, res = places.snapshot(addr)
    return {p: i["acquired"] for p, i in ps.items() if i["acquired"]} == {} and res == []


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    p = tmp_path_factory.mktemp("base") / "model-seed.json"
    assert main(["repro", "--model", "--scenario", "seed", "--json", str(p)]) == 0
    return str(p)


def test_two_places_in_parallel_by_tag(lab, baseline, tmp_path, capsys):
    addr, sshd, _ = lab
    t0 = time.monotonic()
    assert fleet(addr, sshd, tmp_path, "--tag", "lab=local", "--baseline", baseline) == 0
    took = time.monotonic() - t0
    # progress as each place ended: places done of the total, the cells so far, time left
    err = capsys.readouterr().err
    assert re.search(r"fleet: 1/2 place\(s\) done \(65 cell\(s\) so far\), \S+ in; about \S+ left", err), err
    assert "fleet: 2/2 place(s) done (130 cell(s) so far)" in err, err
    doc = json.loads((tmp_path / "fleet.json").read_text())
    assert doc["kind"] == "fleet" and doc["state"] == "done" and doc["exit"] == 0
    assert sorted(doc["places"]) == ["local-a", "local-b"]
    for p, e in doc["places"].items():
        assert e["exit"] == 0 and e["error"] is None
        assert e["tags"]["lab"] == "local" and e["kernel"] == os.uname().release
        res = json.loads((tmp_path / e["result"]).read_text())
        assert res["kind"] == "repro" and res["backend"] == "model"
        assert e["steps"]["repro_s"] > 0
    comp = doc["comparison"]
    assert comp["combined"]["ok"] and comp["combined"]["cells"] == 2 * 65
    # the lazy XIVE cell stalls and XICS's does not: the across-machines view has it
    lazy = [d for d in comp["across"] if d["cell"].get("policy") == "lazy" and d["cell"]["unmask"] == "ioctl"]
    assert lazy and lazy[0]["verdicts"]["local-a: ppc64le 6.12 xive"] == "stall after 1"
    assert all(r is not None and r["verdict_changes"] == [] for r in comp["baseline"].values())
    assert nothing_held(addr)
    print(f"two places in parallel: {took:.1f} s")
    # the page of the whole run
    page = tmp_path / "fleet.html"
    assert main(["report", str(tmp_path), "--html", str(page)]) == 0
    text = page.read_text()
    assert text.count('<td class="cell') == 2 * 65 and "arch=ppc64le" in text


def test_down_machine_is_exit_5_and_the_other_kept(lab, tmp_path):
    addr, sshd, _ = lab
    assert fleet(addr, sshd, tmp_path, "--place", "local-a", "--place", "down") == EXIT_MACHINE
    doc = json.loads((tmp_path / "fleet.json").read_text())
    a, down = doc["places"]["local-a"], doc["places"]["down"]
    assert a["exit"] == 0 and (tmp_path / a["result"]).exists()
    assert down["exit"] == EXIT_MACHINE and down["result"] is None and "does not answer on SSH" in down["error"]
    assert nothing_held(addr)


def test_second_user_cannot_take_a_held_place(lab, tmp_path, monkeypatch, capsys):
    addr, sshd, _ = lab
    env = {**os.environ, "LG_USERNAME": "alice"}
    lgc = os.path.join(os.path.dirname(sys.executable), "labgrid-client")
    subprocess.run([lgc, "-x", addr, "-p", "local-b", "acquire"], env=env, check=True, capture_output=True)
    try:
        # another user (us) asking for it: the reservation waits in labgrid's queue, then exit 4
        assert fleet(addr, sshd, tmp_path, "--place", "local-b", "--acquire-wait", "3") == EXIT['REFUSED']
        doc = json.loads((tmp_path / "fleet.json").read_text())
        assert "acquired by" in doc["places"]["local-b"]["error"] and "alice" in doc["places"]["local-b"]["error"]
        # a plain acquire by another user fails too, and fleet release leaves alice's place alone
        r = subprocess.run([lgc, "-x", addr, "-p", "local-b", "acquire"], capture_output=True, text=True,
                           env={**os.environ, "LG_USERNAME": "bob"})
        assert r.returncode != 0 and "already acquired by" in r.stdout + r.stderr
        assert main(["fleet", "release", "--coordinator", addr]) == 0
        assert "held by" in capsys.readouterr().out
        assert places.snapshot(addr)[0]["local-b"]["acquired"].endswith("/alice")
    finally:
        subprocess.run([lgc, "-x", addr, "-p", "local-b", "release"], env=env, check=True, capture_output=True)
    assert nothing_held(addr)


def test_killed_run_is_released_and_the_next_run_works(lab, tmp_path, capsys):
    addr, sshd, _ = lab
    cmd = [PYVFIO, "fleet", "run", "--coordinator", addr, "--scenario", "seed", "--out", str(tmp_path / "k"),
           "--model", "--remote-pyvfio", PYVFIO, "--key", sshd.key, "--place", "local-a"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not places.snapshot(addr)[0]["local-a"]["acquired"]:
            assert time.monotonic() < deadline and proc.poll() is None, "the run never acquired its place"
            time.sleep(0.3)
    finally:
        # the whole run dies at once (OOM, power): fleet run and its worker, no teardown
        tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    assert places.snapshot(addr)[0]["local-a"]["acquired"] == places.who()
    assert main(["fleet", "release", "--coordinator", addr]) == 0
    assert "local-a: released" in capsys.readouterr().out
    assert nothing_held(addr)
    assert fleet(addr, sshd, tmp_path / "next", "--place", "local-a") == 0


def test_status_shows_places_holders_and_last_results(lab, tmp_path, capsys):
    addr, sshd, _ = lab
    # the last run's folder: one place run, one never started
    (tmp_path / "fleet.json").write_text(json.dumps({"kind": "fleet", "places": {"local-a": {"exit": 0}}}))
    assert main(["fleet", "status", "--coordinator", addr, "--out", str(tmp_path), "--json", "-"]) == 0
    st = json.loads(capsys.readouterr().out)
    by = {r["place"]: r for r in st["places"]}
    assert by["local-a"]["last"]["exit"] == 0 and by["local-b"]["last"] is None
    assert by["down"]["cards"] == ["edu0 0000:00:04.0 (edu)"] and by["local-a"]["acquired"] is None
    assert main(["fleet", "status", "--coordinator", addr]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("local-a:"))
    assert line.startswith("local-a: free; tags") and "arch=x86_64" in line and "cards edu0" in line


def test_bad_input_is_one_line(lab, tmp_path, capsys):
    addr, sshd, _ = lab
    assert main(["fleet", "run", "--coordinator", addr, "--scenario", "seed", "--out", str(tmp_path)]) == 2
    assert main(["fleet", "run", "--coordinator", addr, "--place", "nowhere", "--scenario", "seed",
                 "--out", str(tmp_path)]) == 2
    assert main(["fleet", "run", "--coordinator", addr, "--tag", "lab=none", "--scenario", "seed",
                 "--out", str(tmp_path)]) == 2
    assert main(["fleet", "run", "--coordinator", addr, "--place", "local-a", "--scenario",
                 str(tmp_path / "missing.toml"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert all(line.startswith("pyvfio: error:") for line in err.strip().splitlines()), err
    assert nothing_held(addr)


def test_single_machine_commands_do_not_import_labgrid(tmp_path):
    code = ("import sys; from pyvfio.cli import main; "
            f"main(['repro', '--model', '--scenario', 'seed', '--json', {str(tmp_path / 'r.json')!r}]); "
            "main(['report', " + repr(str(tmp_path / 'r.json')) + "]); "
            "print('labgrid' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_ctrl_c_releases_every_place(lab, tmp_path):
    addr, sshd, _ = lab
    cmd = [PYVFIO, "fleet", "run", "--coordinator", addr, "--scenario", "seed", "--out", str(tmp_path),
           "--model", "--remote-pyvfio", PYVFIO, "--key", sshd.key, "--tag", "lab=local"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not all(places.snapshot(addr)[0][p]["acquired"] for p in ("local-a", "local-b")):
        assert time.monotonic() < deadline and proc.poll() is None, "the run never acquired its places"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "pyvfio: interrupted" in err
    doc = json.loads((tmp_path / "fleet.json").read_text())
    assert doc["state"] == "interrupted" and doc["exit"] == 130
    assert nothing_held(addr)


SLOW = """# the model host's seed cells, long enough to interrupt mid-run
loops = 2000000

[run]
profile = "edu"
watchdog_ms = 300

[matrix]
nointxmask = [1]
policy = ["unlazy"]
unmask = ["eventfd"]
engine = ["python"]
access = ["mmap"]

[model]
ic = ["xive"]
card = ["2.3"]

[[expect]]
verdict = "ok"
"""


def _remote_repros(workdir):
    """The repros running from `workdir` (a folder of this test's own: a name alone also
    matched another run's repro, and the test then interrupted its fleet run mid start-up)."""
    return [p for p in psutil.process_iter(["cmdline"])
            if "repro" in (p.info["cmdline"] or []) and any(a.startswith(workdir) for a in p.info["cmdline"] or [])]


def test_ctrl_c_stops_the_remote_repro_before_the_release(lab, tmp_path):
    """A command over SSH without a tty outlives the session: the interrupted worker
    stops the repro it started on the machine (SIGINT: pyvfio's own teardown) before
    it releases the place, so the next user does not find the card still in use."""
    addr, sshd, _ = lab
    scen = tmp_path / "slow-one-cell.toml"
    scen.write_text(SLOW)
    work = str(tmp_path / "remote")
    cmd = [PYVFIO, "fleet", "run", "--coordinator", addr, "--scenario", str(scen), "--out", str(tmp_path / "o"),
           "--model", "--remote-pyvfio", PYVFIO, "--key", sshd.key, "--place", "local-a", "--workdir", work]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not _remote_repros(work):
        assert time.monotonic() < deadline and proc.poll() is None, "the remote repro never started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert _remote_repros(work) == [], "the remote repro outlived the interrupted run"
    assert nothing_held(addr)
