"""The INTx engine (Python engine, toy guest, watchdog, teardown) against the model
host.  The real /dev/vfio path, and the C engine, are tested in the lab (tests/lab)."""

import pytest

from pyvfio.engine import Run, RunConfig
from pyvfio.errors import UsageError
from pyvfio.profiles import probe
from pyvfio.sim import ModelHost

from test_sim_matrix import expected     # the model's verdicts: one table


def run(controller="xive", card="non-2.3", policy="lazy", loops=50, **kw):
    host = ModelHost(controller, card, policy)
    kw.setdefault("watchdog_ms", 0)
    r = Run(host, probe(host, "rw"), RunConfig(loops=loops, engine="python", **kw)).execute()
    return host, r


@pytest.mark.parametrize("unmask", ["ioctl", "eventfd"])
def test_xive_lazy_non23_stalls_after_exactly_one(unmask):
    host, r = run(unmask=unmask)
    assert r.verdict == expected("xive", "non-2.3", "lazy")
    assert r.counts.delivered == 1 and len(r.stalls) == 1
    stall = r.stalls[0]
    assert stall.card_cause and not stall.recovered       # the card had an interrupt pending
    assert stall.host_state["irq_count"] == 1              # the host saw one interrupt only


def test_recover_counts_honestly_under_a_policy_that_stays_lazy():
    _, r = run(loops=10, recover=True)
    # deliver one, stall, re-arm (one-shot kick), deliver one more, stall again...
    assert r.counts.delivered == 5 and len(r.stalls) == 5 and all(s.recovered for s in r.stalls)
    assert [s.after_delivered for s in r.stalls] == [1, 2, 3, 4, 5]
    assert r.counts.polled == 5  # each stalled interrupt was serviced by polling, not lost
    assert r.verdict == "stall after 1, recovered 5x"


def test_rearm_each_avoids_the_stall():
    _, r = run(loops=100, rearm_each=True)
    assert r.verdict == "ok" and r.counts.delivered == 100


def test_measurements_are_recorded():
    _, r = run("ioapic", policy="unlazy", loops=300)
    j = r.to_json()
    assert j["latency"]["round_trip"]["count"] == 300
    assert j["latency"]["round_trip"]["p50_us"] > 0
    assert j["host_interrupts"] == 300 and j["host_per_delivered"] == 1.0


def test_ioapic_lazy_shows_the_uncounted_extra_delivery():
    _, r = run("ioapic", policy="lazy", loops=100)
    j = r.to_json()
    assert r.verdict == "ok" and j["host_interrupts"] == 100      # the engine's rule: no spurious note
    assert j["controller_deliveries"] == 200  # genirq masked the spurious one without counting it


def test_teardown_runs_on_ctrl_c():
    host = ModelHost("xive", "non-2.3", "unlazy")
    profile = probe(host, "rw")

    def interrupt(run):
        raise KeyboardInterrupt

    r = Run(host, profile, RunConfig(loops=10**6, engine="python", watchdog_ms=0), status=interrupt).execute()
    assert r.interrupted and 0 < r.counts.delivered < 10**6
    assert r.intx.trigger is None and not r.intx.enabled      # INTx disabled, eventfds closed
    assert host.vfio.trigger is None                            # the host side saw the disable
    assert host.card.status == 0                                # card quiesced
    assert r.to_json()["latency"]["round_trip"]["count"] == r.counts.delivered  # partial results kept


@pytest.mark.parametrize("kw,msg", [
    ({"loops": 0}, "loop count"), ({"interval_us": -1}, "interval"), ({"engine": "rust"}, "engine"),
    ({"unmask": "poll"}, "unmask"), ({"watchdog_ms": -5}, "watchdog")])
def test_bad_config(kw, msg):
    with pytest.raises(UsageError, match=msg):
        RunConfig(**kw).check()


@pytest.mark.parametrize("kw, what", [({"engine": "c"}, "the C engine"),
                                      ({"engine": "c", "guest": "kvm", "unmask": "resample"}, "the KVM guest")])
def test_c_engine_and_kvm_guest_need_a_real_device(kw, what):
    host = ModelHost("xive", "non-2.3", "unlazy")
    calls = []
    real = host.set_irqs
    host.set_irqs = lambda *a, **k: calls.append(a) or real(*a, **k)
    with pytest.raises(UsageError, match=f"{what} needs a real vfio device"):
        Run(host, probe(host, "rw"), RunConfig(loops=1, **kw)).execute()
    assert calls == []   # refused before INTx is enabled, not after


def test_profile_mismatch_and_unknown_profile():
    host = ModelHost("xive", "non-2.3", "unlazy")
    with pytest.raises(UsageError, match="does not match"):
        probe(host, "rw", "e1000")
    with pytest.raises(UsageError, match="unknown profile"):
        probe(host, "rw", "ne2000")


def test_a_card_without_intx_is_refused():
    from pyvfio.backend import IrqInfo

    class NoPin(ModelHost):
        def irq_info(self, index):
            return IrqInfo(index, 0, 0)

    host = NoPin("xive", "2.3", "lazy")
    with pytest.raises(UsageError, match="has no INTx interrupt"):
        Run(host, probe(host, "rw"), RunConfig(loops=1, engine="python")).execute()


def test_a_bar_too_small_for_the_profile():
    class SmallBar(ModelHost):
        def region(self, index, access="rw"):
            r = super().region(index, access)
            if index == 0:
                r.size = 0x40
            return r

    host = SmallBar("xive", "2.3", "lazy")
    with pytest.raises(UsageError, match="BAR0 is 0x40 bytes, profile edu needs 0x100"):
        probe(host, "rw")


def test_throughput_is_over_the_measured_loop():
    _, r = run("ioapic", policy="unlazy", loops=200)
    j = r.to_json()
    assert 0 < j["loop_s"] < j["elapsed_s"]  # set-up and teardown are outside the loop
    assert j["throughput_per_s"] == pytest.approx(200 / j["loop_s"])


@pytest.mark.parametrize("unmask", ["ioctl", "eventfd"])
def test_the_model_host_sees_the_intx_sequences_as_built(unmask):
    """The Python path runs DeviceIrq's steps through host.set_irqs: the model host's
    trace shows enable, per-interrupt EOI (--rearm-each: disable + enable, the
    unmask eventfd unregistered first) and disable in that order."""
    host = ModelHost("xive", "non-2.3", "lazy", trace=True)
    Run(host, probe(host, "rw"), RunConfig(loops=2, engine="python", watchdog_ms=0, unmask=unmask,
                                           rearm_each=True)).execute()
    got = [t.split("SET_IRQS ")[1] for _, layer, t in host.trace.events if layer == "user" and "SET_IRQS" in t]
    enable = ["index 0 TRIGGER|EVENTFD start 0 count 1 fd set"]
    disable = ["index 0 TRIGGER|NONE start 0 count 0"]
    if unmask == "eventfd":
        enable.append("index 0 UNMASK|EVENTFD start 0 count 1 fd set")
        disable.insert(0, "index 0 UNMASK|EVENTFD start 0 count 1 fd -1")
    assert got == enable + (disable + enable) * 2 + disable
