"""A lab's own card tests, written as a user of pyvfio's pytest plugin writes them
(pyvfio/pytest_plugin.py): the card comes from PYVFIO_BDF (tests/lab/conftest.py
names the boot's edu, as a user's CI job would), the fixtures open it, arm its
INTx and measure it.  Run in the lab's batches with `-p pyvfio.pytest_plugin` (the
guest runs pyvfio from its source, where the entry point is not installed)."""

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.vfio_card(profile="edu")]


def test_the_card_is_the_one_named(vfio_card):
    assert vfio_card.profile.name == "edu"
    assert vfio_card.device.irq_info(0).count == 1     # one INTx line


def test_twenty_round_trips(intx):
    causes = [intx.roundtrip() for _ in range(20)]
    assert all(causes), causes


# every batch boot's kernel delivers them all with its own masking policy (6.12 has
# the unlazy fix; 6.1's IO-APIC re-delivers); a batch skips nothing, so no
# nointxmask= here: the marker's skip was seen by hand in a nointxmask=1 boot
def test_the_c_engine_delivers_every_interrupt(measure):
    result = measure(loops=200, engine="c")
    assert result["verdict"] == "ok" and result["counts"]["delivered"] == 200
    assert 0 < result["latency"]["round_trip"]["p50_us"] <= result["latency"]["round_trip"]["p99_us"]
