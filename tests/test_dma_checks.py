"""The checks every DMA map passes before its ioctl (pyvfio/vfio/dma.py check_map);
the maps themselves run through real IOMMUs in tests/lab/test_iommufd_dma.py."""

import pytest

from pyvfio.errors import UsageError
from pyvfio.vfio.dma import DmaBuffer, Mapping, Window, check_map

P = 4096
WINDOWS = [Window(0, 0xfee00000), Window(0xfef00000, 1 << 39)]


@pytest.fixture
def buf():
    with DmaBuffer(4 * P) as b:
        yield b


def test_a_good_map_passes(buf):
    check_map(WINDOWS, P, [], buf, 0, 4 * P, 0x10000)


@pytest.mark.parametrize("offset, size, iova, message", [
    (0, P + 1, 0, "not aligned to the IOMMU page 0x1000"),
    (8, P, 0, "not aligned to the IOMMU page"),
    (0, P, 0x10, "IOVA 0x10 is not aligned"),
    (2 * P, 3 * P, 0, "runs past the 0x4000-byte buffer"),
    (0, 2 * P, 0xfedff000, "IOVA range 0xfedff000-0xfee00fff is outside the device's DMA windows"),
    (0, P, 0x10000 + P, "overlaps the mapping at 0x10000-0x11fff"),
])
def test_bad_maps_are_one_line(buf, offset, size, iova, message):
    live = [Mapping(buf, 0, 2 * P, 0x10000)]
    with pytest.raises(UsageError, match=message) as exc:
        check_map(WINDOWS, P, live, buf, offset, size, iova)
    assert "\n" not in str(exc.value)


def test_buffer_size_must_be_whole_pages():
    with pytest.raises(UsageError, match="not a positive multiple of the page size"):
        DmaBuffer(100)


def test_buffer_bytes_are_its_memory(buf):
    buf.view[:4] = b"\x01\x02\x03\x04"
    assert bytes(buf.view[:4]) == b"\x01\x02\x03\x04" and buf.vaddr % P == 0
