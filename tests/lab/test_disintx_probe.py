"""The DisINTx write probe (vfio/disintx_probe.py) against vfio-pci's own decision:
with nointxmask=0 vfio-pci masks at the card exactly when pci_intx_mask_supported(),
which intx_probe observes (DisINTx set on the card once INTx is masked)."""
import pytest

from pyvfio.host import pci
from pyvfio.vfio import disintx_probe, intx_probe

pytestmark = pytest.mark.lab


def test_write_probe_agrees_with_vfio_pci(card, facts):
    """With nointxmask=1 vfio-pci masks at the controller whatever the card can do."""
    dev = pci.device(card["bdf"])
    before = pci.read_config(dev.bdf)[:64]
    support, why_not = disintx_probe.probe(dev)
    assert why_not is None and support.basis == "probed", why_not
    assert pci.read_config(dev.bdf)[:64] == before, "the probe must restore COMMAND"
    observed, why_not = intx_probe.probe(dev)
    assert why_not is None, why_not
    expect = "device" if support.supported and not facts["nointxmask"] else "controller"
    assert observed.masking == expect, \
        f"write probe says {support.word} ({support.how}); vfio-pci: {observed.evidence}"


def test_write_probe_refuses_a_card_in_use(card):
    """An open group means someone drives the card: nothing is written."""
    from pyvfio.vfio import open_device

    dev = pci.device(card["bdf"])
    with open_device(dev.bdf):
        support, why_not = disintx_probe.probe(dev)
    assert support is None and "not idle" in why_not, why_not
