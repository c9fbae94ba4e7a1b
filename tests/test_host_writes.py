"""The kernel-facing writes and tools fail in one line that names the errno and the fix."""

import os
import subprocess

import pytest

from pyvfio.errors import PyvfioError
from pyvfio.host import writes


def test_a_missing_tool_is_one_line():
    with pytest.raises(PyvfioError, match="no-such-modprobe is not installed here: install kmod"):
        writes.run(["no-such-modprobe", "-r", "vfio_pci"], "install kmod")


def test_a_write_to_a_vanished_device_names_the_errno(tmp_path):
    with pytest.raises(PyvfioError, match=r"`echo 0000:00:01.0 > .*/unbind` failed: No such file or "
                                          r"directory \(ENOENT\): the device or driver went away"):
        writes.write(str(tmp_path / "gone" / "unbind"), "0000:00:01.0")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
def test_a_read_only_sysfs_says_so(tmp_path):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "none", str(tmp_path)], check=True)
    try:
        with pytest.raises(PyvfioError, match=r"\(EROFS\): /sys is mounted read-only"):
            writes.write(str(tmp_path / "drivers_probe"), "0000:00:01.0")
    finally:
        subprocess.run(["umount", str(tmp_path)], check=True)


def test_a_tool_that_runs_returns_its_status():
    assert writes.run(["sh", "-c", "exit 3"], "install sh").returncode == 3  # not ours: sh's exit 3
