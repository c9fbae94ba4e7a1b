"""The read-only commands against a real vfio-pci card: list, info (regions and
IRQs through VFIO), doctor (the controller, the unlazy fix, and each prediction
against what the kernel then does)."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab


def pyvfio(*args):
    p = subprocess.run([sys.executable, "-m", "pyvfio", *args], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


@pytest.fixture(scope="module")
def listing():
    """One `pyvfio list` for every card (a process costs seconds in a TCG guest)."""
    p = pyvfio("list", "--json", "-")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["devices"]


def test_list_shows_the_card_bound_to_vfio_pci(card, listing):
    dev = next(d for d in listing if d["bdf"] == card["bdf"])
    assert dev["driver"] == "vfio-pci" and dev["iommu_group"] == card["group"]
    assert dev["interrupt_pin"] == 1  # pin A


def test_info_reads_regions_and_irqs_through_vfio(card):
    p = pyvfio("info", card["bdf"], "--json", "-", "--require-vfio")
    assert p.returncode == 0, p.stderr
    v = json.loads(p.stdout)["vfio"]
    assert v["available"] and not v["error"]
    regions = {r["name"]: r for r in v["regions"]}
    assert regions["config"]["size"] >= 256 and regions["BAR0"]["size"] > 0
    intx = next(i for i in v["irqs"] if i["name"] == "INTx")
    assert intx["count"] == 1 and {"eventfd", "maskable", "automasked"} <= set(intx["flags"])


def test_doctors_predictions_hold(card, facts):
    """doctor's word for this card (the controller, the unlazy fix), then the kernel's
    deed: the IRQ vfio-pci requests, where it masks, whether the line is granted, and
    whether INTx keeps delivering."""
    from pyvfio import profiles
    from pyvfio.errors import VfioError
    from pyvfio.host import interrupts, pci
    from pyvfio.intx import DeviceIrq
    from pyvfio.vfio import open_device

    from . import cycles

    d = json.loads(pyvfio("doctor", card["bdf"], "--json", "-").stdout)
    checks = {c["name"]: c for c in d["checks"]}
    want = {"xive": "xive", "xics": "xics", "ioapic": "io-apic"}[facts["ic"]]
    assert want in json.dumps(checks["irq_controller"]).lower()
    assert checks["unlazy_fix"]["status"] in ("ok", "warn")
    assert checks["irq_route"]["status"] == "ok", checks["irq_route"]   # known: sysfs or asked
    irq = d["facts"]["irq_route"]["irq"]
    with open_device(card["bdf"]) as dev:
        prof = profiles.probe(dev)
        prof.init()
        intx = DeviceIrq(dev)
        try:
            if checks["irq_exclusive"]["status"] == "fail":
                with pytest.raises(VfioError) as exc:
                    intx.enable()
                assert exc.value.errno == 16    # EBUSY
                return
            with intx:
                assert interrupts.intx_line(card["bdf"]).irq == irq
                intx.mask()
                on_card = pci.device(card["bdf"]).config.disintx
                intx.unmask()
                assert on_card is (d["facts"]["masking"] == "device")
                res = cycles.run(prof, intx, 20, timeout=0.5)
                prof.quiesce()
        finally:
            intx.close()
    if checks["stall_prediction"]["status"] == "fail":
        assert res.delivered == 1, str(res)
    else:
        assert res.lost == 0, str(res)
