"""The matrix verdicts (MODEL.md §7), each from the model run through the INTx engine."""

import pytest

from pyvfio.repro import matrix
from pyvfio.repro.matrix import Scenario, run_model

LOOPS = 50
UNMASKS = ("ioctl", "eventfd")


def run(controller, card, policy, unmask, loops=LOOPS, **knobs):
    return run_model(Scenario.make(controller, card, policy, unmask, **knobs), loops)


@pytest.mark.parametrize("unmask", UNMASKS)
def test_xive_non23_lazy_stalls_after_exactly_one(unmask):
    o = run("xive", "non-2.3", "lazy", unmask)
    assert o.stalled_after == 1
    assert o.delivered == 1
    assert o.irq_count == 1 and o.controller_deliveries == 1
    assert o.verdict == "stall after 1"
    # the state the lab saw at the stall: PQ stuck at 10, genirq enabled and unmasked
    st = o.detail["host_at_stall"]
    assert (st["pq"], st["disabled"], st["masked"], st["depth"]) == ("10", False, False, 0)


@pytest.mark.parametrize("unmask", UNMASKS)
@pytest.mark.parametrize("controller", ("xics", "ioapic"))
def test_xics_ioapic_non23_lazy_one_uncounted_delivery_per_interrupt(controller, unmask):
    o = run(controller, "non-2.3", "lazy", unmask)
    assert o.stalled_after is None and o.delivered == LOOPS
    assert o.irq_count == LOOPS                       # /proc/interrupts: one per interrupt
    assert o.controller_deliveries == 2 * LOOPS       # the controller: two
    assert o.spurious == LOOPS and o.spurious_ratio == 1.0
    assert o.verdict == "ok, 1.00 spurious/irq"


@pytest.mark.parametrize("unmask", UNMASKS)
@pytest.mark.parametrize("controller", ("xive", "xics", "ioapic"))
def test_unlazy_delivers_all_without_spurious(controller, unmask):
    o = run(controller, "non-2.3", "unlazy", unmask)
    assert o.delivered == LOOPS and o.stalled_after is None
    assert o.irq_count == o.controller_deliveries == LOOPS
    assert o.verdict == "ok"


@pytest.mark.parametrize("unmask", UNMASKS)
@pytest.mark.parametrize("controller", ("xive", "xics", "ioapic"))
def test_pci23_card_delivers_all_without_spurious(controller, unmask):
    o = run(controller, "2.3", None, unmask)
    assert o.scenario.policy == matrix.NA
    assert o.delivered == LOOPS and o.irq_count == o.controller_deliveries == LOOPS
    assert o.verdict == "ok"


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
        if k["card"] == "non-2.3" and k["policy"] == "lazy":
            want = "stall after 1" if k["ic"] == "xive" else "ok, 1.00 spurious/irq"
        else:
            want = "ok"
        assert c["verdict"] == want == c["outcome"]["text"], k
        assert k["policy"] == (matrix.NA if k["card"] == "2.3" else k["policy"])


def test_nointxmask_makes_a_23_card_behave_like_non23():
    # The lab's way to get a DisINTx- card: QEMU's cards all do DisINTx.
    o = run("xive", "2.3", "lazy", "ioctl", nointxmask=True)
    assert o.scenario.policy == "lazy" and o.verdict == "stall after 1"
    assert run("xive", "2.3", "unlazy", "ioctl", nointxmask=True).verdict == "ok"
    o = run("ioapic", "2.3", "lazy", "eventfd", nointxmask=True)
    assert o.spurious == LOOPS


def test_xics_seed_hypothesis_variant_stalls_like_xive_when_lazy():
    assert run("xics", "non-2.3", "lazy", "ioctl", xics_variant="seed-hypothesis").verdict \
        == "stall after 1"
    assert run("xics", "non-2.3", "unlazy", "ioctl", xics_variant="seed-hypothesis").verdict == "ok"


def test_recover_rearms_but_lazy_stalls_again_after_one_more():
    """LAB.md: the re-arm is a one-shot kick under a policy that stays lazy."""
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
