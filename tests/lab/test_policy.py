"""The masking-policy module (tools/policy) on a real kernel: lazy disable on
POWER9 XIVE with controller masking (nointxmask=1) stalls after exactly one
interrupt; unlazy does not; elsewhere neither stalls (docs/lab.md, "What the lab has seen")."""
import pytest

from pyvfio import profiles
from pyvfio.intx import DeviceIrq
from pyvfio.host import policy_module as policy

from . import cycles

pytestmark = pytest.mark.lab
N = 20


def _stalls(facts, which):
    return which == "lazy" and facts["ic"] == "xive" and facts["nointxmask"] == 1


def test_policy_module_loaded(facts):
    assert facts["policy_module"], "run the lab with --policy lazy|unlazy to load tools/policy"
    assert policy.available()


@pytest.mark.parametrize("which", ["lazy", "unlazy"])
def test_policy(card, device, facts, which):
    prof = profiles.probe(device)
    prof.init()
    with DeviceIrq(device) as intx:
        irq = policy.set_policy(card["bdf"], which)  # after request_irq, which resets it
        assert policy.states()[irq] == which
        res = cycles.run(prof, intx, N, timeout=0.5)
        if _stalls(facts, which):
            assert res.delivered == 1, f"expected a stall after exactly one interrupt: {res}"
            # An extra unmask never reaches the controller: still stuck.
            prof.raise_irq()
            intx.unmask()
            assert intx.trigger.wait(0.5) == 0
            prof.ack()
        else:
            assert res.lost == 0, str(res)
        prof.quiesce()
