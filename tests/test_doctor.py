"""pyvfio doctor on fabricated hosts: the unlazy fix from a module's imports (plain,
.xz, .zst) or the version, the controller, the EBUSY prediction, the XIVE stall
prediction, and the refusal on a host without /dev/vfio."""

import lzma
import os
import shutil
import struct
import subprocess

import pytest

from pyvfio.checkout import CHECKOUT
from pyvfio import doctor, unlazy_fix
from pyvfio.cli import main
from pyvfio.host import system
from tests.fixtures.fakehost import FakeHost

X86_IOAPIC = """\
           CPU0       CPU1
  0:         46          0   IO-APIC   2-edge      timer
 11:      20001      19873   IR-IO-APIC  11-fasteoi   vfio-intx(0000:00:03.0)
 16:        512          0   IR-IO-APIC  16-fasteoi   ehci_hcd:usb1
 24:          0          0   IR-PCI-MSI 49152-edge      ahci[0000:00:1f.2]
"""
POWER_XIVE = """\
           CPU0
 16:       1404  XIVE-IPI   0 Edge      IPI-0
 21:          4  XIVE-IRQ 4101 Level     hvc_console
 22:          1  XIVE-IRQ 4609 Level     vfio-intx(0001:00:01.0)
"""


def elf(symbols):
    """A minimal ELF64 LE relocatable whose .symtab holds `symbols`: (name, defined)."""
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n, _ in symbols)
    syms, pos = [bytes(24)], 1
    for name, defined in symbols:
        syms.append(struct.pack("<IBBHQQ", pos, 0x10, 0, 1 if defined else 0, 0, 0))
        pos += len(name) + 1
    symtab = b"".join(syms)
    shstr = b"\0.strtab\0.symtab\0.shstrtab\0"
    body = strtab + symtab + shstr
    o_str, o_sym, o_shs = 64, 64 + len(strtab), 64 + len(strtab) + len(symtab)
    shoff = 64 + len(body)
    sh = bytes(64)
    sh += struct.pack("<IIQQQQIIQQ", 1, 3, 0, 0, o_str, len(strtab), 0, 0, 1, 0)
    sh += struct.pack("<IIQQQQIIQQ", 9, 2, 0, 0, o_sym, len(symtab), 1, 1, 8, 24)
    sh += struct.pack("<IIQQQQIIQQ", 17, 3, 0, 0, o_shs, len(shstr), 0, 0, 1, 0)
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 4, 3)
    return hdr + body + sh


FIXED = [("irq_modify_status", False), ("request_threaded_irq", False), ("vfio_pci_core_init", True)]
UNFIXED = [("request_threaded_irq", False), ("disable_irq_nosync", False), ("vfio_pci_core_init", True)]


def put_module(h, release, symbols, suffix=".ko"):
    data = elf(symbols)
    rel = f"lib/modules/{release}/kernel/drivers/vfio/pci/vfio-pci-core{suffix}"
    path = h.p(rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if suffix == ".ko.xz":
        data = lzma.compress(data, format=lzma.FORMAT_XZ)
    if suffix == ".ko.zst":
        data = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    with open(path, "wb") as f:
        f.write(data)
    h.write(f"lib/modules/{release}/modules.dep",
            f"kernel/drivers/vfio/pci/vfio-pci-core{suffix}: kernel/drivers/vfio/vfio.ko\n")


def host(tmp_path, release, arch="x86_64", interrupts=X86_IOAPIC, vfio=True, nointxmask="N"):
    h = FakeHost(tmp_path)
    h.write("proc/sys/kernel/osrelease", release + "\n")
    h.write("proc/sys/kernel/arch", arch + "\n")
    h.write("proc/interrupts", interrupts)
    h.write("proc/modules", "vfio_pci 16384 0 - Live 0x0\n")
    os.makedirs(h.p("sys/class/iommu/dmar0"))
    if vfio:
        h.add_driver("vfio-pci")
        h.write("sys/module/vfio_pci/parameters/nointxmask", nointxmask + "\n")
        h.write("dev/vfio/vfio", "")
    return h


def no_kvm(root, machine):
    return False, "/dev/kvm does not exist"


def kvm_yes(root, machine):
    return True, "KVM_CHECK_EXTENSION returned 1"


def check(d, name):
    found = [c for c in d.checks if c.name == name]
    assert found, f"no check {name}: {[c.name for c in d.checks]}"
    return found[0]


# -- the unlazy fix ---------------------------------------------------------------------

def test_module_symbols_decide_and_a_defined_symbol_is_not_an_import():
    assert "irq_modify_status" in unlazy_fix.undefined_symbols(elf(FIXED))
    assert "vfio_pci_core_init" not in unlazy_fix.undefined_symbols(elf(FIXED))
    assert "irq_modify_status" not in unlazy_fix.undefined_symbols(
        elf([("irq_modify_status", True)]))


@pytest.mark.parametrize("suffix", [".ko", ".ko.xz", ".ko.zst"])
def test_fix_found_in_plain_xz_and_zst_modules(tmp_path, suffix):
    if suffix == ".ko.zst" and not shutil.which("zstd"):
        pytest.skip("no zstd tool to make the fixture")
    h = host(tmp_path, "6.12.95+deb12-amd64")
    put_module(h, "6.12.95+deb12-amd64", FIXED, suffix)
    f = unlazy_fix.detect("6.12.95+deb12-amd64", h.root)
    assert (f.present, f.basis) == (True, "module-symbols")
    assert f.module.endswith("vfio-pci-core" + suffix)


def test_x86_61_module_without_the_symbol_lacks_the_fix(tmp_path):
    h = host(tmp_path, "6.1.0-37-amd64")
    put_module(h, "6.1.0-37-amd64", UNFIXED)
    h.add_device("0000:00:03.0", 0x10EC, 0x8139, driver="vfio-pci", group=3, irq=11)
    h.write("dev/vfio/3", "")
    d = doctor.diagnose("00:03.0", h.root, kvm_probe=no_kvm)
    c = check(d, "unlazy_fix")
    assert c.status == "warn" and "lacks" in c.summary and "does not import" in c.evidence
    assert d.facts["unlazy_fix"]["basis"] == "module-symbols"
    # DisINTx- (rtl8139 with DisINTx- INTx- now) on an IO-APIC: delivers, spuriously
    assert check(d, "disintx").status == "warn"
    assert d.facts["masking"] == "controller" and d.facts["controller"] == "IR-IO-APIC"
    assert check(d, "stall_prediction").status == "ok"
    assert "spurious" in check(d, "stall_prediction").summary
    assert check(d, "irq_exclusive").status == "ok"
    assert check(d, "interrupt_remapping").status == "ok"
    assert d.status == "warn" and not d.failures


def test_the_version_decides_when_there_is_no_module():
    assert unlazy_fix.by_version("6.18.2").present is True
    assert unlazy_fix.by_version("6.12.95+deb12-amd64").present is True
    assert unlazy_fix.by_version("6.12.30+deb12-amd64").present is None
    assert unlazy_fix.by_version("6.1.0-37-amd64").present is False
    assert unlazy_fix.by_version("5.15.0").present is None
    assert unlazy_fix.by_version("weird").present is None


def test_fallback_says_why_the_module_was_not_read(tmp_path):
    h = host(tmp_path, "6.12.95+deb12-amd64")
    f = unlazy_fix.detect("6.12.95+deb12-amd64", h.root)
    assert (f.present, f.basis) == (True, "kernel-version")
    assert "/lib/modules/6.12.95+deb12-amd64 does not exist" in f.evidence


def test_builtin_vfio_pci_falls_back_to_the_version(tmp_path):
    h = host(tmp_path, "6.1.0-37-amd64")
    h.write("lib/modules/6.1.0-37-amd64/modules.builtin", "kernel/drivers/vfio/pci/vfio-pci-core.ko\n")
    f = unlazy_fix.detect("6.1.0-37-amd64", h.root)
    assert f.basis == "kernel-version" and "built into the kernel" in f.evidence


# -- POWER: the stall -----------------------------------------------------------------

def test_power_xive_without_the_fix_predicts_the_stall(tmp_path):
    h = host(tmp_path, "6.12.30+deb12-powerpc64le", arch="ppc64le", interrupts=POWER_XIVE)
    put_module(h, "6.12.30+deb12-powerpc64le", UNFIXED, ".ko.xz")
    h.add_device("0001:00:01.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=0, irq=22)
    h.write("dev/vfio/0", "")
    d = doctor.diagnose("0001:00:01.0", h.root, kvm_probe=no_kvm)
    assert d.facts["controller"] == "XIVE"
    stall = check(d, "stall_prediction")
    assert stall.status == "fail" and "stall after one interrupt" in stall.summary
    assert "8b9f128947dd" in stall.fix
    assert check(d, "iommu").summary.startswith("sPAPR TCE")
    assert check(d, "interrupt_remapping").status == "n/a"   # type1's rule: x86 only
    # why no resampler there: KVM's answer on POWER, from arch/powerpc/kvm/powerpc.c
    assert "!xive_enabled()" in check(d, "kvm_irqfd_resample").evidence


def test_power_xive_with_the_fix_delivers(tmp_path):
    h = host(tmp_path, "6.12.30+deb12-powerpc64le", arch="ppc64le", interrupts=POWER_XIVE)
    put_module(h, "6.12.30+deb12-powerpc64le", FIXED, ".ko.xz")
    h.add_device("0001:00:01.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=0, irq=22)
    h.write("dev/vfio/0", "")
    d = doctor.diagnose("0001:00:01.0", h.root, kvm_probe=no_kvm)
    assert check(d, "stall_prediction").status == "ok"
    assert check(d, "unlazy_fix").status == "ok"


def test_a_2_3_card_needs_no_fix(tmp_path):
    h = host(tmp_path, "6.12.30+deb12-powerpc64le", arch="ppc64le", interrupts=POWER_XIVE)
    put_module(h, "6.12.30+deb12-powerpc64le", UNFIXED)
    # DisINTx+ now: the bit is implemented, vfio masks at the card
    h.add_device("0001:00:01.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=0, irq=22,
                 command=0x0407)
    h.write("dev/vfio/0", "")
    d = doctor.diagnose("0001:00:01.0", h.root, kvm_probe=no_kvm)
    assert d.facts["masking"] == "device"
    assert check(d, "stall_prediction").status == "n/a"     # masked at the card: no stall to predict


# -- shared lines: EBUSY ----------------------------------------------------------------

def test_shared_line_under_nointxmask_predicts_ebusy_and_names_the_driver(tmp_path):
    h = host(tmp_path, "6.12.95+deb12-amd64", nointxmask="Y")
    h.add_device("0000:02:00.0", 0x8086, 0x100E, driver="e1000", group=5, irq=16, command=0x0407)
    h.add_device("0000:00:1d.0", 0x8086, 0x24CD, 0x0C0320, driver="ehci-pci", group=6, irq=16)
    d = doctor.diagnose("0000:02:00.0", h.root, kvm_probe=no_kvm)
    c = check(d, "irq_exclusive")
    assert c.status == "fail" and "EBUSY" in c.summary and "ehci-pci would have to let go" in c.summary
    assert "echo 0000:00:1d.0 > /sys/bus/pci/drivers/ehci-pci/unbind" in c.fix
    assert "ehci_hcd:usb1" in c.evidence
    assert check(d, "driver").fix == "pyvfio bind 0000:02:00.0"


def test_shared_line_is_fine_for_disintx_masking(tmp_path):
    h = host(tmp_path, "6.12.95+deb12-amd64", nointxmask="N")
    h.add_device("0000:02:00.0", 0x8086, 0x100E, driver="vfio-pci", group=5, irq=16, command=0x0407)
    h.add_device("0000:00:1d.0", 0x8086, 0x24CD, 0x0C0320, driver="ehci-pci", group=6, irq=16)
    h.write("dev/vfio/5", "")
    d = doctor.diagnose("0000:02:00.0", h.root, kvm_probe=kvm_yes)
    c = check(d, "irq_exclusive")
    assert c.status == "ok" and "nointxmask=1 it would give EBUSY" in c.summary
    assert d.status == "ok", [x.to_json() for x in d.checks if x.status != "ok"]


def test_the_cards_own_host_driver_does_not_count_as_a_sharer(tmp_path):
    lines = X86_IOAPIC.replace("ehci_hcd:usb1", "eth1")
    h = host(tmp_path, "6.12.95+deb12-amd64", interrupts=lines, nointxmask="Y")
    h.add_device("0000:02:00.0", 0x8086, 0x100E, driver="e1000", group=5, irq=16)
    h.add_net("0000:02:00.0", "eth1")
    d = doctor.diagnose("0000:02:00.0", h.root, kvm_probe=no_kvm)
    assert check(d, "irq_exclusive").status == "ok"


def test_group_not_viable_and_group_node_permissions(tmp_path, monkeypatch):
    h = host(tmp_path, "6.12.95+deb12-amd64")
    h.add_device("0000:02:00.0", 0x10EC, 0x8139, driver="vfio-pci", group=7, irq=10)
    h.add_device("0000:02:00.1", 0x10EC, 0x8139, driver="8139too", group=7, irq=11)
    h.write("dev/vfio/7", "")
    monkeypatch.setattr(os, "access", lambda p, m: not p.endswith("/dev/vfio/7"))
    d = doctor.diagnose("0000:02:00.0", h.root, kvm_probe=no_kvm)
    assert check(d, "iommu_group").fix == "pyvfio bind --group 0000:02:00.0"
    assert check(d, "group_access").status == "fail"


# -- refusal on a host without VFIO ------------------------------------------------------

def test_no_dev_vfio_is_refused_with_reasons_and_no_traceback(tmp_path, monkeypatch, capsys):
    h = host(tmp_path, "6.18.44", vfio=False)
    os.rmdir(h.p("sys/class/iommu/dmar0"))
    monkeypatch.setenv("PYVFIO_SYSROOT", h.root)
    rc = main(["doctor"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "FAIL  iommu" in out and "FAIL  dev_vfio" in out
    assert "fix: it appears with the fixes above" in out
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "iommu, vfio_pci, dev_vfio" in err


def test_json_is_checks_as_data(tmp_path, monkeypatch, capsys):
    import json
    h = host(tmp_path, "6.18.44", vfio=False)
    monkeypatch.setenv("PYVFIO_SYSROOT", h.root)
    assert main(["doctor", "--json", "-"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "doctor" and data["status"] == "fail"
    for c in data["checks"]:
        assert set(c) == {"name", "status", "summary", "evidence", "fix"}
        assert c["status"] in ("ok", "warn", "fail", "n/a")


def test_a_missing_card_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    h = host(tmp_path, "6.18.44")
    monkeypatch.setenv("PYVFIO_SYSROOT", h.root)
    assert main(["doctor", "0000:09:00.0"]) == 2
    assert "no PCI device 0000:09:00.0" in capsys.readouterr().err


def test_kvm_check_extension_number_is_arch_encoded():
    import ioctl_opt
    from pyvfio.uapi import ioc_for_arch
    assert ioc_for_arch(ioctl_opt.IO(0xAE, 0x03), "x86_64") == 0xAE03
    assert ioc_for_arch(ioctl_opt.IO(0xAE, 0x03), "ppc64le") == 0x2000AE03


def test_controller_names():
    assert doctor.controller_of("XIVE-IRQ") == ("xive", "XIVE")
    assert doctor.controller_of("XICS") == ("xics", "XICS")
    assert doctor.controller_of("IR-IO-APIC") == ("ioapic", "IR-IO-APIC")
    assert doctor.controller_of("IO-APIC-level") == ("ioapic", "IO-APIC")


def test_the_policy_modules_live_flag_beats_the_kernel_version(tmp_path):
    h = host(tmp_path, "6.12.95+deb12-powerpc64le", arch="ppc64le", interrupts=POWER_XIVE, nointxmask="Y")
    h.add_device("0001:00:01.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=0, irq=22)
    h.write("dev/vfio/0", "")
    d = doctor.diagnose("0001:00:01.0", h.root, kvm_probe=no_kvm)
    assert check(d, "stall_prediction").status == "ok"        # 6.12.95 has the fix
    h.write("sys/module/pyvfio_policy/parameters/policy", "22 lazy\n")
    d = doctor.diagnose("0001:00:01.0", h.root, kvm_probe=no_kvm)
    stall = check(d, "stall_prediction")
    assert stall.status == "fail" and "IRQ 22 lazy" in stall.evidence
    assert stall.fix == "echo 22 unlazy > /sys/module/pyvfio_policy/parameters/policy"
    assert check(d, "policy_module").summary.endswith("IRQ 22 lazy")
    # before vfio holds the line, a fixed kernel will rewrite the flag at request_irq
    h.write("proc/interrupts", POWER_XIVE.replace("vfio-intx(0001:00:01.0)", "other"))
    d = doctor.diagnose("0001:00:01.0", h.root, kvm_probe=no_kvm)
    assert check(d, "stall_prediction").status == "ok"


def test_driverless_functions_on_the_same_irq_are_mentioned(tmp_path):
    h = host(tmp_path, "6.1.0-37-amd64", nointxmask="Y")
    h.add_device("0000:00:10.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=4, irq=10)
    h.add_device("0000:00:1f.2", 0x8086, 0x2922, 0x010601, group=5, irq=10)
    d = doctor.diagnose("0000:00:10.0", h.root, kvm_probe=no_kvm)
    c = check(d, "irq_exclusive")
    assert c.status == "ok" and "0000:00:1f.2" in c.evidence


@pytest.mark.parametrize("nointxmask", ["N", "Y"])
def test_an_idle_group_mate_on_vfio_pci_is_named_as_sharing_the_line(tmp_path, nointxmask):
    """Two cards behind one PCI bridge: one group, swizzled onto one line; the mate is
    bound to vfio-pci and idle, so it holds nothing yet, but a run on it shares the line."""
    h = host(tmp_path, "6.12.95+deb12-amd64", nointxmask=nointxmask)
    for bdf in ("0000:02:01.0", "0000:02:02.0"):   # PCI 2.3 cards: DisINTx masking with nointxmask=N
        h.add_device(bdf, 0x8086, 0x100E, driver="vfio-pci", group=7, irq=10, command=0x0407)
    d = doctor.diagnose("0000:02:01.0", h.root, kvm_probe=no_kvm)
    c = check(d, "irq_exclusive")
    assert c.status == "ok", c.to_json()
    assert "on vfio-pci with INTx not enabled" in c.evidence and "0000:02:02.0" in c.evidence
    assert ("second request_irq gets EBUSY" in c.evidence) == (nointxmask == "Y")


def test_a_card_without_an_irq_yet_is_a_warning_not_a_guess(tmp_path):
    h = host(tmp_path, "6.12.95+deb12-amd64")
    h.add_device("0000:02:00.0", 0x10EC, 0x8139, driver=None, group=5, irq=0)
    d = doctor.diagnose("0000:02:00.0", h.root, kvm_probe=no_kvm)
    c = check(d, "irq_exclusive")
    assert c.status == "warn" and "no IRQ routed" in c.summary


# -- the real Debian modules, when the lab has fetched the kernels -------------------------

LAB_DEBS = str(CHECKOUT / ".cache" / "lab" / "apt")


def _debs():
    import glob
    return sorted(glob.glob(os.path.join(LAB_DEBS, "*", "archives-kernel", "linux-image-*.deb")))


@pytest.mark.labhost
def test_real_debian_modules_6_1_lacks_and_6_12_carries_the_fix(tmp_path):
    """docs/lab.md, "Kernels": 6.1's vfio-pci-core.ko does not use irq_modify_status; 6.12's does."""
    from test_lab_vms import need_lab
    need_lab("x86_64")   # fetches the kernels (or skips, with the reason, where the lab cannot run)
    need_lab("ppc64le")
    assert _debs(), f"no kernel packages under {LAB_DEBS}"
    seen = {}
    for deb in _debs():
        tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp_path), "--wildcards", "*/vfio-pci-core.ko*"],
                       input=tar, check=True)
    for release in os.listdir(tmp_path / "lib" / "modules"):
        f = unlazy_fix.detect(release, str(tmp_path))
        assert f.basis == "module-symbols", f.evidence
        seen[release] = f.present
    assert seen and all(v == (not k.startswith("6.1.")) for k, v in seen.items()), seen


# -- the IRQ INTx will really get ---------------------------------------------------------

SHARED_GSI = """\
           CPU0
 10:          0   IR-IO-APIC  10-fasteoi   acpi
 22:       4711   IR-IO-APIC  22-fasteoi   eth0
"""


def kernel_says(irq, masking="controller", request_error=None):
    """A probe_intx standing in for the kernel's answers (the live host's is
    intx_probe.probe, which enables the card through VFIO; the lab tests run it)."""
    from pyvfio.host import irq_route
    from pyvfio.vfio import intx_probe

    def probe(dev, root):
        route = irq_route.RoutedIrq(irq, irq_route.LEARNED, 11, f"sysfs irq read {irq} while enabled")
        return intx_probe.Probe(route, None if request_error else masking, request_error,
                                "what the kernel did"), None
    return probe


def test_the_firmwares_irq_is_not_the_one_predicted_from(tmp_path):
    """The user's case: sysfs said IRQ 11 (config 0x3c, never enabled); the card's pin
    is routed to GSI 22, which a NIC whose interface is up holds: EBUSY under
    nointxmask=1, naming the holder."""
    h = host(tmp_path, "6.12.95+deb12-amd64", interrupts=SHARED_GSI, nointxmask="Y")
    h.add_device("0000:00:10.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=4, irq=11, line=11)
    h.add_device("0000:00:14.0", 0x8086, 0x100E, driver="e1000", group=5, irq=22, line=11)
    h.add_net("0000:00:14.0", "eth0")
    h.write("dev/vfio/4", "")
    blind = doctor.diagnose("0000:00:10.0", h.root, kvm_probe=no_kvm)
    assert check(blind, "irq_route").status == "warn" and "firmware's line" in check(blind, "irq_route").summary
    assert check(blind, "irq_exclusive").status == "warn"      # never "IRQ 11 not shared, ready"
    d = doctor.diagnose("0000:00:10.0", h.root, kvm_probe=no_kvm, probe_intx=kernel_says(22))
    assert check(d, "irq_route").summary == "INTx will be IRQ 22 (learned)"
    c = check(d, "irq_exclusive")
    assert c.status == "fail" and "EBUSY predicted" in c.summary and "eth0 hold(s) it" in c.summary
    assert "0000:00:14.0 (e1000)" in c.evidence
    assert "echo 0000:00:14.0 > /sys/bus/pci/drivers/e1000/unbind" in c.fix
    assert d.facts["irq_route"]["irq"] == 22 and d.facts["irq_line"]["actions"] == ["eth0"]


def test_the_kernels_masking_beats_config_space(tmp_path):
    """Config space cannot tell (DisINTx- INTx-, conventional PCI): what vfio-pci did
    when the card's INTx was enabled and masked decides, and so does an EBUSY."""
    h = host(tmp_path, "6.12.95+deb12-amd64", interrupts=SHARED_GSI, nointxmask="N")
    h.add_device("0000:00:10.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=4, irq=11, line=11)
    h.add_device("0000:00:14.0", 0x8086, 0x100E, driver="e1000", group=5, irq=22, line=11)
    h.add_net("0000:00:14.0", "eth0")
    guess = doctor.diagnose("0000:00:10.0", h.root, kvm_probe=no_kvm, probe_intx=kernel_says(22, None))
    assert guess.facts["masking"] == "controller" and check(guess, "disintx").status == "warn"
    d = doctor.diagnose("0000:00:10.0", h.root, kvm_probe=no_kvm, probe_intx=kernel_says(22, "device"))
    assert d.facts["masking"] == "device" and check(d, "disintx").status == "ok"
    assert check(d, "irq_exclusive").status == "ok" and "shared with eth0" in check(d, "irq_exclusive").summary
    d = doctor.diagnose("0000:00:10.0", h.root, kvm_probe=no_kvm, probe_intx=kernel_says(22, request_error="EBUSY"))
    c = check(d, "irq_exclusive")
    assert c.status == "fail" and c.summary.startswith("EBUSY: vfio-pci's request_irq(22) refused")
    assert "eth0 hold(s) it" in c.summary


def test_learning_is_not_tried_when_sysfs_already_knows(tmp_path):
    h = host(tmp_path, "6.12.95+deb12-amd64", interrupts=SHARED_GSI, nointxmask="N")
    h.add_device("0000:00:10.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=4, irq=22,
                 line=11, command=0x0407)

    def never(dev, root):
        raise AssertionError("the card was enabled although sysfs and config space say it all")
    d = doctor.diagnose("0000:00:10.0", h.root, kvm_probe=no_kvm, probe_intx=never)
    assert check(d, "irq_route").summary == "INTx will be IRQ 22 (routed)"
    c = check(d, "irq_exclusive")
    assert c.status == "ok" and "shared with eth0" in c.summary and "nointxmask=1 it would give EBUSY" in c.summary


# -- group viability: the kernel's rule (driver_managed_dma), for doctor and info alike -----

@pytest.mark.parametrize("member, driver, viable", [
    ((0x8086, 0x2922, 0x060100), "pci-stub", True),      # pci-stub sets driver_managed_dma
    ((0x8086, 0x7450, 0x060400), "pcieport", True),      # so does the PCIe port driver
    ((0x8086, 0x244E, 0x060400), None, True),            # a bridge with no driver
    ((0x8086, 0x2918, 0x060100), "lpc_ich", False),      # a bridge is no exception
    ((0x10DE, 0x2204, 0x030000), "mlx5_vfio_pci", True),  # vfio-pci variant drivers
    ((0x8086, 0x100E, 0x020000), "e1000", False),
])
def test_group_viability_follows_driver_managed_dma(tmp_path, member, driver, viable):
    from pyvfio.cli import info_cmd
    h = host(tmp_path, "6.12.95+deb12-amd64")
    h.add_device("0000:02:00.0", 0x10EC, 0x8139, driver="vfio-pci", group=7, irq=16)
    vendor, device, cls = member
    h.add_device("0000:02:00.1", vendor, device, cls, driver=driver, group=7, irq=16,
                 header_type=1 if cls == 0x060400 else 0)
    h.write("dev/vfio/7", "")
    d = doctor.diagnose("0000:02:00.0", h.root, kvm_probe=no_kvm)
    assert (check(d, "iommu_group").status == "ok") is viable
    info, _ = info_cmd.gather("0000:02:00.0", h.root)
    assert info["host"]["group_members"][0]["breaks_viability"] is (not viable)


def test_a_rebuilt_module_loaded_is_named_and_its_file_decides(tmp_path):
    """pyvfio lab --vfio prefix (or a user's own build): /sys/module shows a
    srcversion and taint OE; the shipped file under /lib/modules is not what runs."""
    release = "6.12.95+deb12-amd64"
    h = host(tmp_path, release)
    put_module(h, release, FIXED)
    h.write("sys/module/vfio_pci_core/srcversion", "8E64EF2090B07C2C0FA04D5\n")
    h.write("sys/module/vfio_pci_core/taint", "OE\n")
    f = unlazy_fix.detect(release, h.root)
    assert (f.present, f.basis, f.rebuilt) == (None, "loaded-module", True)
    assert "rebuilt module (srcversion 8E64EF2090B07C2C0FA04D5, taint OE)" in f.evidence
    d = doctor.diagnose(None, h.root, kvm_probe=no_kvm)
    assert check(d, "vfio_pci_rebuilt").status == "warn"
    assert d.facts["unlazy_fix"]["rebuilt"] is True
    # the file of the module loaded (a lab VM knows it): its imports decide
    built = tmp_path / "vfio_pci_core.ko"
    built.write_bytes(elf(UNFIXED))
    f = unlazy_fix.detect(release, h.root, str(built))
    assert (f.present, f.basis, f.rebuilt) == (False, "module-symbols", True)
    assert f.evidence.startswith("the rebuilt ")
    assert system.loaded_module(h.root) == {"module": "vfio-pci-core", "srcversion": "8E64EF2090B07C2C0FA04D5",
                                                "taint": "OE"}


@pytest.mark.parametrize("machine, module, other", [("ppc64le", "kvm_hv", "kvm_intel"),
                                                    ("x86_64", "kvm_intel", "kvm_hv")])
def test_the_kvm_fix_names_the_module_of_this_arch(machine, module, other):
    from types import SimpleNamespace

    from pyvfio.doctor import kvm
    c = kvm.check(SimpleNamespace(machine=machine), "/", lambda root, m: (False, "no KVM_CAP_IRQFD_RESAMPLE"))
    assert module in c.fix and other not in c.fix
