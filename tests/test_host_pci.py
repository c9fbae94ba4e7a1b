"""PCI addresses, enumeration from sysfs, and the host facts (system.py), on
fabricated trees and on this machine's real sysfs (read only)."""

import os

import pytest

from fixtures.fakehost import FakeHost
from pyvfio.errors import UsageError
from pyvfio.host import pci, system


@pytest.mark.parametrize("text,want", [
    ("0000:00:03.0", "0000:00:03.0"),
    ("00:03.0", "0000:00:03.0"),
    ("0001:0A:1F.7", "0001:0a:1f.7"),
    (" 0:3:0.1 ", "0000:03:00.1"),
    ("10000:00:01.0", "10000:00:01.0"),     # VMD domains are five hex digits
])
def test_parse_bdf_accepts_and_normalises(text, want):
    assert pci.parse_bdf(text) == want


@pytest.mark.parametrize("text", ["", "00:03", "0000:00:20.0", "0000:00:03.8", "zz:00.0",
                                  "0000:000:03.0", "00.03.0", "0000:00:03.0x", None])
def test_parse_bdf_rejects_in_one_line(text):
    with pytest.raises(UsageError) as exc:
        pci.parse_bdf(text)
    msg = str(exc.value)
    assert "malformed PCI address" in msg and "DDDD:BB:DD.F" in msg and "\n" not in msg


def test_a_device_that_does_not_exist(tmp_path):
    FakeHost(tmp_path)
    with pytest.raises(UsageError, match="no PCI device 0000:00:09.0 on this host"):
        pci.device("00:09.0", str(tmp_path))


def test_enumeration_on_a_fabricated_tree(tmp_path):
    h = FakeHost(tmp_path)
    h.add_device("0000:00:1e.0", 0x8086, 0x244E, 0x060401, header_type=1, pin=0, group=3)
    h.add_device("0000:02:05.0", 0x10EC, 0x8139, 0x020000, driver="8139too", group=3, irq=18,
                 resources=[(0xE000, 0xE0FF, 0x40101), (0xF4004000, 0xF40040FF, 0x40200)])
    devs = pci.devices(h.root)
    assert [d.bdf for d in devs] == ["0000:00:1e.0", "0000:02:05.0"]
    bridge, card = devs
    assert bridge.is_bridge and not card.is_bridge
    assert (card.vendor, card.device, card.class_name, card.driver) == (
        0x10EC, 0x8139, "Ethernet controller", "8139too")
    assert (card.iommu_group, card.irq, card.interrupt_pin) == (3, 18, 1)
    assert card.enabled is None                         # no sysfs enable in this tree
    assert card.driver_override is None                 # sysfs "(null)"
    assert pci.group_members(3, h.root) == ["0000:00:1e.0", "0000:02:05.0"]
    assert pci.resource_sizes("0000:02:05.0", h.root) == {0: 256, 1: 256}
    j = card.to_json()
    assert j["intx_mask"]["supported"] is None and j["disintx"] is False


def test_real_sysfs_matches_the_files(tmp_path):
    """This machine's devices, read through pci.devices, agree with sysfs itself."""
    base = "/sys/bus/pci/devices"
    if not os.path.isdir(base) or not os.listdir(base):
        pytest.skip("no PCI devices on this host")
    devs = {d.bdf: d for d in pci.devices()}
    assert set(devs) == set(os.listdir(base))
    for bdf, d in devs.items():
        with open(os.path.join(base, bdf, "vendor")) as f:
            assert d.vendor == int(f.read(), 16)
        with open(os.path.join(base, bdf, "device")) as f:
            assert d.device == int(f.read(), 16)
        link = os.path.join(base, bdf, "driver")
        assert d.driver == (os.path.basename(os.readlink(link)) if os.path.islink(link) else None)
        if d.config:
            assert d.config.vendor == d.vendor


def test_system_facts_from_a_tree(tmp_path):
    h = FakeHost(tmp_path)
    s = system.probe(h.root)
    assert (s.kernel, s.machine) == ("6.12.0-test", "x86_64")
    assert s.nointxmask is None and not s.vfio_pci_loaded and not s.dev_vfio
    assert s.cmdline_iommu == ["intel_iommu=on"]
    h.add_driver("vfio-pci")
    h.write("sys/module/vfio_pci/parameters/nointxmask", "Y\n")
    os.makedirs(h.p("dev/vfio"))
    h.write("dev/vfio/vfio", "")
    s = system.probe(h.root)
    assert s.nointxmask is True and s.vfio_pci_loaded and s.dev_vfio and s.vfio_container
    h.write("sys/module/vfio_pci/parameters/nointxmask", "N\n")
    assert system.nointxmask(h.root) is False


def test_vfio_blockers_explain_what_is_missing(tmp_path):
    h = FakeHost(tmp_path)
    h.add_device("0000:02:05.0", driver="8139too")
    dev = pci.device("0000:02:05.0", h.root)
    reasons = [r for r, _ in system.vfio_blockers(system.probe(h.root), dev, h.root)]
    assert reasons == ["no IOMMU: the kernel made no IOMMU groups",
                       "the vfio-pci driver is not loaded",
                       "0000:02:05.0 is bound to 8139too, not vfio-pci",
                       "/dev/vfio does not exist"]
    fixes = dict(system.vfio_blockers(system.probe(h.root), dev, h.root))
    assert "intel_iommu=on" in fixes[reasons[0]]
    assert fixes[reasons[2]] == "pyvfio bind 0000:02:05.0"


def test_no_blockers_when_everything_is_in_place(tmp_path):
    h = FakeHost(tmp_path)
    h.add_driver("vfio-pci")
    h.add_device("0000:02:05.0", driver="vfio-pci", group=4)
    os.makedirs(h.p("dev/vfio"))
    h.write("dev/vfio/vfio", "")
    h.write("dev/vfio/4", "")
    dev = pci.device("0000:02:05.0", h.root)
    assert system.vfio_blockers(system.probe(h.root), dev, h.root) == []


def test_vfio_pci_availability_is_explained(tmp_path):
    h = FakeHost(tmp_path)
    h.add_device("0000:02:05.0", driver="8139too")
    dev = pci.device("0000:02:05.0", h.root)

    def reasons():
        return [r for r, _ in system.vfio_blockers(system.probe(h.root), dev, h.root)]
    assert system.probe(h.root).vfio_pci_module == "module"
    os.unlink(h.p("lib/modules/6.12.0-test/kernel/drivers/vfio/pci/vfio-pci.ko.xz"))
    assert system.probe(h.root).vfio_pci_module == "absent"
    assert "no vfio-pci module for kernel 6.12.0-test" in reasons()
    os.unlink(h.p("proc/modules"))
    assert "this kernel has no vfio-pci and cannot load modules" in reasons()
    h.add_driver("vfio-pci")
    assert system.probe(h.root).vfio_pci_module == "loaded"
    assert not any("vfio-pci" in r and "module" in r for r in reasons())


def test_a_bridge_is_explained_as_not_for_vfio_pci(tmp_path):
    h = FakeHost(tmp_path)
    h.add_device("0000:00:1e.0", 0x8086, 0x244E, 0x060401, header_type=1, pin=0)
    dev = pci.device("0000:00:1e.0", h.root)
    reasons = [r for r, _ in system.vfio_blockers(system.probe(h.root), dev, h.root)]
    assert "0000:00:1e.0 is a bridge (PCI bridge): vfio-pci takes only endpoint functions" in reasons
    assert not any("not vfio-pci" in r for r in reasons)
