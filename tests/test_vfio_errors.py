"""Bad input to the VFIO layer and `pyvfio run`: one line, the fix, exit != 0, no
traceback.  Uses fabricated sysfs trees; nothing here touches a real device."""

import os
import subprocess
import sys

import pytest

from pyvfio.errors import UsageError, VfioError
from pyvfio.vfio import open_device
from pyvfio.vfio.container import Container

from fixtures.fakehost import FakeHost


def fake_device(root, bdf="0000:00:04.0", driver="vfio-pci", group=5):
    FakeHost(root).add_device(bdf, driver=driver, group=group)
    return bdf


def test_no_dev_vfio(tmp_path):
    bdf = fake_device(tmp_path)
    with pytest.raises(VfioError, match="no /dev/vfio/vfio.*modprobe vfio-pci"):
        open_device(bdf, root=str(tmp_path))


def test_not_bound_to_vfio_pci(tmp_path):
    bdf = fake_device(tmp_path, driver="e1000")
    with pytest.raises(UsageError, match="bound to e1000, not vfio-pci: bind it first: pyvfio bind"):
        open_device(bdf, root=str(tmp_path))


def test_no_iommu_group(tmp_path):
    bdf = fake_device(tmp_path, group=None)
    with pytest.raises(VfioError, match="has no IOMMU group.*intel_iommu=on"):
        open_device(bdf, root=str(tmp_path))


def test_missing_device_and_malformed_address(tmp_path):
    fake_device(tmp_path)
    with pytest.raises(UsageError, match="no PCI device 0000:00:09.0"):
        open_device("0000:00:09.0", root=str(tmp_path))
    with pytest.raises(UsageError, match="malformed PCI address"):
        open_device("00:zz.0", root=str(tmp_path))


def test_container_needs_a_char_device(tmp_path):
    with pytest.raises(VfioError, match="no /dev/vfio/vfio"):
        Container(str(tmp_path / "vfio"))


def test_no_permission_on_the_group(tmp_path, monkeypatch):
    """As root the kernel never says EACCES here, so the message is checked by
    making open(2) say it."""
    from pyvfio.vfio.group import Group
    (tmp_path / "5").touch()
    real_open = os.open

    def denied(path, *a, **kw):
        if path.endswith("/5"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **kw)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(VfioError, match=r"open .*/5 failed: Permission denied.*run as root or give your user access"):
        Group(5, str(tmp_path))


def pyvfio(*args):
    return subprocess.run([sys.executable, "-m", "pyvfio", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args,msg", [
    (["run", "00:zz.0"], "malformed PCI address"),
    (["run", "0000:7f:1f.7"], "no PCI device"),
    (["run", "0000:00:00.0", "-l", "0"], "loop count 0 is out of range"),
    (["run", "0000:00:00.0", "-i", "-5"], "interval -5 us is out of range"),
    (["run", "0000:00:00.0", "-p", "120", "-q"], "priority 120 is out of range"),
])
def test_run_bad_input_is_one_line(args, msg):
    p = pyvfio(*args)
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if not line.startswith("pyvfio: warning")]
    assert len(lines) == 1 and msg in lines[0] and "Traceback" not in p.stderr
