"""`pyvfio lab ARCH --card qemu:DEVICE[,PROP=V...]`: a card the user brings, checked
before any boot.  QEMU itself is asked (`-device help`, and a paused machine's
query-pci for the IDs: no guest code runs, about a second), so these tests need
qemu-system-x86_64 and skip without it; the boot itself is the lab's
(tests/lab/test_qemu_cards.py, in the boots of tests/test_lab_vms.py)."""
import os
import shutil
import subprocess
import sys

import pytest

from pyvfio import profiles
from pyvfio.errors import UsageError
from pyvfio.lab import qdevice, qemu
from pyvfio.lab.config import LabConfig

from test_host_cli import one_line_error   # one wording of "one line, no traceback"

QEMU = shutil.which("qemu-system-x86_64")
needs_qemu = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed")


@pytest.mark.parametrize("card, message", [
    ("qemu:", "bad card 'qemu:'"),
    ("qemu:,x=1", "bad card"),
    ("qemu:sdhci-pci,nosuch", "bad property 'nosuch'"),
    ("qemu:sdhci-pci,addr=0x3", "sets 'addr'"),
    ("qemu:sdhci-pci,bus=pcie.0", "sets 'bus'"),
    ("sdhci-pci", "unknown card 'sdhci-pci'.*qemu:DEVICE"),
])
def test_a_card_spec_that_cannot_be_a_device_option_is_refused_before_qemu_is_asked(card, message):
    with pytest.raises(UsageError, match=message):
        LabConfig("x86_64", cards=(card,))


@pytest.mark.parametrize("arch", ["x86_64", "ppc64le"])
def test_a_qemu_card_goes_on_the_cards_bus_verbatim(arch):
    cfg = LabConfig(arch, cards=("edu", "qemu:sdhci-pci,sd-spec-version=3"))
    cmd = " ".join(qemu.machine_args(cfg))
    where = "addr=0x11" if arch == "x86_64" else "bus=phb1.0,addr=0x2"
    assert f"-device sdhci-pci,sd-spec-version=3,{where}" in cmd


@pytest.fixture(scope="module")
def qcache(tmp_path_factory):
    return tmp_path_factory.mktemp("qcache")


@needs_qemu
def test_qemu_names_each_cards_ids_once_and_the_cache_answers_after(qcache, monkeypatch):
    cfg = LabConfig("x86_64", cards=("edu", "qemu:i82559c", "qemu:sdhci-pci"))
    ids = qdevice.resolve(cfg, QEMU, qcache)
    assert ids == {"qemu:i82559c": "8086:1229", "qemu:sdhci-pci": "1b36:0007"}   # edu is ours
    assert cfg.pci_id("edu") == "1234:11e8"

    def no_qemu(*a, **k):
        raise AssertionError("QEMU asked again")
    monkeypatch.setattr(subprocess, "run", no_qemu)
    assert qdevice.resolve(cfg, QEMU, qcache) == ids


@needs_qemu
@pytest.mark.parametrize("card, message", [
    ("qemu:nosuchcard", "qemu-system-x86_64 has no device 'nosuchcard'"),
    ("qemu:isa-serial", "QEMU's 'isa-serial' is not a PCI device"),
    ("qemu:sdhci-pci,nosuchprop=1", "QEMU refused --card qemu:sdhci-pci,nosuchprop=1: .*nosuchprop"),
])
def test_a_device_qemu_does_not_know_or_that_is_not_pci_is_one_line(qcache, card, message):
    with pytest.raises(UsageError, match=message) as exc:
        qdevice.resolve(LabConfig("x86_64", cards=(card,)), QEMU, qcache)
    assert "\n" not in str(exc.value)


@needs_qemu
@pytest.mark.skipif(os.geteuid() != 0, reason="the lab runs as root")
def test_the_lab_command_says_so_in_one_line_before_anything_boots(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pyvfio", "lab", "x86_64", "--card", "qemu:isa-serial", "--",
                        "true"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYVFIO_CACHE=str(tmp_path), PYVFIO_LAB_QUIET="1"))
    assert p.returncode == 2
    one_line_error(p, "not a PCI device", "bus PCI")
    assert not (tmp_path / "lab" / "runs").exists()     # nothing prepared, nothing booted


@pytest.mark.parametrize("pci_id, profile", [("8086:1229", "i8255x"), ("1b36:0007", "sdhci")])
def test_the_builtin_profile_is_found_by_the_ids_qemu_gives(pci_id, profile):
    vendor, device = (int(x, 16) for x in pci_id.split(":"))
    found = [p.name for p in profiles.available().values() if p.accepts(vendor, device)]
    assert found == [profile]
