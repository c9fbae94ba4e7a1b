"""The model host under forced irq threading (PREEMPT_RT; docs/preempt-rt.md):
IRQF_ONESHOT masks the line before its EOI, so the lazy disable never strands an
XIVE source, and no controller re-delivers an asserted line."""

from pyvfio.repro import matrix
from pyvfio.sim.trace import Trace

# Its verdicts (every interrupt, no spurious one) are rows of tests/test_sim_matrix.py's table.


def test_the_thread_runs_the_handler_after_the_oneshot_mask_and_the_eoi():
    t = Trace()
    matrix.run_model(matrix.Scenario.make("xive", "non-2.3", "lazy", "eventfd", threaded=True), 1, trace=t)
    text = t.format()
    order = [text.index(s) for s in ("forced threading, IRQF_ONESHOT", "IRQS_ONESHOT: mask_irq",
                                      "ESB SET_PQ_01", "ESB LOAD_EOI", "irq_thread: run the handler",
                                      "vfio_intx_handler", "irq_finalize_oneshot: IRQ disabled")]
    assert order == sorted(order), text


def test_a_2_3_card_is_unmasked_by_irq_finalize_oneshot():
    t = Trace()
    o = matrix.run_model(matrix.Scenario.make("xive", "2.3", None, "ioctl", threaded=True), 3, trace=t)
    assert o.verdict == "ok" and "irq_finalize_oneshot: unmask_threaded_irq" in t.format()
