"""The key steps of each scenario's trace: the story a reader needs."""

from pyvfio.repro.matrix import Scenario, run_model
from pyvfio.sim.trace import Trace

from test_sim_matrix import expected     # the model's verdicts: one table


def trace_of(controller, card, policy, unmask="ioctl", loops=2, **knobs):
    tr = Trace()
    o = run_model(Scenario.make(controller, card, policy, unmask, **knobs), loops, trace=tr)
    return tr, o


def texts(tr):
    return [t for _, _, t in tr.events]


def in_order(tr, *needles):
    """Each needle occurs, in this order."""
    seq = texts(tr)
    i = 0
    for n in needles:
        while i < len(seq) and n not in seq[i]:
            i += 1
        assert i < len(seq), f"{n!r} missing (after the previous steps) in:\n{tr.format()}"
        i += 1


def test_xive_lazy_trace_shows_the_stall():
    tr, o = trace_of("xive", "non-2.3", "lazy")
    assert o.verdict == expected("xive", "non-2.3", "lazy")
    in_order(tr, "INTx line asserted", "LSI trigger: PQ 00->10", "kstat 1",
             "irq_disable: lazy", "eventfd_signal(trigger)",
             "xive_irq_eoi: irqd_irq_disabled -> source EOI skipped, stale_p=1 (PQ stays 10)",
             "INTx line deasserted", "enable_irq: depth 1",
             "unmask_irq: not masked, controller untouched",
             "INTx line asserted", "LSI trigger ignored: PQ 10 (not 00)")
    assert not tr.find("LOAD_EOI")          # the source is never EOId


def test_xive_unlazy_trace_masks_and_unmasks_the_source():
    tr, o = trace_of("xive", "non-2.3", "unlazy")
    assert o.verdict == expected("xive", "non-2.3", "unlazy")
    in_order(tr, "LSI trigger: PQ 00->10", "irq_disable: unlazy, mask now",
             "ESB SET_PQ_01: PQ 10->01", "source EOI skipped", "INTx line deasserted",
             "ESB SET_PQ_00: PQ 01->00", "LSI trigger: PQ 00->10", "kstat 2")


def test_xics_lazy_trace_shows_the_resend_at_eoi_masked_by_genirq():
    tr, o = trace_of("xics", "non-2.3", "lazy")
    in_order(tr, "kstat 1", "irq_disable: lazy", "H_EOI: sent cleared, line still asserted",
             "icp_resend at EOI: LSI asserted, not sent -> present",
             "IRQD_IRQ_DISABLED -> IRQS_PENDING", "ibm,int-off", "ibm,set-xive(0xff)",
             "INTx line deasserted", "ibm,set-xive(0x5)", "ibm,int-on", "kstat 2")


def test_ioapic_lazy_trace_shows_remote_irr_redelivery():
    tr, o = trace_of("ioapic", "non-2.3", "lazy")
    in_order(tr, "line asserted: deliver, Remote IRR=1", "kstat 1", "irq_disable: lazy",
             "EOI: Remote IRR=0, line still high", "EOI with line high: re-deliver",
             "IRQS_PENDING", "RTE masked", "INTx line deasserted", "RTE unmasked", "kstat 2")


def test_ioapic_unlazy_trace_has_no_redelivery():
    tr, o = trace_of("ioapic", "non-2.3", "unlazy")
    assert o.verdict == expected("ioapic", "non-2.3", "unlazy")
    assert not tr.find("re-deliver") and not tr.find("IRQS_PENDING")
    in_order(tr, "kstat 1", "irq_disable: unlazy", "RTE masked", "EOI: Remote IRR=0, line still high",
             "INTx line deasserted", "RTE unmasked")


def test_pci23_trace_masks_at_the_card_and_eois_the_source():
    tr, o = trace_of("xive", "2.3", None)
    # (the vfio line follows the card's: it is traced once pci.c returned)
    in_order(tr, "LSI trigger: PQ 00->10", "COMMAND.INTX_DISABLE=1", "INTx line deasserted",
             "pci_check_and_mask_intx -> DisINTx=1", "eventfd_signal(trigger)",
             "ESB LOAD_EOI: PQ 10->00", "acknowledge", "COMMAND.INTX_DISABLE=0",
             "pci_check_and_unmask_intx -> DisINTx=0", "LSI trigger: PQ 00->10")
    assert not tr.find("disable_irq_nosync")


def test_eventfd_unmask_goes_through_virqfd():
    tr, o = trace_of("ioapic", "non-2.3", "unlazy", unmask="eventfd")
    in_order(tr, "UNMASK|EVENTFD", "eventfd_signal(trigger)", "write 1 to the unmask eventfd",
             "virqfd_wakeup", "unmask: enable_irq")


def test_trace_lines_format():
    tr, _ = trace_of("xive", "non-2.3", "lazy", loops=1)
    lines = tr.format().splitlines()
    assert lines[0].split()[0] == "1"
    assert any(" xive " in line and "PQ 00->10" in line for line in lines)
