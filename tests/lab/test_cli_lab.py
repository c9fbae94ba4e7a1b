"""The read-only commands against a real vfio-pci card: list, info (regions and
IRQs through VFIO), doctor (readiness, the controller, the unlazy fix)."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab


def pyvfio(*args):
    p = subprocess.run([sys.executable, "-m", "pyvfio", *args], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_list_shows_the_card_bound_to_vfio_pci(card):
    p = pyvfio("list", "--json")
    assert p.returncode == 0, p.stderr
    dev = next(d for d in json.loads(p.stdout) if d["bdf"] == card["bdf"])
    assert dev["driver"] == "vfio-pci" and dev["iommu_group"] == card["group"]
    assert dev["interrupt_pin"] == 1  # pin A


def test_info_reads_regions_and_irqs_through_vfio(card):
    p = pyvfio("info", card["bdf"], "--json", "--require-vfio")
    assert p.returncode == 0, p.stderr
    v = json.loads(p.stdout)["vfio"]
    assert v["available"] and not v["error"]
    regions = {r["name"]: r for r in v["regions"]}
    assert regions["config"]["size"] >= 256 and regions["BAR0"]["size"] > 0
    intx = next(i for i in v["irqs"] if i["name"] == "INTx")
    assert intx["count"] == 1 and {"eventfd", "maskable", "automasked"} <= set(intx["flags"])


def test_doctor_names_the_controller_and_the_fix(card, facts):
    p = pyvfio("doctor", card["bdf"], "--json")
    d = json.loads(p.stdout)
    checks = {c["name"]: c for c in d["checks"]}
    want = {"xive": "xive", "xics": "xics", "ioapic": "io-apic"}[facts["ic"]]
    assert want in json.dumps(checks["irq_controller"]).lower()
    assert checks["unlazy_fix"]["status"] in ("ok", "warn")
