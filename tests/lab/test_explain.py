"""--explain on a real kernel (inside a lab VM, on edu): the breakdown puts an
injected delay where it was injected, 10 runs of 10 each, short runs (a few
hundred interrupts) that ride in the existing guest batches (no boot of their own).

- In the guest handler: edu's profile with `spin_us = 50` added to its ack.  spin,
  not delay: a spin keeps the CPU, so the added time is the handler's own, 50 us
  of it; a 50 us sleep adds the timer's slack and a wakeup (the scheduler's time)
  on top, which is not what the check is about.
- On the host: a SCHED_FIFO busy task on the measuring thread's CPU, busy a few ms
  at a time (started by the test, always killed).  Its time must land in the
  scheduler's and IRQ segments, and the analysis must name it."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from pyvfio import profiles
from pyvfio.engine import Run, RunConfig
from pyvfio.explain import Explainer
from pyvfio.lab import in_guest
from pyvfio.profiles import probe
from pyvfio.vfio import open_device

pytestmark = pytest.mark.lab
FACTS = in_guest.facts()
EDU = next((b["bdf"] for b in FACTS["bound"] if b["card"] == "edu"), None) if FACTS else None
if FACTS and EDU is None:
    pytest.skip("no edu card in this boot", allow_module_level=True)
RUNS, N = 10, 150
HOG_N = 1000            # 16-20 breaches naming the hog per run of 2000 (x86_64, loaded host)
SPIN_US = 50
SCHED = ("wakeup", "return", "hardirq")
HOG = """
import os, time
os.sched_setaffinity(0, [{cpu}])
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
with open("/proc/self/comm", "w") as f:
    f.write("pyvfio-hog")
print("ready", flush=True)
while True:                      # busy {busy_ms} ms, then let the others run {idle_ms} ms
    end = time.monotonic() + {busy_ms} / 1000
    while time.monotonic() < end:
        pass
    time.sleep({idle_ms} / 1000)
"""


@pytest.fixture(scope="module")
def spun_profile():
    """edu's own profile file with the spin added at the end of its ack."""
    text = open(profiles.named("edu").path).read()
    ack = 'ack = [{ read = "IRQ_STATUS", mask = 0xffffffff }, { write_cause = "IRQ_ACK" }]'
    assert ack in text
    spun = text.replace(ack, ack[:-1] + f", {{ spin_us = {SPIN_US} }}]").replace('name = "edu"', 'name = "edu-spin"')
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "edu-spin.toml")
        with open(path, "w") as f:
            f.write(spun)
        yield path


def explained(profile=None, loops=N, threshold_us=None):
    ex = Explainer(threshold_us)
    with open_device(EDU) as dev:
        r = Run(dev, probe(dev, "mmap", profile), RunConfig(loops=loops, watchdog_ms=1000),
                explain=ex).execute()
    out = r.to_json()
    assert r.verdict == "ok", r.verdict            # explain never changes a verdict
    e = out["explain"]
    assert e["missing"] is None, e["missing"]
    assert e["explained"] >= 0.95 * out["counts"]["delivered"] > 0, (e["explained"], e["unattributed"])
    return out


def p50(h):
    return h["p50_us"]


def test_a_run_is_broken_down_and_leaves_nothing_behind():
    out = explained(loops=100)
    e = out["explain"]
    assert e["segments"][:5] == ["raise", "hardirq", "wakeup", "return", "handler"]
    assert "irq:irq_handler_exit" in e["traced"] and "reenable" in e["segments"]
    assert not any(t.startswith("kprobe:") for t in e["traced"])     # kprobes cost 10-16 us a hit
    assert e["worst"]["round_trip_ns"] == out["latency"]["round_trip"]["max_us"] * 1000 or \
        abs(e["worst"]["round_trip_ns"] / 1e3 - out["latency"]["round_trip"]["max_us"]) \
        <= 0.02 * out["latency"]["round_trip"]["max_us"]          # the histogram's precision
    assert abs(sum(e["worst"]["segments_ns"].values()) - e["worst"]["round_trip_ns"]) == 0
    print(e["worst"]["text"])
    root = "/sys/kernel/debug/tracing"
    assert not [d for d in os.listdir(f"{root}/instances") if d.startswith("pyvfio-")]
    assert "pyvfio_" not in open(f"{root}/kprobe_events").read()


def test_a_slower_ack_lands_in_the_handler(spun_profile):
    """The added time is the spin's 50 us.  The round trip's p50 difference between two
    back-to-back runs carries the host's drift as well (28 to 132 us on a loaded
    2-core host under TCG), so it is printed, and the check is on what was
    injected: at least 90 % of it in handler, and handler not taking the drift."""
    shares = []
    t = time.monotonic()
    for _ in range(RUNS):
        base, spun = explained(), explained(spun_profile)
        added = p50(spun["latency"]["round_trip"]) - p50(base["latency"]["round_trip"])
        handler = p50(spun["explain"]["latency"]["handler"]) - p50(base["explain"]["latency"]["handler"])
        shares.append((round(added, 1), round(handler, 1)))
    print(f"(round trip p50 added us, handler p50 added us) x{RUNS} in {time.monotonic() - t:.0f} s: {shares}")
    assert all(0.9 * SPIN_US <= handler <= 1.2 * SPIN_US for _, handler in shares), shares


@pytest.fixture
def hog():
    """The SCHED_FIFO busy task on this thread's CPU; always killed."""
    was = os.sched_getaffinity(0)
    cpu = min(was)
    os.sched_setaffinity(0, [cpu])           # the measuring thread on the hog's CPU
    p = subprocess.Popen([sys.executable, "-c", HOG.format(cpu=cpu, busy_ms=3, idle_ms=7)],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield p.pid
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
        os.sched_setaffinity(0, was)


def _ran(pid):
    """What the scheduler says the hog did (for a failure's message)."""
    try:
        with open(f"/proc/{pid}/sched") as f:
            return " ".join(ln.split()[0] + "=" + ln.split()[-1] for ln in f
                            if ln.startswith(("se.sum_exec_runtime", "nr_switches", "policy")))
    except OSError as exc:
        return str(exc)


def test_a_busy_host_task_lands_in_the_scheduler_and_is_named(hog):
    """The round trips over 1 ms (the --threshold breaches, the 20 worst kept) that the
    hog got in the way of: its time is in wakeup/return/hardirq, and it is named.
    (A round trip can also be slow for no reason inside the guest: under TCG on a
    loaded host the whole VM stops now and then; the analysis blames no task then.)"""
    got = []
    t = time.monotonic()
    for _ in range(RUNS):
        # A run over several of the hog's cycles (busy 3 ms, idle 7): N interrupts took only
        # 2-10 ms once explain stopped costing the round trip tens of us.  (Not duration_s:
        # its clock starts before the tracer's set-up, which takes longer under TCG.)
        out = explained(loops=HOG_N, threshold_us=1000)
        hogged = [(a, b) for a in out["explain"]["breaches"] for b in a["blocking"] if b["pid"] == hog]
        e = out["explain"]
        assert hogged, (f"no breach names pid {hog} ({_ran(hog)}); explained {e['explained']}, "
                        f"unattributed {e['unattributed']}, breaches {len(e['breaches'])}, worst:\n"
                        + (e["worst"] or {}).get("text", "-"))
        a, b = max(hogged, key=lambda ab: ab[1]["ns"])
        sched = sum(a["segments_ns"].get(s, 0) for s in SCHED)
        got.append((len(hogged), round(b["ns"] / 1e3), round(sched / b["ns"], 2)))
        assert b["ns"] >= 1_000_000 and sched >= 0.9 * b["ns"], a["text"]
        assert re.search(rf"pyvfio-hog:{hog}\b", a["text"]), a["text"]
    print(f"(breaches naming pyvfio-hog, its most us in one, wakeup+return+hardirq / its time) "
          f"x{RUNS} in {time.monotonic() - t:.0f} s: {got}")
    print(a["text"])
