"""A card through the real VFIO objects: device info, config space, BARs by mmap
and by pread/pwrite, IRQ info."""
import pytest

from pyvfio import uapi
from pyvfio.errors import AccessError
from pyvfio.lab.config import CARDS

pytestmark = pytest.mark.lab

# A register each card lets us read (and the value it must have), its width, and
# whether its BAR maps (pci-serial has nothing but an I/O BAR).
IDENT = {
    "edu": (0, 0x00, lambda v: v in (0x010000ED, 0xED000001), 4, True),  # native-endian in QEMU
    "e1000": (0, 0x08, lambda v: v not in (0, 0xFFFFFFFF), 4, True),        # STATUS
    "rtl8139": (1, 0x37, None, 1, True),                                    # ChipCmd
    "pci-serial": (0, 0x05, lambda v: v & 0x60 == 0x60, 1, False),          # LSR: THRE, TEMT
}


def test_device_info(card, device):
    assert device.flags & uapi.VFIO_DEVICE_FLAGS_PCI
    assert device.num_regions >= uapi.VFIO_PCI_CONFIG_REGION_INDEX + 1
    assert device.num_irqs >= uapi.VFIO_PCI_INTX_IRQ_INDEX + 1


def test_config_space_ids(card, device):
    want = CARDS[card["card"]][1]
    cfg = device.config
    vendor, dev_id = cfg.read(0, 2), cfg.read(2, 2)
    assert f"{vendor:04x}:{dev_id:04x}" == want
    # The same bytes by a block pread, and the interrupt pin is INTA..INTD.
    raw = cfg.read_bytes(0, 64)
    assert int.from_bytes(raw[0:2], "little") == vendor
    assert 1 <= raw[0x3D] <= 4
    with pytest.raises(AccessError):
        cfg.read(cfg.size, 4)


def test_config_space_cannot_be_mmapped(card, device):
    with pytest.raises(AccessError):
        device.region(uapi.VFIO_PCI_CONFIG_REGION_INDEX, "mmap")


def test_bar_by_mmap_and_by_pread(card, device):
    bar, off, check, width, maps = IDENT[card["card"]]
    by_rw = device.region(bar, "rw").read(off, width)
    if maps:
        assert device.region(bar, "mmap").read(off, width) == by_rw
    if check:
        assert check(by_rw), hex(by_rw)


def test_bar_write_by_mmap_read_by_pwrite(card, device):
    if card["card"] == "edu":   # 0x04: liveness check, reads back the inverse
        m, r = device.region(0, "mmap"), device.region(0, "rw")
        m.write(0x04, 4, 0x12345678)
        assert r.read(0x04, 4) == 0x12345678 ^ 0xFFFFFFFF
        r.write(0x04, 4, 0x0F0F0F0F)
        assert m.read(0x04, 4) == 0xF0F0F0F0
    elif card["card"] == "e1000":  # IMS reads back the causes IMS enabled
        m, r = device.region(0, "mmap"), device.region(0, "rw")
        m.write(0xD8, 4, 0xFFFFFFFF)           # IMC: all off
        r.write(0xD0, 4, 1 << 16)              # IMS: SRPD on
        assert m.read(0xD0, 4) == 1 << 16
        m.write(0xD8, 4, 0xFFFFFFFF)
        assert r.read(0xD0, 4) == 0
    elif card["card"] == "pci-serial":  # the 16550's scratch register, the only BAR is I/O
        r = device.region(0, "rw")
        r.write(0x07, 1, 0xA5)
        assert r.read(0x07, 1) == 0xA5
        r.write(0x07, 1, 0x00)
        assert r.read(0x07, 1) == 0
    else:  # rtl8139: IntrMask, 16-bit, same register through I/O BAR0 and MMIO BAR1
        io, mm = device.region(0, "rw"), device.region(1, "mmap")
        io.write(0x3C, 2, 0x0005)
        assert mm.read(0x3C, 2) == 0x0005
        mm.write(0x3C, 2, 0)
        assert io.read(0x3C, 2) == 0


def test_io_port_bar_is_not_mmappable(card, device):
    io_bar = {"e1000": 1, "rtl8139": 0, "pci-serial": 0}.get(card["card"])
    if io_bar is None:
        flags, size, _ = device.region_info(0)
        assert flags & uapi.VFIO_REGION_INFO_FLAG_MMAP  # edu: MMIO BAR0 maps
        return
    flags, size, _ = device.region_info(io_bar)
    assert size and not flags & uapi.VFIO_REGION_INFO_FLAG_MMAP
    with pytest.raises(AccessError):
        device.region(io_bar, "mmap")


def test_intx_irq_info(card, device):
    info = device.irq_info(uapi.VFIO_PCI_INTX_IRQ_INDEX)
    want = uapi.VFIO_IRQ_INFO_EVENTFD | uapi.VFIO_IRQ_INFO_MASKABLE | uapi.VFIO_IRQ_INFO_AUTOMASKED
    assert info.flags & want == want
    assert info.count == 1
