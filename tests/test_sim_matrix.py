"""The matrix verdicts (docs/model.md, "One cycle, by controller"), each from the model run through the INTx engine."""

import pytest

from pyvfio.repro import matrix
from pyvfio.repro.matrix import Scenario, run_model

LOOPS = 50
UNMASKS = ("ioctl", "eventfd")


def run(controller, card, policy, unmask, loops=LOOPS, **knobs):
    return run_model(Scenario.make(controller, card, policy, unmask, **knobs), loops)


STALL, SPURIOUS, OK = "stall after 1", "ok, 1.00 spurious/irq", "ok"
IC = ("xive", "xics", "ioapic")
# The model's verdicts, the one table of them (each row runs with every unmask mode):
# (controller, card, policy, knobs, verdict).  XIVE's lazy disable strands the source
# at PQ=10; XICS and the IO-APIC re-deliver the asserted line at EOI, which genirq
# masks uncounted; unlazy masks at the controller; a 2.3 card is masked with DisINTx
# (no policy), unless nointxmask=1; forced threading (IRQF_ONESHOT) masks before EOI.
VERDICTS = [
    ("xive", "non-2.3", "lazy", {}, STALL),
    ("xics", "non-2.3", "lazy", {}, SPURIOUS),
    ("ioapic", "non-2.3", "lazy", {}, SPURIOUS),
    *((ic, "non-2.3", "unlazy", {}, OK) for ic in IC),
    *((ic, "2.3", None, {}, OK) for ic in IC),
    # the lab's way to get a DisINTx- card: QEMU's cards all do DisINTx
    ("xive", "2.3", "lazy", {"nointxmask": True}, STALL),
    ("xive", "2.3", "unlazy", {"nointxmask": True}, OK),
    ("ioapic", "2.3", "lazy", {"nointxmask": True}, SPURIOUS),
    ("xics", "non-2.3", "lazy", {"xics_variant": "seed-hypothesis"}, STALL),
    ("xics", "non-2.3", "unlazy", {"xics_variant": "seed-hypothesis"}, OK),
    *((ic, "non-2.3", pol, {"threaded": True}, OK) for ic in IC for pol in ("lazy", "unlazy")),
]


def expected(controller, card, policy, **knobs):
    """The table's verdict for a cell."""
    want, = [v for c, k, p, kn, v in VERDICTS if (c, k, p, kn) == (controller, card, policy, knobs)]
    return want


@pytest.mark.parametrize("unmask", UNMASKS)
@pytest.mark.parametrize("controller,card,policy,knobs,want", VERDICTS)
def test_the_model_verdict(controller, card, policy, knobs, want, unmask):
    o = run(controller, card, policy, unmask, **knobs)
    assert o.verdict == want
    assert o.scenario.policy == (matrix.NA if card == "2.3" and not knobs.get("nointxmask") else policy)
    if want == STALL:
        assert o.stalled_after == 1 and o.delivered == 1
        assert o.irq_count == 1 and o.controller_deliveries == 1
    else:
        assert o.stalled_after is None and o.delivered == LOOPS
        assert o.irq_count == LOOPS                     # /proc/interrupts: one per interrupt
        spurious = LOOPS if want == SPURIOUS else 0     # the controller: one more each
        assert o.controller_deliveries == LOOPS + spurious and o.spurious == spurious


@pytest.mark.parametrize("unmask", UNMASKS)
def test_the_xive_stall_is_the_state_the_lab_saw(unmask):
    """PQ stuck at 10, genirq enabled and unmasked."""
    st = run("xive", "non-2.3", "lazy", unmask).detail["host_at_stall"]
    assert (st["pq"], st["disabled"], st["masked"], st["depth"]) == ("10", False, False, 0)


def test_the_whole_matrix_has_exactly_the_expected_verdicts():
    """The model's default scenario (scenarios/model.toml) through the repro pipeline."""
    from pyvfio.repro import model
    from pyvfio.repro.scenario import load
    plan = load("model")
    plan.loops = 20
    cells, stopped = model.run_plan(model.planned(plan), plan)
    assert len(cells) == 18 and stopped is None
    for c in cells:
        k = c["key"]
        want = expected(k["ic"], k["card"], None if k["card"] == "2.3" else k["policy"])
        assert c["verdict"] == want == c["outcome"]["text"], k
        assert k["policy"] == (matrix.NA if k["card"] == "2.3" else k["policy"])


def test_recover_rearms_but_lazy_stalls_again_after_one_more():
    """docs/lab.md, "What the lab has seen": the re-arm is a one-shot kick under a policy that stays lazy."""
    o = run_model(Scenario.make("xive", "non-2.3", "lazy", "ioctl"), 10, recover=True)
    assert o.stalled_after == 1
    assert o.stalls == o.recovered == 5 and o.delivered == 5
    assert o.verdict == "stall after 1, recovered 5x"


def test_outcome_counts_and_verdict_data():
    o = run("ioapic", "non-2.3", "lazy", "ioctl", loops=5)
    assert (o.delivered, o.irq_count, o.controller_deliveries, o.spurious) == (5, 5, 10, 5)
    assert o.judged.state == "ok" and o.judged.spurious_per_irq == 1.0
    assert o.run.verdict == "ok"          # the note is the model's measurement, not the engine's rule


def test_rearm_each_interrupt_is_a_userspace_workaround_for_the_xive_stall():
    from pyvfio.engine import Run, RunConfig
    from pyvfio.profiles import probe
    from pyvfio.sim import ModelHost
    h = ModelHost("xive", "non-2.3", "lazy")
    run = Run(h, probe(h), RunConfig(loops=20, engine="python", watchdog_ms=0,
                                     rearm_each=True)).execute()
    assert run.verdict == "ok" and run.counts.delivered == 20
    assert run.host_irq_delta() == 20
