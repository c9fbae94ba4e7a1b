"""KVM's resample irqfd on the model host (sim/kvm_irqfd.py): the guest's EOI makes
the kernel signal vfio's unmask eventfd, so a KVM/resample cell is the eventfd cell
with no userspace unmask."""

import pytest

from pyvfio.errors import UsageError
from pyvfio.intx import DeviceIrq
from pyvfio.repro import predict
from pyvfio.repro.scenario import NA
from pyvfio.sim import ModelHost
from pyvfio.repro.matrix import Scenario, run_model
from pyvfio.sim.trace import Trace

RAISE, ACK = 0x60, 0x64


@pytest.mark.parametrize("nointxmask", (False, True))
def test_the_guests_eoi_unmasks_through_the_resampler(nointxmask):
    h = ModelHost("ioapic", "2.3", "unlazy", nointxmask=nointxmask, resampler=True)
    bar = h.region(0)
    with DeviceIrq(h, "eventfd") as ix:
        for n in range(1, 4):
            bar.write(RAISE, 4, 1)
            assert ix.trigger.consume() == 1
            assert h.host_state()["vfio_masked"] is True      # masked until the EOI
            bar.write(ACK, 4, 1)
            h.guest_eoi()                                     # no userspace write
            s = h.host_state()
            assert (s["vfio_masked"], s["resampler_acks"], s["irq_count"]) == (False, n, n)


def test_without_a_registered_resamplefd_the_eoi_reaches_nobody():
    """An irqfd without resample (the DeviceIrq unmasks by ioctl: no unmask eventfd):
    the guest's EOI unmasks nothing and the line stays masked after one interrupt."""
    h = ModelHost("ioapic", "2.3", resampler=True)
    bar = h.region(0)
    with DeviceIrq(h, "ioctl") as ix:
        bar.write(RAISE, 4, 1)
        assert ix.trigger.consume() == 1
        bar.write(ACK, 4, 1)
        h.guest_eoi()
        assert (h.host_state()["vfio_masked"], h.host_state()["resampler_acks"]) == (True, 0)
        bar.write(RAISE, 4, 1)
        assert ix.trigger.consume() == 0


def test_a_resample_run_delivers_every_interrupt_and_the_kernel_unmasks_each():
    trace = Trace()
    s = Scenario.make("ioapic", "2.3", "lazy", "eventfd", nointxmask=True, resampler=True)
    o = run_model(s, 20, trace=trace)
    assert (o.judged.state, o.delivered, o.irq_count) == ("ok", 20, 20)
    assert o.detail["host_after"]["resampler_acks"] == 20
    text = trace.format()
    assert "irqfd_resampler_ack" in text and "user: write 1 to the unmask eventfd" not in text


def test_the_resampler_signals_the_unmask_eventfd_only():
    with pytest.raises(UsageError, match="unmask eventfd"):
        Scenario.make("ioapic", "2.3", NA, "ioctl", resampler=True)


@pytest.mark.parametrize("kernel_fix", (False, True))     # 6.1 and 6.12
@pytest.mark.parametrize("nointxmask", (0, 1))
def test_kvm_resample_cells_are_predicted_ok_on_the_ioapic(kernel_fix, nointxmask):
    key = {"arch": "x86_64", "ic": "ioapic", "nointxmask": nointxmask,
           "policy": "kernel" if nointxmask else NA, "unmask": "resample", "guest": "kvm"}
    assert predict.model_scenario(key, True, kernel_fix).resampler
    assert predict.predict(key, 50, True, kernel_fix).state == "ok"


def test_no_kvm_prediction_off_x86():
    key = {"ic": "xive", "nointxmask": 1, "policy": "lazy", "unmask": "resample", "guest": "kvm"}
    assert predict.predict(key, 10, True, True) is None
