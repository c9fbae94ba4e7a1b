"""Where legacy cards really sit: two conventional PCI cards (edu) behind a
PCIe-to-PCI bridge on the x86_64 machine.  They share one IOMMU group (the bridge's
DMA alias) and one swizzled INTx line; pyvfio list shows it, bind --group binds the
group and unbind restores every member, doctor's routed IRQ for one card is the
line the kernel then gives both, and a run works on one card while its group mate
is bound to vfio-pci and idle."""
import json

import pytest

pytestmark = pytest.mark.labhost


def sh(m, cmd, timeout=300):
    return m.run(cmd, timeout=timeout)


def _pair(m):
    return [c["bdf"] for c in m.cards if c["bridge"]]


def _vfio_intx_irq(m, bdf):
    """The IRQ of vfio-intx(bdf) in /proc/interrupts while a short run holds it."""
    out = sh(m, f"pyvfio run {bdf} -D 8 -q --json /tmp/irq.json >/dev/null 2>&1 & "
                f"for i in $(seq 60); do grep -q 'vfio-intx({bdf})' /proc/interrupts && break; sleep 0.2; done; "
                f"grep 'vfio-intx({bdf})' /proc/interrupts; wait").stdout
    return int(out.split(":")[0]) if out.strip() else None


def test_the_bridge_pair_shares_a_group_and_a_line(machine_x86):
    m = machine_x86
    a, b = _pair(m)
    devs = {d["bdf"]: d for d in json.loads(sh(m, "pyvfio list --all --json -").stdout)["devices"]}
    assert devs[a]["iommu_group"] == devs[b]["iommu_group"] is not None
    group = devs[a]["iommu_group"]
    members = [d for d in devs.values() if d["iommu_group"] == group]
    # the bridge (the DMA alias) is in the group too, and nothing with a host driver
    assert any(d.get("is_bridge") for d in members), members
    assert devs[a]["intx_route"]["irq"] == devs[b]["intx_route"]["irq"]


def test_bind_group_then_unbind_restores_every_member(machine_x86):
    m = machine_x86
    a, b = _pair(m)
    p = sh(m, f"pyvfio bind {a}")
    assert "use --group" not in p.stdout   # the mate has no driver: the group stays viable
    sh(m, f"pyvfio unbind {a}")
    p = sh(m, f"pyvfio bind --group {a}")
    assert p.returncode == 0, p.stderr
    try:
        drivers = {x: sh(m, f"basename $(readlink /sys/bus/pci/devices/{x}/driver)").stdout.strip() for x in (a, b)}
        assert drivers == {a: "vfio-pci", b: "vfio-pci"}
        # doctor: the routed line of a (learned by enabling the idle card) is b's line too
        d = json.loads(sh(m, f"pyvfio doctor --json - {a}").stdout)
        checks = {c["name"]: c for c in d["checks"]}
        assert checks["iommu_group"]["status"] == "ok"
        route = checks["irq_route"]
        assert route["status"] == "ok", route
        predicted = int(route["summary"].split("IRQ ")[1].split()[0])
        # the kernel agrees: vfio-intx of each card lands on that one line
        assert _vfio_intx_irq(m, a) == predicted
        assert _vfio_intx_irq(m, b) == predicted
        # a run on one card while its group mate is bound and idle
        p = sh(m, f"pyvfio run {a} -l 2000 -q --json /tmp/a.json")
        assert p.returncode == 0, p.stderr
        r = json.loads(sh(m, "cat /tmp/a.json").stdout)
        assert r["verdict"] == "ok" and r["counts"]["delivered"] == 2000
    finally:
        p = sh(m, f"pyvfio unbind {b}")
    assert p.returncode == 0, p.stderr
    assert sorted(line.split()[0].rstrip(":") for line in p.stdout.splitlines()[1:3]) == sorted([a, b])
    for x in (a, b):
        assert sh(m, f"ls /sys/bus/pci/devices/{x}/driver").returncode != 0
