"""Config-space decoding, checked against lspci -vv on the same bytes.

Fixtures (tests/fixtures/config/):
- *.config + *.resource + *.lspci: read from this development machine's
  /sys/bus/pci/devices/BDF (a virtio net and block device, a host bridge with a
  4096-byte config space) and `lspci -vv -xxx -s BDF` on it;
- *.hex + *.lspci: published lspci -x dumps of cards we care about (an RTL8139,
  conventional PCI; QEMU's e1000 as a guest sees it; an 82574L, PCI Express),
  with `lspci -vv -F FILE` (pciutils 3.9) as the expected decode.
"""

import os
import re

import pytest

from pyvfio.host import config as cfgmod
from pyvfio.host.config import Config, parse_hexdump

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "config")


def load(name):
    """(Config, resource sizes, lspci's text) of a fixture."""
    with open(os.path.join(FIX, name + ".lspci")) as f:
        lspci = f.read()
    if os.path.exists(os.path.join(FIX, name + ".config")):
        with open(os.path.join(FIX, name + ".config"), "rb") as f:
            data = f.read()
        sizes = {}
        with open(os.path.join(FIX, name + ".resource")) as f:
            for i, line in enumerate(f.read().splitlines()[:6]):
                start, end, _ = (int(x, 16) for x in line.split())
                if end:
                    sizes[i] = end - start + 1
    else:
        with open(os.path.join(FIX, name + ".hex")) as f:
            data = parse_hexdump(f.read())
        sizes = {}
    return Config(data), sizes, lspci


def lspci_field(text, name):
    m = re.search(rf"^\t{re.escape(name)}: (.*)$", text, re.M)
    return m.group(1) if m else None


ALL = ["virtio-net", "virtio-blk", "host-bridge", "rtl8139", "e1000-qemu", "82574l"]


@pytest.mark.parametrize("name", ALL)
def test_control_and_status_words_match_lspci(name):
    cfg, _, lspci = load(name)
    assert cfg.control_text() == lspci_field(lspci, "Control")
    assert cfg.status_text() == lspci_field(lspci, "Status")


@pytest.mark.parametrize("name", ALL)
def test_regions_match_lspci(name):
    cfg, sizes, lspci = load(name)
    want = re.findall(r"^\tRegion (\d): (.*)$", lspci, re.M)
    got = [(str(b.index), b.describe()) for b in cfg.bars(sizes)]
    assert got == want


@pytest.mark.parametrize("name", ALL)
def test_capability_list_matches_lspci(name):
    cfg, _, lspci = load(name)
    want = re.findall(r"^\tCapabilities: \[([0-9a-f]+)\] (.*)$", lspci, re.M)
    got = cfg.capabilities()
    assert [int(off, 16) for off, _ in want] == [c.offset for c in got]
    for (_, text), cap in zip(want, got):
        # lspci adds details we do not decode ("Express (v1) Endpoint, MSI 00",
        # "Vendor Specific Information: VirtIO: ISR"); ours must be its prefix.
        assert text.startswith(cap.describe().split("] ", 1)[1]), (text, cap.describe())


@pytest.mark.parametrize("name", ALL)
def test_capability_lines_and_latency_match_lspci(name):
    """lspci -vv's lines under each capability we decode (PM Flags/Status, MSI
    Address/Data, MSI-X Vector table/PBA) and its Latency line, word for word."""
    cfg, _, lspci = load(name)
    want = lspci_field(lspci, "Latency")
    assert cfg.latency_text() == (f"Latency: {want}" if want is not None else None)
    blocks = dict(re.findall(r"^\tCapabilities: \[([0-9a-f]+)\] .*\n((?:\t\t.*\n)*)", lspci, re.M))
    decoded = 0
    for cap in cfg.capabilities():
        if cap.lines:
            want = [ln[2:] for ln in blocks[f"{cap.offset:02x}"].splitlines()]
            assert want[:len(cap.lines)] == cap.lines, cap.describe()
            decoded += 1
    kinds = {c.id for c in cfg.capabilities()} & {0x01, 0x05, 0x11}
    assert decoded == len([c for c in cfg.capabilities() if c.id in kinds])


@pytest.mark.parametrize("name", ALL)
def test_interrupt_pin_and_line_match_lspci(name):
    cfg, _, lspci = load(name)
    line = lspci_field(lspci, "Interrupt")
    if cfg.interrupt_pin == 0:
        assert line is None           # lspci prints no Interrupt line without a pin
    elif name.endswith(("-net", "-blk")):
        assert line.startswith(f"pin {cfg.pin_text()} routed to IRQ")
    else:                             # from a dump, lspci shows config 0x3c
        assert line == f"pin {cfg.pin_text()} routed to IRQ {cfg.interrupt_line}"


def test_real_sysfs_dump_equals_lspci_hex():
    """The .config files are the bytes lspci -xxx printed on the same machine."""
    for name in ("virtio-net", "host-bridge"):
        cfg, _, lspci = load(name)
        assert parse_hexdump(lspci) == cfg.data[:256]
    assert len(load("host-bridge")[0].data) == 4096


def test_header_fields():
    net, _, _ = load("virtio-net")
    assert (net.vendor, net.device, net.class_code, net.revision) == (0x1AF4, 0x1041, 0x020000, 1)
    assert net.header_type == 0 and net.subsystem == (0x1AF4, 0x1041)
    rtl, _, _ = load("rtl8139")
    assert (rtl.vendor, rtl.device, rtl.interrupt_pin, rtl.interrupt_line) == (0x10EC, 0x8139, 1, 9)
    msix = load("82574l")[0].find_capability(cfgmod.PCI_CAP_ID_MSIX)
    assert msix.fields == {"enabled": False, "count": 5, "table_bar": 3, "table_offset": 0,
                           "pba_bar": 3, "pba_offset": 0x2000}


def test_bar_kinds_and_64bit_pairs():
    bars = load("e1000-qemu")[0].bars()
    assert [(b.index, b.kind, b.address, b.bits) for b in bars] == [
        (0, "mem", 0xFEBC0000, 32), (1, "io", 0xC000, None)]
    (bar,) = load("virtio-net")[0].bars({0: 512 * 1024})
    assert (bar.kind, bar.bits, bar.address, bar.size) == ("mem", 64, 0x4000100000, 0x80000)


# --- the DisINTx (PCI 2.3 INTx masking) decision ------------------------------------

def test_disintx_decision_pcie_card_is_supported_even_with_the_bit_clear():
    cfg = load("82574l")[0]
    assert not cfg.disintx
    m = cfg.intx_mask_support()
    assert (m.supported, m.basis) == (True, "pcie")
    assert "Express capability at 0xe0" in m.how


def test_disintx_decision_conventional_card_with_bits_clear_is_unknown():
    for name in ("rtl8139", "e1000-qemu"):
        m = load(name)[0].intx_mask_support()
        assert m.supported is None and m.basis == "none"
        assert "pre-2.3" in m.how and "pci_intx_mask_supported" in m.how


def test_disintx_decision_from_a_set_bit_and_from_the_status_bit():
    from fixtures.fakehost import config_bytes
    set_bit = Config(config_bytes(0x10EC, 0x8139, 0x020000, command=0x0407))
    assert set_bit.intx_mask_support().basis == "disintx-set"
    asserting = Config(config_bytes(0x10EC, 0x8139, 0x020000, status=0x0008))
    assert asserting.intx_status
    assert asserting.intx_mask_support().basis == "intx-status"


def test_disintx_decision_says_when_there_is_no_pin():
    m = load("virtio-net")[0].intx_mask_support()
    assert m.supported is True and m.basis == "disintx-set"
    assert "no interrupt pin" in m.how


# --- robustness -------------------------------------------------------------------------

def test_non_root_64_byte_read_decodes_header_and_no_capabilities():
    cfg = Config(load("82574l")[0].data[:64])
    assert cfg.vendor == 0x8086 and cfg.capabilities() == []
    m = cfg.intx_mask_support()
    assert m.supported is None and "run as root" in m.how     # the PCIe capability is unseen


def test_capability_loop_and_bad_pointers_terminate():
    from fixtures.fakehost import config_bytes
    looped = bytearray(config_bytes(1, 2, 0x020000, caps=[(0x40, 0x01, b""), (0x50, 0x05, b"")]))
    looped[0x51] = 0x40                          # 0x50 points back to 0x40
    assert [c.offset for c in Config(looped).capabilities()] == [0x40, 0x50]
    inside = bytearray(config_bytes(1, 2, 0x020000, caps=[(0x40, 0x01, b"")]))
    inside[0x41] = 0x10                          # points into the header: stop
    assert [c.offset for c in Config(inside).capabilities()] == [0x40]


def test_short_dump_is_rejected():
    with pytest.raises(ValueError):
        Config(b"\0" * 16)


def test_hexdump_with_a_gap_is_rejected():
    with pytest.raises(ValueError):
        parse_hexdump("00: " + " ".join(["00"] * 16) + "\n20: " + " ".join(["00"] * 16))


def test_size_text_is_lspci_s():
    assert [cfgmod.size_text(s) for s in (256, 4096, 128 * 1024, 512 * 1024, 1 << 30, 96)] == [
        "256", "4K", "128K", "512K", "1G", "96"]
