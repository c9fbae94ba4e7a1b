"""XIVE: the skip in xive_irq_eoi is the cause; the SET_PQ_00 knob; the recovery."""

import pytest

from pyvfio.intx import DeviceIrq
from pyvfio.sim import ModelHost
from pyvfio.sim import xive
from pyvfio.repro.matrix import Scenario, run_model

from test_sim_matrix import expected     # the model's verdicts: one table

RAISE, ACK, STATUS = 0x60, 0x64, 0x24


def cycle(host, ix, ack_first=True):
    """One interrupt by hand: raise, read the trigger, ack, unmask.  Returns the count."""
    bar = host.region(0)
    bar.write(RAISE, 4, 1)
    n = ix.trigger.consume()
    if ack_first:
        bar.write(ACK, 4, bar.read(STATUS, 4))
    ix.eoi()
    if not ack_first:
        bar.write(ACK, 4, bar.read(STATUS, 4))
    return n


def test_without_the_eoi_skip_knob_the_stall_disappears():
    sc = Scenario.make("xive", "non-2.3", "lazy", "ioctl")
    assert run_model(sc, 20).verdict == expected("xive", "non-2.3", "lazy")
    o = run_model(sc, 20, xive_eoi_skips_disabled=False)
    assert o.stalled_after is None and o.delivered == 20
    # it then behaves like XICS/IO-APIC: the EOId source re-fires, genirq masks it
    assert o.spurious == 20


def test_monkeypatched_xive_irq_eoi_without_the_skip_does_not_stall(monkeypatch):
    def xive_irq_eoi_always(self):           # xive_irq_eoi minus the irqd_irq_disabled test
        self.xive_do_source_eoi()
        self.saved_p = False
    monkeypatch.setattr(xive.XiveChip, "irq_eoi", xive_irq_eoi_always)
    o = run_model(Scenario.make("xive", "non-2.3", "lazy", "eventfd"), 20)
    assert o.verdict == "ok, 1.00 spurious/irq"


def test_extra_unmask_does_not_recover_the_stall():
    h = ModelHost("xive", "non-2.3", "lazy")
    with DeviceIrq(h) as ix:
        assert cycle(h, ix) == 1
        assert cycle(h, ix) == 0                  # stalled
        ix.unmask()                               # vfio ctx.masked is 0: nothing happens
        ix.unmask()
        ix.mask()                                 # lazy: depth only, no ESB access
        ix.unmask()
        assert h.host_state()["pq"] == "10"
        assert cycle(h, ix) == 0


def test_trigger_disable_enable_recovers_the_stall_once_under_lazy():
    h = ModelHost("xive", "non-2.3", "lazy")
    with DeviceIrq(h) as ix:
        assert cycle(h, ix) == 1
        assert cycle(h, ix) == 0
        assert h.host_state()["pq"] == "10"
        ix.rearm()                                # free_irq (PQ_01) + request_irq (PQ_00)
        assert h.host_state()["pq"] == "00"
        assert cycle(h, ix) == 1                  # recovered ...
        assert cycle(h, ix) == 0                  # ... once: the policy is still lazy


def test_rearm_with_the_fix_stays_healthy():
    h = ModelHost("xive", "non-2.3", "unlazy")
    with DeviceIrq(h) as ix:
        ix.rearm()
        assert h.host_state()["unlazy"] is True    # vfio_intx_enable set it again
        assert [cycle(h, ix) for _ in range(5)] == [1] * 5


def test_set_pq00_does_not_replay_an_asserted_lsi_unless_knob():
    # UNMASK before the ack (docs/model.md, "One cycle, by controller"): QEMU's XIVE does nothing at SET_PQ_00.
    for knob, want in ((False, 0), (True, 1)):
        h = ModelHost("xive", "non-2.3", "unlazy", xive_set_pq00_retriggers=knob)
        with DeviceIrq(h) as ix:
            bar = h.region(0)
            bar.write(RAISE, 4, 1)
            assert ix.trigger.consume() == 1
            ix.eoi()                               # unmask with the line still high
            assert ix.trigger.consume() == want, f"knob={knob}"


def test_esb_loads_return_old_pq():
    class NullCpu:
        def notify(self, deliver):
            self.n = getattr(self, "n", 0) + 1
    src = xive.XiveSource(NullCpu())
    assert src.esb_load(xive.XIVE_ESB_SET_PQ_00) == xive.PQ_OFF
    src.set_irq(1)
    assert src.pq == xive.PQ_PENDING and src.cpu.n == 1
    assert src.esb_load(xive.XIVE_ESB_GET) == xive.PQ_PENDING
    assert src.esb_load(xive.XIVE_ESB_LOAD_EOI) == 1       # asserted: re-triggered
    assert src.pq == xive.PQ_PENDING and src.cpu.n == 2
    src.set_irq(0)
    assert src.esb_load(xive.XIVE_ESB_LOAD_EOI) == 0 and src.pq == xive.PQ_RESET
    with pytest.raises(ValueError):
        src.esb_load(0x123)
