"""doctor knows where it runs: bare metal or a VM, on x86 and POWER (host/virt.py);
in a VM the IOMMU advice is a vIOMMU or noiommu mode, not firmware; checks that do not
apply say n/a; where VFIO cannot run it names what can; doctor BDF names the host's
use of the card.  Fabricated hosts only (tests/fixtures/fakehost.py)."""

import json
import os

import pytest

from pyvfio import doctor
from pyvfio.cli import main
from pyvfio.host import virt
from tests.fixtures.fakehost import FakeHost

X86_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep"


def no_kvm(root, machine):
    return False, "/dev/kvm does not exist"


def check(d, name):
    found = [c for c in d.checks if c.name == name]
    assert found, f"no check {name}: {[c.name for c in d.checks]}"
    return found[0]


def x86(tmp_path, vm):
    h = FakeHost(tmp_path)
    h.write("proc/cpuinfo", f"processor\t: 0\nflags\t\t: {X86_FLAGS}{' hypervisor' if vm else ''}\n")
    if vm:
        h.write("sys/class/dmi/id/sys_vendor", "QEMU\n")
        h.write("sys/class/dmi/id/product_name", "Standard PC (Q35 + ICH9, 2009)\n")
    else:
        h.write("sys/class/dmi/id/sys_vendor", "Dell Inc.\n")
        h.write("sys/class/dmi/id/product_name", "PowerEdge R650\n")
    return h


def power(tmp_path, vm):
    h = FakeHost(tmp_path)
    h.write("proc/sys/kernel/arch", "ppc64le\n")
    if vm:
        h.write("proc/cpuinfo", "processor\t: 0\ncpu\t\t: POWER9 (architected)\n\n"
                "platform\t: pSeries\nmodel\t\t: IBM pSeries (emulated by qemu)\n")
        h.write("proc/powerpc/lparcfg", "lparcfg 1.9\n")
    else:
        h.write("proc/cpuinfo", "processor\t: 0\ncpu\t\t: POWER9, altivec supported\n\n"
                "platform\t: PowerNV\nmodel\t\t: 9006-22P\n")
    return h


@pytest.mark.parametrize("make, vm, vmm", [(x86, False, None), (x86, True, "QEMU"),
                                           (power, False, None), (power, True, "QEMU")],
                         ids=["x86-metal", "x86-vm", "power-metal", "power-vm"])
def test_the_platform_is_read_from_its_signs(tmp_path, make, vm, vmm):
    p = virt.probe(make(tmp_path, vm).root)
    assert (p.vm, p.vmm) == (vm, vmm), p
    assert p.evidence


def test_virtio_alone_says_vm_and_nothing_to_read_says_unknown(tmp_path):
    h = FakeHost(tmp_path)
    assert virt.probe(h.root).vm is None
    h.add_device("0000:00:02.0", 0x1AF4, 0x1041)
    p = virt.probe(h.root)
    assert p.vm is True and "1af4" in p.evidence[0]


def test_x86_metal_without_iommu_is_sent_to_firmware(tmp_path):
    d = doctor.diagnose(None, x86(tmp_path, False).root, kvm_probe=no_kvm)
    assert check(d, "platform").summary == "bare metal"
    fix = check(d, "iommu").fix
    assert "firmware" in fix and "vIOMMU" not in fix and "noiommu" not in fix


def test_x86_vm_without_iommu_is_sent_to_the_vmm_or_noiommu(tmp_path):
    d = doctor.diagnose(None, x86(tmp_path, True).root, kvm_probe=no_kvm)
    assert check(d, "platform").summary.startswith("a virtual machine (QEMU)")
    c = check(d, "iommu")
    assert c.status == "fail"
    assert "intel-iommu,intremap=on" in c.fix and "virtio-iommu" in c.fix
    assert "enable_unsafe_noiommu_mode=1" in c.fix and "taint" in c.fix
    assert "firmware's" in c.fix and "enable VT-d" not in c.fix
    # without an IOMMU, remapping and iommufd do not apply: n/a, not ok
    assert check(d, "interrupt_remapping").status == "n/a"
    assert check(d, "iommufd").status == "n/a"


def test_x86_vm_without_remapping_is_told_intremap_on_the_viommu(tmp_path):
    h = x86(tmp_path, True)
    os.makedirs(h.p("sys/class/iommu/dmar0"))
    h.write("proc/interrupts", "           CPU0\n 11:  5  IO-APIC 11-fasteoi  uhci\n")
    c = check(doctor.diagnose(None, h.root, kvm_probe=no_kvm), "interrupt_remapping")
    assert c.status == "fail" and "vIOMMU" in c.fix and "intremap=on" in c.fix


def test_noiommu_mode_on_is_a_warning_not_no_iommu(tmp_path):
    h = x86(tmp_path, True)
    h.write("sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n")
    d = doctor.diagnose(None, h.root, kvm_probe=no_kvm)
    c = check(d, "iommu")
    assert c.status == "warn" and "noiommu" in c.summary and "tainted" in c.summary
    assert "without_vfio" not in d.facts


@pytest.mark.parametrize("vm", [False, True], ids=["power-metal", "power-vm"])
def test_power_without_iommu(tmp_path, vm):
    d = doctor.diagnose(None, power(tmp_path, vm).root, kvm_probe=no_kvm)
    c = check(d, "iommu")
    assert c.status == "fail" and "powerpc IOMMU" in c.fix
    assert ("sPAPR" in c.fix and "noiommu" in c.fix) is vm
    assert check(d, "platform").summary.startswith("a virtual machine" if vm else "bare metal")


def test_where_vfio_cannot_run_doctor_says_what_can(tmp_path, monkeypatch, capsys):
    h = x86(tmp_path, True)
    monkeypatch.setenv("PYVFIO_SYSROOT", h.root)
    assert main(["doctor"]) == 1
    captured = capsys.readouterr()
    assert "VFIO cannot run on this host" in captured.out
    assert "pyvfio repro --model" in captured.out and "pyvfio lab ARCH" in captured.out
    assert "repro --model" in captured.err.strip().splitlines()[-1]
    assert main(["doctor", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["facts"]["platform"]["vm"] is True
    assert [w["command"] for w in data["facts"]["without_vfio"]["what_runs"]] == [
        "pyvfio repro --model", "pyvfio lab ARCH"]


def test_a_host_with_vfio_has_no_without_vfio_line(tmp_path):
    h = x86(tmp_path, False)
    os.makedirs(h.p("sys/class/iommu/dmar0"))
    h.add_driver("vfio-pci")
    d = doctor.diagnose(None, h.root, kvm_probe=no_kvm)
    assert "without_vfio" not in d.facts
    assert check(d, "nointxmask").status == "ok"
    assert "VFIO cannot run" not in doctor.render(d)


def test_doctor_bdf_names_the_root_disk_and_an_interface_that_is_up(tmp_path):
    h = x86(tmp_path, False)
    h.add_device("0000:00:1f.2", 0x8086, 0x2922, 0x010601, driver="ahci", group=4)
    h.add_block("0000:00:1f.2", "sda", "8:0", partitions=[("sda1", "8:1")])
    h.mount("8:1", "/")
    h.add_device("0000:00:19.0", 0x8086, 0x10D3, driver="e1000e", group=5)
    h.add_net("0000:00:19.0", "eno1", up=True, default_route=True)
    h.add_device("0000:02:00.0", 0x10EC, 0x8139, driver="8139too", group=6)
    h.add_device("0000:03:00.0", 0x10EC, 0x8139, driver="vfio-pci", group=7)
    disk = doctor.diagnose("00:1f.2", h.root, kvm_probe=no_kvm)
    use = check(disk, "host_use")
    assert use.status == "fail" and "sda1" in use.summary and "mounted on /" in use.summary
    assert "spare card" in check(disk, "driver").fix
    use = check(doctor.diagnose("00:19.0", h.root, kvm_probe=no_kvm), "host_use")
    assert use.status == "fail" and "eno1 is up" in use.summary
    spare = doctor.diagnose("02:00.0", h.root, kvm_probe=no_kvm)
    assert check(spare, "host_use").status == "ok"
    assert check(spare, "driver").fix == "pyvfio bind 0000:02:00.0"
    assert check(spare, "group_access").status == "n/a"
    assert check(doctor.diagnose("03:00.0", h.root, kvm_probe=no_kvm), "host_use").status == "n/a"


def test_all_n_a_is_not_a_warning():
    d = doctor.Diagnosis(None, None, [doctor.Check("a", doctor.NA, "x"),
                                      doctor.Check("b", doctor.OK, "y")])
    assert d.status == "ok"
    d.checks.append(doctor.Check("c", doctor.WARN, "z"))
    assert d.status == "warn"
