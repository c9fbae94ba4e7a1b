"""pyvfio on the ppc64le POWER9 XIVE lab machine (Debian's 6.12), installed from the
sdist with pip and run over SSH as a user types it.  With the policy module built
on the machine from the installed headers, the seed shows the stall: its lazy cell
(nointxmask=1) stalls after one interrupt, its unlazy cell delivers."""
import json
import re

import pytest

pytestmark = pytest.mark.labhost


def sh(m, cmd, user=None, timeout=600):
    return m.run(cmd, timeout=timeout, user=user)


def driver(m, bdf):
    return sh(m, f"basename $(readlink /sys/bus/pci/devices/{bdf}/driver) 2>/dev/null").stdout.strip() or None


def test_installed_doctor_sees_xive(machine_ppc):
    m = machine_ppc
    p = sh(m, "pyvfio --version; ls /opt/pyvfio/wheels")
    assert re.search(r"^pyvfio-0\.1\.0-cp311-cp311-linux_ppc64le\.whl$", p.stdout, re.M), p.stdout
    edu = m.cards[0]["bdf"]
    assert edu.startswith("0001:") and m.cards[0]["driver"] is None
    d = json.loads(sh(m, f"pyvfio doctor --json - {edu}").stdout)
    checks = {c["name"]: c for c in d["checks"]}
    assert "XIVE" in checks["irq_controller"]["summary"]
    assert checks["unlazy_fix"]["evidence"].startswith(f"/lib/modules/{m.release}/kernel/drivers/vfio/pci/")
    assert checks["vfio_pci"]["status"] == "fail"      # not loaded on a fresh machine


def test_bind_run_as_a_user_unbind(machine_ppc):
    m = machine_ppc
    edu = m.cards[0]["bdf"]
    assert sh(m, f"pyvfio bind {edu}").returncode == 0
    try:
        assert driver(m, edu) == "vfio-pci"
        p = sh(m, f"cd && pyvfio run {edu} -l 500 -q --json run.json", user="lab")
        assert p.returncode == 0, p.stderr
        r = json.loads(sh(m, "cat run.json", user="lab").stdout)
        assert r["verdict"] == "ok" and r["counts"]["delivered"] == 500
    finally:
        p = sh(m, f"pyvfio unbind {edu}")
    assert p.returncode == 0 and driver(m, edu) is None


def test_repro_seed_lazy_stalls_after_one_unlazy_delivers(machine_ppc):
    m = machine_ppc
    edu = m.cards[0]["bdf"]
    p = sh(m, "cd /tmp && tar xzf /opt/pyvfio/dist/pyvfio-*.tar.gz && make -C /tmp/pyvfio-*/tools/policy "
              "&& insmod /tmp/pyvfio-*/tools/policy/pyvfio_policy.ko", timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert sh(m, f"pyvfio bind {edu}").returncode == 0
    try:
        p = sh(m, f"cd /tmp && pyvfio repro {edu} --scenario seed --json seed.json", timeout=1500)
        assert p.returncode == 0, p.stderr[-3000:]
        assert "reloading vfio-pci with nointxmask=1" in p.stderr
        cells = json.loads(sh(m, "cat /tmp/seed.json").stdout)["cells"]
        assert all(c["match"] for c in cells), [(c["key"], c["verdict"]) for c in cells if not c["match"]]
        by = {(c["key"]["nointxmask"], c["key"]["policy"], c["key"]["unmask"]): c for c in cells}
        lazy, unlazy = by[(1, "lazy", "ioctl")], by[(1, "unlazy", "ioctl")]
        assert lazy["counts"]["delivered"] == 1 and lazy["outcome"]["state"] == "stall", lazy["verdict"]
        assert unlazy["verdict"] == "ok" and unlazy["counts"]["delivered"] == unlazy["counts"]["raised"]
        assert sh(m, "cat /sys/module/vfio_pci/parameters/nointxmask").stdout.strip() == "N"
    finally:
        sh(m, f"pyvfio unbind {edu}; rmmod pyvfio_policy")
    assert driver(m, edu) is None


def test_the_bridge_pair_bind_group_run_unbind(machine_ppc):
    """The two edus behind the PCI bridge on the cards' PHB: one IOMMU group (on
    pseries the PHB's), bound together, a run on one while the others idle."""
    m = machine_ppc
    a, b = [c["bdf"] for c in m.cards if c["bridge"]]
    devs = {d["bdf"]: d for d in json.loads(sh(m, "pyvfio list --all --json -").stdout)["devices"]}
    assert devs[a]["iommu_group"] == devs[b]["iommu_group"] == devs[m.cards[0]["bdf"]]["iommu_group"]
    assert devs[a]["intx_route"]["irq"] == devs[b]["intx_route"]["irq"]
    p = sh(m, f"pyvfio bind --group {a}")
    assert p.returncode == 0, p.stderr
    try:
        assert driver(m, a) == driver(m, b) == "vfio-pci"
        p = sh(m, f"pyvfio run {a} -l 300 -q --json /tmp/a.json")
        assert p.returncode == 0, p.stderr
        r = json.loads(sh(m, "cat /tmp/a.json").stdout)
        assert r["verdict"] == "ok" and r["counts"]["delivered"] == 300
    finally:
        p = sh(m, f"pyvfio unbind {a}")
    assert p.returncode == 0, p.stderr
    assert driver(m, a) is None and driver(m, b) is None and driver(m, m.cards[0]["bdf"]) is None
