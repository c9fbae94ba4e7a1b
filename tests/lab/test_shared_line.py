"""A vfio card and a host-driven NIC on one INTx line (pyvfio lab --host-card e1000:
q35 puts the e1000 four slots after the card, on the same PIRQ).  With the NIC's
interface up its driver holds the line: under nointxmask=0 vfio-pci shares it
(DisINTx masking) and INTx delivers; under nointxmask=1 it needs the line alone,
doctor predicts EBUSY naming the holder, and `pyvfio run` fails in one line.
Collected only in lab boots with a host card (tests/lab/conftest.py)."""
import json
import subprocess
import sys

import pytest

from pyvfio import profiles
from pyvfio.host import interrupts, inuse, pci
from pyvfio.intx import DeviceIrq
from pyvfio.vfio import open_device

from . import cycles

pytestmark = pytest.mark.lab
IFF_UP = 0x1


def pyvfio(*args):
    p = subprocess.run([sys.executable, "-m", "pyvfio", *args], capture_output=True, text=True,
                       timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def _set_up(ifname, up):
    path = f"/sys/class/net/{ifname}/flags"
    with open(path) as f:
        flags = int(f.read(), 16)
    with open(path, "w") as f:
        f.write(hex(flags | IFF_UP if up else flags & ~IFF_UP))


@pytest.fixture
def shared(facts):
    """(vfio card, host card, its interface) with the interface up for the test."""
    host = facts["host_cards"][0]
    card = facts["bound"][host["shares_line_of"]]
    assert pci.device(host["bdf"]).driver == host["driver"]
    (ifname,) = inuse.class_members("net", pci.device_dir(host["bdf"]), "/")
    _set_up(ifname, True)
    try:
        yield card, host, ifname
    finally:
        _set_up(ifname, False)


def _holders(ifname):
    return [line for line in interrupts.read().values() if ifname in line.actions]


def test_doctor_sees_the_line_the_kernel_will_route(shared, facts):
    card, host, ifname = shared
    (nic_line,) = _holders(ifname)            # e1000 requests its IRQ when the interface goes up
    p = pyvfio("doctor", card["bdf"], "--json", "-")
    d = json.loads(p.stdout)
    checks = {c["name"]: c for c in d["checks"]}
    assert d["facts"]["irq_route"]["irq"] == nic_line.irq, checks["irq_route"]
    excl = checks["irq_exclusive"]
    if facts["nointxmask"]:
        assert p.returncode == 1 and excl["status"] == "fail", excl
        assert "EBUSY" in excl["summary"] and f"{ifname} hold(s) it" in excl["summary"], excl
        assert f"{host['bdf']} ({host['driver']})" in excl["evidence"], excl
        assert f"echo {host['bdf']} > /sys/bus/pci/drivers/{host['driver']}/unbind" in excl["fix"]
    else:
        assert d["facts"]["masking"] == "device", d["facts"]
        assert excl["status"] == "ok" and f"shared with {ifname}" in excl["summary"], excl
    # list and info show the routed IRQ too
    (listed,) = [x for x in pyvfio("list").stdout.splitlines() if x.startswith(card["bdf"] + " ")]
    assert f"pin A routed to IRQ {nic_line.irq};" in listed, listed
    info = json.loads(pyvfio("info", card["bdf"], "--json", "-").stdout)["host"]
    assert info["irq_route"]["irq"] == nic_line.irq and info["irq_shared_with"] == [ifname]


def test_the_kernel_does_what_doctor_said(shared, facts):
    card, host, ifname = shared
    run = pyvfio("run", card["bdf"], "-l", "200", "-q")
    if facts["nointxmask"]:
        lines = run.stderr.strip().splitlines()   # one line: no warning before the refusal
        assert run.returncode != 0 and len(lines) == 1 and lines[0].startswith("pyvfio: error:"), run.stderr
        assert "EBUSY" in lines[0] and f"shared with {ifname}" in lines[0], lines[0]
        return
    assert run.returncode == 0, run.stderr
    # DisINTx sharing: both handlers on the line, and every interrupt delivered
    with open_device(card["bdf"]) as dev:
        prof = profiles.probe(dev)
        prof.init()
        with DeviceIrq(dev) as intx:
            line = interrupts.intx_line(card["bdf"])
            assert ifname in line.actions and interrupts.vfio_intx_name(card["bdf"]) in line.actions
            res = cycles.run(prof, intx, 50)
            prof.quiesce()
    assert res.lost == 0, str(res)
