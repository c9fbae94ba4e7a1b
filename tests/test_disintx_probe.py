"""The DisINTx write probe (vfio/disintx_probe.py) on files it may write, and its
refusals; the probe against real vfio-pci cards is tests/lab/test_disintx_probe.py."""
from fixtures.fakehost import FakeHost
from pyvfio.host import pci
from pyvfio.vfio import disintx_probe

BDF = "0000:00:10.0"


def test_a_bit_that_sticks_is_implemented_and_command_is_restored(tmp_path):
    config = tmp_path / "config"
    data = bytes([0x34, 0x12, 0xE8, 0x11, 0x07, 0x01]) + bytes(58)     # COMMAND 0x0107
    config.write_bytes(data)
    broken, orig, new = disintx_probe.intx_mask_broken(config)
    assert (broken, orig, new) == (False, 0x0107, 0x0507)
    assert config.read_bytes() == data


def test_a_bit_that_reads_0_whatever_was_written_is_not():
    # /dev/zero takes the write and reads back 0: a pre-2.3 card's hardwired bit.
    assert disintx_probe.intx_mask_broken("/dev/zero") == (True, 0, 0)


def _card(tmp_path, driver="vfio-pci", **config):
    h = FakeHost(tmp_path)
    h.add_device(BDF, 0x1234, 0x11E8, 0x00FF00, driver=driver, group=3, irq=10, line=10, **config)
    return pci.device(BDF, h.root)


def test_the_probe_writes_only_to_the_live_host_and_a_vfio_pci_card(tmp_path):
    dev = _card(tmp_path)
    assert disintx_probe.probe(dev, str(tmp_path)) == \
        (None, f"not probed: {tmp_path} is not the live host")
    other = _card(tmp_path / "b", driver="e1000")
    assert disintx_probe.probe(other, "/") == \
        (None, f"not probed: {BDF} is bound to e1000, not vfio-pci")


def test_support_probes_only_what_config_space_cannot_tell(tmp_path):
    unknown = _card(tmp_path)
    s = disintx_probe.support(unknown, str(tmp_path))
    assert s.supported is None and s.word == "unknown"
    assert s.how.endswith(f"not probed: {tmp_path} is not the live host")
    known = _card(tmp_path / "b", command=0x0407)            # DisINTx+ now: implemented
    s = disintx_probe.support(known, str(tmp_path / "b"))
    assert (s.supported, s.basis) == (True, "disintx-set")


def test_a_probed_answer_says_so():
    from pyvfio.host.config import IntxMaskSupport

    assert IntxMaskSupport(False, "", disintx_probe.BASIS).word == "no (probed)"
    assert IntxMaskSupport(True, "", disintx_probe.BASIS).word == "yes (probed)"
