"""lspci's habits on a fabricated host: list -s/-d with lspci's syntax and error words,
list -t drawn as lspci -t draws bridges and domains, info's Subsystem names and
decoded capability lines, and the JSON's hex IDs.  (tests/lab/test_lspci_habits.py
holds the same against the real lspci in every lab boot.)"""

import json

import pytest

from pyvfio.cli import main
from pyvfio.host import pci_filter
from pyvfio.errors import UsageError
from tests.fixtures.fakehost import FakeHost, config_bytes

PCI_IDS = """\
# a few lines of pci.ids
1af4  Red Hat, Inc.
\t1041  Virtio 1.0 network device
8086  Intel Corporation
\t100e  82540EM Gigabit Ethernet Controller
\t\t1af4 1100  QEMU Virtual Machine
\t2922  82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]
"""


def bridge(h, bdf, secondary, subordinate):
    cfg = bytearray(config_bytes(0x8086, 0x244E, 0x060400, header_type=1, pin=0))
    cfg[0x18:0x1B] = bytes([int(bdf.split(":")[1], 16), secondary, subordinate])
    h.add_device(bdf, 0x8086, 0x244E, 0x060400, config=bytes(cfg))


@pytest.fixture
def host(tmp_path, monkeypatch):
    h = FakeHost(tmp_path)
    h.write("usr/share/misc/pci.ids", PCI_IDS)
    h.add_device("0000:00:00.0", 0x8086, 0x29C0, 0x060000, pin=0)
    bridge(h, "0000:00:01.0", 1, 2)
    # MSI at 0x50 (64-bit, maskable), MSI-X at 0x70 (table BAR 1 + 0, PBA BAR 1 + 0x800)
    msi = (0x0180 | 0x1).to_bytes(2, "little") + (0xFEE00000).to_bytes(4, "little") + \
        (0).to_bytes(4, "little") + (0x4021).to_bytes(2, "little") + bytes(2) + \
        (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
    msix = (0x0004).to_bytes(2, "little") + (0x1).to_bytes(4, "little") + (0x801).to_bytes(4, "little")
    h.add_device("0000:00:1f.0", 0x8086, 0x100E, 0x020000, driver="e1000", command=0x0107,
                 caps=[(0x50, 0x05, msi), (0x70, 0x11, msix)])
    h.write("sys/bus/pci/devices/0000:00:1f.0/subsystem_vendor", "0x1af4\n")
    h.write("sys/bus/pci/devices/0000:00:1f.0/subsystem_device", "0x1100\n")
    bridge(h, "0000:01:00.0", 2, 2)
    h.add_device("0000:01:01.0", 0x1AF4, 0x1041)
    h.add_device("0000:02:05.0", 0x10EC, 0x8139)
    h.add_device("0000:02:05.1", 0x10EC, 0x8139, pin=2)
    h.add_device("0001:00:01.0", 0x1234, 0x11E8, 0x00FF00)
    monkeypatch.setenv("PYVFIO_SYSROOT", h.root)
    return h


def listed(capsys, *args):
    assert main(["list", *args, "--json", "-"]) == 0
    return [d["bdf"] for d in json.loads(capsys.readouterr().out)["devices"]]


def test_the_tree_is_drawn_as_lspci_t(host, capsys):
    assert main(["list", "-t"]) == 0
    # every root bus, of every domain, off one host bridge: pciutils 3.9 (Debian 12)
    assert capsys.readouterr().out.splitlines() == [
        "-+-[0000:00]-+-00.0",
        " |           +-01.0-[01-02]--+-00.0-[02]--+-05.0",
        " |           |               |            \\-05.1",
        " |           |               \\-01.0",
        " |           \\-1f.0",
        " \\-[0001:00]---01.0",
    ]
    # -tv names each leaf as lspci -tv (pci.ids, or the IDs)
    assert main(["list", "-t", "-v"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[4] == " |           \\-1f.0  Intel Corporation 82540EM Gigabit Ethernet Controller"
    assert out[5] == " \\-[0001:00]---01.0  Device 1234:11e8"


def test_a_selected_tree_keeps_the_path_to_what_it_selects(host, capsys):
    assert main(["list", "-t", "-s", "02:05.1"]) == 0
    # 3.9 marks by place on the bus, hidden neighbours included
    assert capsys.readouterr().out.splitlines() == [
        "-+-[0000:00]-+-01.0-[01-02]--+-00.0-[02]--\\-05.1"]


@pytest.mark.parametrize("args, want", [
    (["-s", "02:"], ["0000:02:05.0", "0000:02:05.1"]),
    (["-s", ".1"], ["0000:02:05.1"]),
    (["-s", "1:0:1"], ["0001:00:01.0"]),
    (["-s", "*:*:01.0"], ["0000:00:01.0", "0000:01:01.0", "0001:00:01.0"]),   # bridges too
    (["-s", "0x1f"], ["0000:00:1f.0"]),
    (["-d", "10ec:"], ["0000:02:05.0", "0000:02:05.1"]),
    (["-d", ":100e"], ["0000:00:1f.0"]),
    (["-d", "::06xx"], ["0000:00:00.0", "0000:00:01.0", "0000:01:00.0"]),
    (["-d", "8086::0604"], ["0000:00:01.0", "0000:01:00.0"]),
    (["-s", "02:", "-d", ":8139"], ["0000:02:05.0", "0000:02:05.1"]),
])
def test_s_and_d_select_as_lspci(host, capsys, args, want):
    assert listed(capsys, *args) == want


def test_without_a_selector_bridges_stay_hidden(host, capsys):
    assert "0000:00:01.0" not in listed(capsys)
    assert main(["list", "-s", "05:"]) == 0
    assert capsys.readouterr().out.strip() == "no PCI devices selected"


@pytest.mark.parametrize("opt, text, words", [
    ("-s", "1f.8", "Invalid function number"), ("-s", "20", "Invalid slot number"),
    ("-s", "100:", "Invalid bus number"), ("-s", "g:0:0", "Invalid domain number"),
    ("-s", "1:2:3:4", "Too many fields"), ("-s", "1.2.3", "Invalid slot/function number"),
    ("-d", "8086", "At least two fields must be given"), ("-d", "1ffff:", "Invalid vendor ID"),
    ("-d", ":zz", "Invalid device ID"), ("-d", "::0g", "Invalid class code"),
    ("-d", "::02:100", "Invalid programming interface code"),
])
def test_bad_selectors_are_lspcis_words_in_one_line(host, capsys, opt, text, words):
    with pytest.raises(UsageError) as exc:
        pci_filter.parse_slot(text) if opt == "-s" else pci_filter.parse_id(text)
    assert str(exc.value).startswith(f"{opt}: {words}")
    assert main(["list", opt, text]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pyvfio: error: {opt}: {words}")


def test_info_shows_subsystem_names_latency_and_capability_lines(host, capsys):
    assert main(["info", "00:1f.0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("0000:00:1f.0 Ethernet controller [0200]: Intel Corporation 82540EM "
                      "Gigabit Ethernet Controller [8086:100e] (rev 01)")
    assert out[1] == "\tSubsystem: Red Hat, Inc. QEMU Virtual Machine [1af4:1100]"
    assert "\tLatency: 0" in out
    at = out.index("\tCapabilities: [50] MSI: Enable+ Count=1/1 Maskable+ 64bit+")
    assert out[at + 1:at + 3] == ["\t\tAddress: 00000000fee00000  Data: 4021",
                                  "\t\tMasking: 00000001  Pending: 00000000"]
    at = out.index("\tCapabilities: [70] MSI-X: Enable- Count=5 Masked-")
    assert out[at + 1:at + 3] == ["\t\tVector table: BAR=1 offset=00000000",
                                  "\t\tPBA: BAR=1 offset=00000800"]
    assert main(["info", "00:1f.0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["names"]["subsystem"] == "Red Hat, Inc. QEMU Virtual Machine [1af4:1100]"
    assert data["device"]["hex"] == {"vendor": "8086", "device": "100e", "subsystem_vendor": "1af4",
                                     "subsystem_device": "1100", "class": "0200", "prog_if": "00",
                                     "revision": "01"}
    assert data["device"]["vendor"] == 0x8086            # the ints stay
    msix = next(c for c in data["config"]["capabilities"] if c["id"] == 0x11)
    assert (msix["table_bar"], msix["pba_offset"]) == (1, 0x800)
    assert data["config"]["latency"] == "Latency: 0" and data["config"]["latency_timer"] == 0


def test_a_subsystem_pci_ids_does_not_list_is_its_vendors_device(host, capsys):
    host.write("sys/bus/pci/devices/0000:01:01.0/subsystem_vendor", "0x8086\n")
    host.write("sys/bus/pci/devices/0000:01:01.0/subsystem_device", "0x0001\n")
    assert main(["info", "01:01.0"]) == 0
    assert "\tSubsystem: Intel Corporation Device [8086:0001]" in capsys.readouterr().out


def test_regions_show_the_cpus_address_from_sysfs_as_lspci(tmp_path, monkeypatch, capsys):
    """On POWER a BAR's bus address (config space) is not the CPU's (sysfs resource,
    what lspci prints): 80000000 in config, 200100000000 in lspci."""
    h = FakeHost(tmp_path)
    h.add_device("0000:00:01.0", 0x1234, 0x11E8, 0x00FF00, bars=[0x80000000],
                 resources=[(0x200100000000, 0x2001000FFFFF, 0x40200)])
    monkeypatch.setenv("PYVFIO_SYSROOT", h.root)
    assert main(["info", "00:01.0"]) == 0
    assert ("\tRegion 0: Memory at 200100000000 (32-bit, non-prefetchable) [size=1M]"
            in capsys.readouterr().out)
