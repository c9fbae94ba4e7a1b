"""MSI and MSI-X beside INTx through the real vfio-pci (inside a lab VM): the trigger
on the MSI index, 10,000 of 10,000 delivered by the C loop with its histograms and
vfio-msi[0]'s /proc/interrupts count, the Python engine on the same steps, the
switch back to INTx on the same device fd, and the refusals (a card without MSI,
MSI-X on a card without it, INTx-only modes).  Which card has what comes from its
profile's irqs; the kernel's irq_info must agree.  Runs in the boots of
tests/test_lab_vms.py; one pyvfio process per refusal, the rest in this one."""

import errno
import json
import subprocess
import sys

import pytest

from pyvfio import uapi
from pyvfio.engine import Run, RunConfig
from pyvfio.errors import UsageError, VfioError
from pyvfio.host import interrupts
from pyvfio.intx import IRQ_KINDS, Intx
from pyvfio.profiles import probe
from pyvfio.vfio import open_device

pytestmark = pytest.mark.lab
N = 10000


def _kinds(dev):
    """The message kinds the card's profile serves, and those it does not."""
    served = probe(dev).spec.irqs
    return [k for k in ("msi", "msix") if k in served], [k for k in ("msi", "msix") if k not in served]


def test_irq_info_agrees_with_the_profile(card):
    with open_device(card["bdf"]) as dev:
        served, absent = _kinds(dev)
        for kind in served:
            info = dev.irq_info(IRQ_KINDS[kind])
            assert info.count >= 1 and info.flags & uapi.VFIO_IRQ_INFO_EVENTFD
            assert info.flags & uapi.VFIO_IRQ_INFO_NORESIZE  # vfio-pci's MSI and MSI-X
        for kind in absent:
            assert dev.irq_info(IRQ_KINDS[kind]).count == 0, f"{card['card']} has {kind}: list it in irqs"


def _msi_cards(card):
    with open_device(card["bdf"]) as dev:
        served, _ = _kinds(dev)
    if not served:
        pytest.skip(f"{card['card']}'s profile serves no MSI or MSI-X (its refusal is tested)")
    return served


def test_every_message_delivered_by_the_c_loop(card):
    for kind in _msi_cards(card):
        with open_device(card["bdf"]) as dev:
            r = Run(dev, probe(dev), RunConfig(loops=N, irq=kind, watchdog_ms=500)).execute()
            line = interrupts.vfio_line(card["bdf"], kind)
        c = r.counts
        assert (r.verdict, c.delivered, c.lost, c.spurious, len(r.stalls)) == ("ok", N, 0, 0, 0), kind
        for h in r.hists:  # wakeup, service, round trip
            assert h.count == N and h.percentile(50) > 0
        assert r.hists[2].percentile(99) >= r.hists[2].percentile(50)
        # each message went through vfio's vfio_msihandler once, on its own IRQ
        assert r.host_irq_delta() == N
        assert r.host_before["irq"] is not None  # vfio-msi[0](BDF) was found while enabled
        assert line is None  # disabled at teardown: vfio freed the vector
        j = r.to_json()
        assert j["irq"] == kind and j["throughput_per_s"] > 0 and j["host_per_delivered"] == 1.0


def test_python_engine_replays_the_same_steps(card):
    for kind in _msi_cards(card):
        with open_device(card["bdf"]) as dev:
            r = Run(dev, probe(dev), RunConfig(loops=1000, irq=kind, engine="python")).execute()
        assert (r.verdict, r.counts.delivered, r.host_irq_delta()) == ("ok", 1000, 1000)


def test_message_trigger_loopback_and_back_to_intx(card):
    """While MSI is on, its vector is vfio-msi[0] in /proc/interrupts, a software
    trigger reaches the eventfd without it, and there is no mask; after it, INTx on
    the same device fd delivers again (vfio-pci allows one kind at a time)."""
    for kind in _msi_cards(card):
        with open_device(card["bdf"]) as dev:
            prof = probe(dev)
            prof.init()
            with Intx(dev, irq=kind) as msi:
                assert msi.seq.eoi == []                 # an edge: no EOI step
                line = interrupts.vfio_line(card["bdf"], kind)
                assert line is not None and line.total == 0
                msi.loopback()
                assert msi.trigger.wait(1.0) == 1
                assert interrupts.vfio_line(card["bdf"], kind).total == 0   # software only
                with pytest.raises(UsageError, match="masks only the INTx line"):
                    msi.mask()
                intx = Intx(dev)  # not beside it: vfio_pci_set_intx_trigger says EINVAL
                with pytest.raises(VfioError) as refused:
                    intx.enable()
                intx.close()
                assert refused.value.errno == errno.EINVAL
                prof.raise_irq()
                assert msi.trigger.wait(1.0) == 1 and prof.ack()
                assert msi.trigger.wait(0.2) == 0       # one message per raise, nothing re-sent
                assert interrupts.vfio_line(card["bdf"], kind).total == 1
            assert interrupts.vfio_line(card["bdf"], kind) is None
            r = Run(dev, prof, RunConfig(loops=200, watchdog_ms=500)).execute()
        assert (r.verdict, r.counts.delivered, r.host_irq_delta()) == ("ok", 200, 200)


def pyvfio(*args):
    p = subprocess.run([sys.executable, "-m", "pyvfio", *args], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_cli_prints_the_same_measurements(card, tmp_path):
    kind = _msi_cards(card)[0]
    out = tmp_path / "r.json"
    p = pyvfio("run", card["bdf"], "--irq", kind, "-l", "2000", "-q", "--json", str(out))
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    assert res["modes"]["irq"] == kind and res["counts"]["delivered"] == 2000
    assert res["latency"]["round_trip"]["count"] == 2000 and res["host_interrupts"] == 2000
    assert f"host interrupts (/proc/interrupts {interrupts.vfio_msi_name(card['bdf'], kind)}) 2000" \
        in p.stdout
    assert "round_trip us: min" in p.stdout and "throughput" in p.stdout


def test_refusals_are_one_line(card):
    """What the card lacks (the kernel counts 0 vectors), and INTx-only modes asked of
    MSI: one line, exit 2, and the card is left usable."""
    with open_device(card["bdf"]) as dev:
        served, absent = _kinds(dev)
    cases = [(["--irq", k], f"has no {'MSI-X' if k == 'msix' else 'MSI'} (VFIO_DEVICE_GET_IRQ_INFO counts 0")
             for k in absent]
    if served:
        cases.append((["--irq", served[0], "--unmask", "eventfd"], "is an edge with nothing to unmask"))
    for args, message in cases:
        p = pyvfio("run", card["bdf"], "-l", "10", "-q", *args)
        assert p.returncode == 2 and message in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    with open_device(card["bdf"]) as dev:
        r = Run(dev, probe(dev), RunConfig(loops=50, watchdog_ms=500)).execute()
    assert (r.verdict, r.counts.delivered) == ("ok", 50)
