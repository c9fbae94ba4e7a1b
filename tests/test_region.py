"""Region bounds and width checks, on real fds (a file stands in for the device fd:
pread/pwrite and mmap behave the same)."""

import os

import pytest

from pyvfio import uapi
from pyvfio.errors import AccessError
from pyvfio.vfio.region import Region

RW = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE
MMAP = RW | uapi.VFIO_REGION_INFO_FLAG_MMAP


@pytest.fixture
def fd(tmp_path):
    path = tmp_path / "dev"
    path.write_bytes(bytes(range(256)) * 32)  # 8 KiB: region at 4 KiB, 256 bytes long
    fd = os.open(path, os.O_RDWR)
    yield fd
    os.close(fd)


@pytest.mark.parametrize("access", ["rw", "mmap"])
def test_reads_and_writes_inside_the_region(fd, access):
    r = Region(fd, 0, MMAP, 256, 4096, access)
    assert r.read(0, 4) == 0x03020100
    assert r.read(0xFC, 4) == 0xFFFEFDFC
    assert r.read(2, 2) == 0x0302 and r.read(5, 1) == 5 and r.read(8, 8) == 0x0F0E0D0C0B0A0908
    r.write(0x10, 4, 0xDEADBEEF)
    assert r.read(0x10, 4) == 0xDEADBEEF
    assert os.pread(fd, 4, 4096 + 0x10) == (0xDEADBEEF).to_bytes(4, "little")
    r.close()


@pytest.mark.parametrize("access", ["rw", "mmap"])
@pytest.mark.parametrize("offset,width,msg", [
    (0x100, 4, "past the end"), (0xFE, 4, "past the end"), (-4, 4, "past the end"),
    (0, 3, "unsupported access width 3"), (2, 4, "not aligned")])
def test_bad_accesses_are_refused(fd, access, offset, width, msg):
    r = Region(fd, 0, MMAP, 256, 4096, access)
    with pytest.raises(AccessError, match=msg):
        r.read(offset, width)
    with pytest.raises(AccessError, match=msg):
        r.write(offset, width, 0)
    r.close()


def test_io_port_bar_cannot_be_mmapped(fd):
    with pytest.raises(AccessError, match="cannot be mmapped"):
        Region(fd, 0, RW, 256, 4096, "mmap")


def test_read_only_region_refuses_writes(fd):
    r = Region(fd, 7, uapi.VFIO_REGION_INFO_FLAG_READ, 256, 4096, "rw")
    assert r.name == "config"
    with pytest.raises(AccessError, match="not writable"):
        r.write(0, 4, 1)


@pytest.mark.parametrize("access", ["rw", "mmap"])
def test_accessors_are_checked_once_when_made(fd, access):
    r = Region(fd, 0, MMAP, 256, 4096, access)
    write, read = r.accessor(0x20, 4, True), r.accessor(0x20, 4, False)
    write(0x12345678)
    assert read() == 0x12345678 == r.read(0x20, 4)
    with pytest.raises(AccessError, match="past the end"):
        r.accessor(0xFE, 4, False)
    with pytest.raises(AccessError, match="not aligned"):
        r.accessor(0x21, 4, True)
    del write, read
    r.close()
