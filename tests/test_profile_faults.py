"""A wrong profile is the profile's fault, never `ok` and never the kernel's `stall`:
the three broken edu profiles (tests/lab/broken_profiles.py) run through a whole
`pyvfio run` on both engines against an edu-like card in a memfd (a thread plays the
card and vfio-pci's automasked INTx line: a level that fires the trigger eventfd
while unmasked, masked by each firing, unmasked through the unmask eventfd), and
each gets its verdict and exit 8."""

import contextlib
import json
import mmap
import os
import struct
import threading
import time

import pytest

from lab import broken_profiles
from pyvfio import uapi, verdict
from pyvfio.backend import IrqInfo
from pyvfio.cli import main
from pyvfio.errors import EXIT_PROFILE, AccessError
from pyvfio.profiles import BUILTIN, CardProfile, load_file
from pyvfio.vfio.region import Region

ID, STATUS, RAISE, ACK = 0x00, 0x24, 0x60, 0x64
BAR_SIZE = 4096
RW = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE
INTX_FLAGS = uapi.VFIO_IRQ_INFO_EVENTFD | uapi.VFIO_IRQ_INFO_MASKABLE | uapi.VFIO_IRQ_INFO_AUTOMASKED


class EduHost(threading.Thread):
    """The host ("vfio", so the C engine takes it) and the card behind it."""
    name, bdf, iommu = "vfio", "0000:00:04.0", "memfd"
    encode_irq_set = line_holders = guest_eoi = dma = None   # backend.IntxHost's optional ones

    def __init__(self, edge=False):
        super().__init__(daemon=True)
        self.edge = edge     # fire on a rising status only: a level held up is not re-presented
        self.rose = False    # a raise set the status from 0
        self.fd = os.memfd_create("pyvfio-test-edu")
        os.ftruncate(self.fd, BAR_SIZE)
        self.mm = mmap.mmap(self.fd, BAR_SIZE)
        self._set(ID, 0x010000ED)
        self.trigger = self.unmask = None
        self.masked = False
        self.fired = 0
        self.stop = threading.Event()

    def _reg(self, off):
        return struct.unpack_from("<I", self.mm, off)[0]

    def _set(self, off, v):
        struct.pack_into("<I", self.mm, off, v)

    def run(self):
        while not self.stop.is_set():
            unmask = self.unmask
            if unmask is not None and unmask.consume():
                self.masked = False      # after the ack: what the ack wrote is seen below
            # the raise read first, then the ack: an ack written before that raise (the
            # last interrupt's) is seen, and is applied first, as a real card would
            raised, acked = self._reg(RAISE), self._reg(ACK)
            if acked:
                self._set(ACK, 0)
                self._set(STATUS, self._reg(STATUS) & ~acked)
            if raised:
                self._set(RAISE, 0)
                self.rose |= not self._reg(STATUS)
                self._set(STATUS, self._reg(STATUS) | raised)
            trigger = self.trigger
            if trigger is not None and self._reg(STATUS) and not self.masked and (self.rose or not self.edge):
                self.rose = False
                self.masked = True       # vfio-pci's automask, then the eventfd
                self.fired += 1
                trigger.signal()
            time.sleep(0.0001)

    # --- the host interface the engines use (pyvfio.backend) -----------------------
    def irq_info(self, index):
        return IrqInfo(index, INTX_FLAGS, 1 if index == uapi.VFIO_PCI_INTX_IRQ_INDEX else 0)

    def set_irqs(self, index, flags, start=0, count=1, data=None):
        efd = data[0] if data and data[0] != -1 else None
        if flags & uapi.VFIO_IRQ_SET_ACTION_TRIGGER:
            self.trigger = efd if count else None
            self.masked = False
        elif flags & uapi.VFIO_IRQ_SET_ACTION_UNMASK and flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD:
            self.unmask = efd

    def region(self, index, access="rw"):
        if index != 0:
            raise AccessError("region", f"region {index}: the memfd card has only BAR0")
        return Region(self.fd, 0, RW, BAR_SIZE, 0)

    def host_state(self, irq="intx"):
        return {"irq_count": None, "disintx": None, "status": self._reg(STATUS)}

    def close(self):
        self.stop.set()
        if self.is_alive():
            self.join(5)


@pytest.fixture(params=["level"])
def host(request):
    h = EduHost(edge=request.param == "edge")
    h.start()
    yield h
    h.close()


def run(host, path, engine, tmp_path, monkeypatch, loops=3):
    """`pyvfio run` on the memfd card: (exit status, the result JSON or None)."""
    import pyvfio.cardlock
    import pyvfio.host.pci
    import pyvfio.profiles
    import pyvfio.vfio
    import pyvfio.vfio.request
    from pyvfio.cli import run_cmd

    class Request:
        def __init__(self, dev):
            self.requested = False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(pyvfio.vfio, "open_device", lambda bdf, iommu=None: contextlib.nullcontext(host))
    monkeypatch.setattr(pyvfio.host.pci, "require", lambda bdf: bdf)
    monkeypatch.setattr(pyvfio.cardlock, "card_lock", lambda bdf: contextlib.nullcontext())
    monkeypatch.setattr(pyvfio.profiles, "probe",
                        lambda dev, access, name: CardProfile(load_file(name, "file"), dev, access))
    monkeypatch.setattr(pyvfio.vfio.request, "DeviceRequest", Request)
    monkeypatch.setattr(run_cmd, "_host_facts", lambda bdf: {})
    out = tmp_path / f"{engine}.json"
    code = main(["run", host.bdf, "-l", str(loops), "-q", "--watchdog", "100", "--unmask", "eventfd",
                 "--engine", engine, "--profile", str(path), "--json", str(out)])
    return code, json.loads(out.read_text()) if out.exists() else None


ENGINES = ["python", "c"]


@pytest.mark.parametrize("host", ["level", "edge"], indirect=True)
@pytest.mark.parametrize("engine", ENGINES)
def test_the_right_profile_is_ok_on_the_memfd_card(host, engine, tmp_path, monkeypatch, capsys):
    code, result = run(host, BUILTIN / "edu.toml", engine, tmp_path, monkeypatch, loops=20)
    assert (code, result["verdict"]) == (0, "ok"), capsys.readouterr()
    assert result["counts"]["delivered"] == 20 and result["counts"]["lost"] == 0


@pytest.mark.parametrize("host", ["level", "edge"], indirect=True)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("fault", sorted(broken_profiles.EDITS))
def test_a_broken_profile_is_named_with_exit_8(host, engine, fault, tmp_path, monkeypatch, capsys):
    """"edge": a line the ack leaves up is not re-presented after the unmask (as XIVE
    in the lab): the watchdog fires with the cause pending, and the stall is checked
    against the ack before the kernel is blamed."""
    path = broken_profiles.write(fault, tmp_path)
    t0 = time.monotonic()
    code, result = run(host, path, engine, tmp_path, monkeypatch)
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert result["verdict"] == broken_profiles.verdict_of(fault), result["counts"]
    assert result["outcome"]["state"] == "profile" and result["outcome"]["fault"] == fault
    assert code == EXIT_PROFILE == 8
    assert f"pyvfio: error: {result['verdict']}: see pyvfio/profiles/README.md" in err
    assert "stall" not in result["verdict"] and not result["stalls"]
    assert took < 5          # a storm of spurious triggers does not run for ever
    c = result["counts"]
    if fault == "uncleared":   # stopped after the first batch (or at the watchdog), the cause still set
        assert c["uncleared_cause"] == 1
        assert c["delivered"] == c["raised"] if not host.edge else c["delivered"] == c["raised"] - 1 == 1
    else:
        assert c["delivered"] == 0 and c["lost"] == c["raised"] == 3
        assert (c["spurious_triggers"] > 0) == (fault == "spurious")


def test_a_storm_of_triggers_without_a_cause_ends_like_a_watchdog_timeout(host, tmp_path, monkeypatch):
    """An ack that reads no cause and clears nothing: the line re-fires after every
    unmask.  Both engines give up on the raise after PYVFIO_MAX_SPURIOUS triggers."""
    text = (BUILTIN / "edu.toml").read_text().replace(
        broken_profiles.ACK, 'ack = [{ read = "IRQ_STATUS", mask = 0x00000100 }]')
    path = tmp_path / "edu-storm.toml"
    path.write_text(text)
    code, result = run(host, path, "c", tmp_path, monkeypatch, loops=2)
    assert result["verdict"] == verdict.FAULTS["spurious"] and code == EXIT_PROFILE
    assert result["counts"]["spurious_triggers"] >= 1000


@pytest.mark.parametrize("counts, text, fails", [
    ({"raised": 10, "delivered": 10}, "ok", False),
    ({"raised": 10, "delivered": 9, "lost": 1}, "lost 1", True),
    ({"raised": 10, "delivered": 0, "lost": 10}, verdict.FAULTS["unraised"], True),
    ({"raised": 10, "delivered": 0, "lost": 10, "spurious_triggers": 10}, verdict.FAULTS["spurious"], True),
])
def test_the_rule_over_a_files_counts(counts, text, fails):
    v = verdict.of_run_json({"stalls": [], "counts": counts})
    assert v.text == text and verdict.failure(v) == fails
    assert verdict.Verdict.from_json(v.to_json()) == v            # the JSON carries the fault
    assert verdict.expectation(text).essence() == v.essence()   # a scenario can expect it


def test_a_stall_stays_the_kernels():
    v = verdict.judge([(1, False)], raised=3, delivered=1)
    assert v.text == "stall after 1" and not verdict.failure(v)


def test_a_card_left_in_another_mode_is_named_with_the_way_back(host, tmp_path, monkeypatch, capsys):
    """Identification that fails says it may be this card in another mode, and how
    to bring it back; a profile's recover program does, and the run goes on."""
    host._set(ID, 0xFFFFFFFF)           # an earlier run left another register bank selected
    code, result = run(host, BUILTIN / "edu.toml", "python", tmp_path, monkeypatch)
    assert code == 2 and result is None      # refused before anything was measured
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ID reads 0xffffffff, profile edu expects 0xed" in err[0]
    assert "or the card left in another mode by an earlier run" in err[0]
    assert "give the profile a recover program" in err[0] and f"{host.bdf}/reset" in err[0]

    text = (BUILTIN / "edu.toml").read_text().replace(
        "[programs]\n", '[programs]\nrecover = [{ write = "ID", value = 0x010000ed }]\n')
    mine = tmp_path / "edu-recover.toml"
    mine.write_text(text)
    code, result = run(host, mine, "c", tmp_path, monkeypatch)
    assert (code, result["verdict"]) == (0, "ok")
    assert result["card"]["recovered"] == "ID read 0xffffffff; after the recover program 0x10000ed"


def test_recover_without_identify_is_refused(tmp_path):
    from pyvfio.profiles.format import ProfileInvalid
    text = (BUILTIN / "edu.toml").read_text()
    text = text.replace('identify = { reg = "ID", mask = 0x000000ff, value = 0x000000ed, byteswap = true }\n', "")
    text = text.replace("[programs]\n", '[programs]\nrecover = [{ write = "ID", value = 1 }]\n')
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ProfileInvalid, match="recover without identify"):
        load_file(path, "file")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_run_that_raised_nothing_is_not_ok(host, engine, tmp_path, monkeypatch, capsys):
    """-D shorter than the set-up: the deadline passed before the first raise.  It was
    "verdict: ok", raised 0 delivered 0, exit 0: a pass that measured nothing."""
    import test_profile_faults as me
    real = me.main
    monkeypatch.setattr(me, "main", lambda argv: real(
        [*argv[:argv.index("-l")], "-D", "0.000000001", *argv[argv.index("-l") + 2:]]))
    code, result = run(host, BUILTIN / "edu.toml", engine, tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and result["counts"]["raised"] == 0
    assert result["outcome"]["state"] == "error" and result["verdict"] != "ok"
    assert "pyvfio: error: nothing measured: the run ended before its first raise: give a longer -D" in err
