"""The C loop (csrc/loop.c) on the host, without a lab boot: a memfd mapped twice
is the BAR (the loop reaches it by mmap or by pread/pwrite), eventfds are the
trigger and the unmask, and a Python thread plays an edu-like card (it sees the
raise write, sets its status and signals the trigger, clears the status on the
ack, counts the unmask eventfd writes).  The loop runs with the GIL released, so
the card thread runs alongside it.  The EOI steps are pyvfio.intx's, filled in by
the C engine's own fill_steps."""

import errno
import mmap
import os
import struct
import threading

import pytest

from pyvfio import uapi
from pyvfio._binding import ffi, lib
from pyvfio.engine.c_engine import fill_ops, fill_steps
from pyvfio.errors import UsageError
from pyvfio.eventfd import EventFd
from pyvfio.histogram import Histogram
from pyvfio.intx import EventfdWrite, DeviceIrq, SetIrqs
from pyvfio.profiles.base import READ, WRITE, WRITE_CAUSE, Op
from pyvfio.vfio.device import Device
from pyvfio.vfio.region import Region

RAISE, STATUS, ACK = 0x60, 0x24, 0x64
BAR_SIZE = 4096
RW_FLAGS = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE
FIONREAD = 0x541B  # asm-generic/ioctls.h (x86_64, arm64, ppc64le alike)


class Card(threading.Thread):
    """An edu-like card in a memfd: `misbehave(n)` says what to do with the n-th raise
    (0-based): "ok", "spurious" (a trigger with nothing pending first, the real one
    after the EOI), "dead" (no trigger: the line stays quiet)."""

    def __init__(self, trigger, unmask=None, misbehave=lambda n: "ok", on_raise=None, pending=1):
        super().__init__(daemon=True)
        self.fd = os.memfd_create("pyvfio-test-bar")
        os.ftruncate(self.fd, BAR_SIZE)
        self.mm = mmap.mmap(self.fd, BAR_SIZE)
        self.trigger, self.unmask = trigger, unmask
        self.misbehave, self.on_raise, self.pending = misbehave, on_raise, pending
        self.raises = self.acks = self.unmasks = 0
        self.stop = threading.Event()

    def reg(self, off):
        return struct.unpack_from("<I", self.mm, off)[0]

    def set(self, off, v):
        struct.pack_into("<I", self.mm, off, v)

    def _count_unmasks(self):
        if self.unmask is not None:
            self.unmasks += self.unmask.consume()

    def _wait(self, cond):
        # the condition first: after the loop returned, what it wrote is still seen
        while True:
            self._count_unmasks()
            if cond():
                return True
            if self.stop.is_set():
                return False

    def run(self):
        while self._wait(lambda: self.reg(RAISE)):
            self.set(RAISE, 0)
            what = self.misbehave(self.raises)
            self.raises += 1
            if self.on_raise:
                self.on_raise()
            if what == "dead":
                continue
            if what == "spurious":
                seen = self.unmasks
                self.trigger.signal()
                if not self._wait(lambda: self.unmasks > seen):
                    return
            self.set(STATUS, self.pending)
            self.trigger.signal()
            if not self._wait(lambda: self.reg(ACK)):
                return
            self.set(STATUS, self.reg(STATUS) & ~self.reg(ACK))
            self.set(ACK, 0)
            self.acks += 1

    def close(self):
        # joined to its end: on a loaded host a short join returned before the card had
        # counted the last ack (299 of 300 seen under four CPU hogs)
        self.stop.set()
        if self.is_alive():
            self.join(60)
        assert not self.is_alive(), "the test card thread did not stop"
        self._count_unmasks()
        self.mm.close()
        os.close(self.fd)


RAISE_OPS = (Op(WRITE, "bar", RAISE, 4, value=1),)
ACK_OPS = (Op(READ, "bar", STATUS, 4, mask=0xFFFFFFFF), Op(WRITE_CAUSE, "bar", ACK, 4))


class Loop:
    """A struct pyvfio_loop_cfg for the card, filled by the C engine's fill_ops:
    raise = write 1 to 0x60; ack = read 0x24 (the cause), write it to 0x64 (or the
    programs given); the EOI = `eoi` (pyvfio.intx steps)."""

    def __init__(self, card, trigger, eoi, access="mmap", watchdog_ms=2000, wakeup_fd=-1,
                 raise_ops=RAISE_OPS, ack_ops=ACK_OPS):
        self.keep = []
        cfg = self.cfg = ffi.new("struct pyvfio_loop_cfg *")
        cfg.trigger_fd, cfg.wakeup_fd, cfg.watchdog_ms = trigger.fileno(), wakeup_fd, watchdog_ms
        bar = cfg.bars[0]
        bar.fd, bar.fd_offset, bar.size = card.fd, 0, BAR_SIZE
        if access == "mmap":
            self.view = mmap.mmap(card.fd, BAR_SIZE)
            self.base = ffi.from_buffer(self.view)
            bar.base = self.base
        self.slots = {"bar": (0, Region(card.fd, 0, RW_FLAGS, BAR_SIZE, 0))}  # checks, as a BAR's
        cfg.n_raise = fill_ops(cfg.raise_ops, raise_ops, self.slots)
        cfg.n_ack = fill_ops(cfg.ack_ops, ack_ops, self.slots)
        cfg.n_eoi = fill_steps(cfg.eoi, eoi, self.keep)
        self.hists = [Histogram() for _ in range(3)]

    def run(self, n, deadline_ns=0):
        self.cfg.loops, self.cfg.deadline_ns = n, deadline_ns
        res = ffi.new("struct pyvfio_loop_result *")
        rc = lib.pyvfio_intx_loop(self.cfg, res, *(h.c for h in self.hists))
        assert rc == (-1 if res.reason == lib.PYVFIO_ERROR else 0)
        return res



def start(card):
    card.start()
    return card


@pytest.mark.parametrize("access", ["mmap", "rw"])
def test_done_every_interrupt_delivered_acked_and_unmasked(efds, access):
    trigger, unmask = efds
    card = start(Card(trigger, unmask))
    try:
        res = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask)], access).run(500)
    finally:
        card.close()
    assert res.reason == lib.PYVFIO_DONE
    assert (res.raised, res.delivered, res.spurious, res.last_cause) == (500, 500, 0, 1)
    assert (card.raises, card.acks, card.unmasks) == (500, 500, 500)


def test_histograms_record_each_delivery(efds):
    trigger, unmask = efds
    card = start(Card(trigger, unmask))
    try:
        loop = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask)])
        loop.run(600)   # binned 256 at a time: two whole chunks and a part
    finally:
        card.close()
    wakeup, service, rtt = loop.hists
    assert wakeup.count == service.count == rtt.count == 600
    assert rtt.c.sum == wakeup.c.sum + service.c.sum  # raise->EOI is the two parts, end to end
    assert rtt.c.max <= wakeup.c.max + service.c.max and rtt.c.min >= wakeup.c.min + service.c.min


def test_explain_stamps_each_delivery_in_order_and_bounded(efds):
    """--explain's record (cfg->stamps): t0 <= t1 <= ta <= t2 per delivered interrupt,
    the histograms' own numbers, never more than its cap; NULL keeps it off."""
    trigger, unmask = efds
    card = start(Card(trigger, unmask))
    rec = ffi.new("struct pyvfio_stamp[]", 150)
    st = ffi.new("struct pyvfio_stamps *", {"cap": 150, "rec": rec})
    try:
        loop = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask)])
        loop.run(50)                          # off: nothing written
        assert st.n == 0
        loop.cfg.stamps = st
        loop.run(200)
    finally:
        card.close()
    assert st.n == 150                        # the cap holds; the loop went on
    got = [(r.t0, r.t1, r.ta, r.t2) for r in (rec[i] for i in range(150))]
    assert all(t0 < t1 <= ta <= t2 for t0, t1, ta, t2 in got)
    assert all(a[3] <= b[0] for a, b in zip(got, got[1:]))     # one after the other
    assert loop.hists[2].count == 250 and max(t2 - t0 for t0, _, _, t2 in got) <= loop.hists[2].c.max


def test_spurious_trigger_is_counted_and_the_real_one_delivered(efds):
    trigger, unmask = efds
    card = start(Card(trigger, unmask, misbehave=lambda n: "spurious" if n % 2 else "ok"))
    try:
        res = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask)]).run(100)
    finally:
        card.close()
    assert res.reason == lib.PYVFIO_DONE
    assert (res.delivered, res.spurious) == (100, 50)
    assert card.unmasks == 150  # the spurious trigger was EOIed too


def test_timeout_when_the_card_goes_quiet(efds):
    trigger, unmask = efds
    card = start(Card(trigger, unmask, misbehave=lambda n: "dead" if n >= 3 else "ok"))
    try:
        res = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask)], watchdog_ms=50).run(10)
    finally:
        card.close()
    assert res.reason == lib.PYVFIO_TIMEOUT
    assert (res.raised, res.delivered) == (4, 3)  # the 4th raise got no trigger


def test_signal_on_the_wakeup_fd(efds):
    trigger, unmask = efds
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    card = start(Card(trigger, unmask, misbehave=lambda n: "dead" if n >= 2 else "ok"))
    timer = threading.Timer(0.05, os.write, (wfd, b"\x02"))  # what Python's signal handler writes
    try:
        loop = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask)],
                    watchdog_ms=5000, wakeup_fd=rfd)
        timer.start()
        res = loop.run(10)
    finally:
        timer.cancel()
        card.close()
        os.close(rfd)
        os.close(wfd)
    assert res.reason == lib.PYVFIO_SIGNAL
    assert (res.raised, res.delivered) == (3, 2)


def test_deadline_stops_before_raising(efds):
    trigger, unmask = efds
    card = start(Card(trigger, unmask))
    try:
        res = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask)]).run(10, deadline_ns=1)
    finally:
        card.close()
    assert (res.reason, res.raised, card.raises) == (lib.PYVFIO_DONE, 0, 0)


def test_eoi_steps_replayed_in_order_each_interrupt(efds):
    """write A, ioctl(FIONREAD) into a buffer, write B: each step per interrupt, the
    ioctl with the step's own buffer (the card puts a byte in the pipe per raise)."""
    trigger, a = efds
    b = EventFd()
    rfd, wfd = os.pipe()
    buf = bytearray(4)
    card = start(Card(trigger, a, on_raise=lambda: os.write(wfd, b"x")))
    steps = [EventfdWrite("write A", a),
             SetIrqs("FIONREAD", 0, 0, 0, None, rfd, FIONREAD, buf),
             EventfdWrite("write B", b)]
    try:
        res = Loop(card, trigger, steps).run(50)
    finally:
        card.close()
        os.close(rfd)
        os.close(wfd)
    n_b = b.consume()
    b.close()
    assert res.reason == lib.PYVFIO_DONE
    assert (card.unmasks, n_b, int.from_bytes(buf, "little")) == (50, 50, 50)


def test_error_names_the_failed_step_and_its_errno(efds):
    trigger, unmask = efds
    card = start(Card(trigger, unmask))
    bad = SetIrqs("VFIO_DEVICE_SET_IRQS (on an eventfd)", 0, 0, 1, None, trigger.fileno(),
                  uapi.VFIO_DEVICE_SET_IRQS, bytearray(uapi.IRQ_SET_HDR))
    # res.errop points into the step names the Loop keeps: hold the Loop while reading it
    loop = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask), bad])
    try:
        res = loop.run(10)
    finally:
        card.close()
    assert res.reason == lib.PYVFIO_ERROR
    assert ffi.string(res.errop).decode() == "VFIO_DEVICE_SET_IRQS (on an eventfd)"
    assert res.err == errno.ENOTTY
    assert (res.raised, res.delivered, card.unmasks) == (1, 0, 1)  # failed in the first EOI


def test_error_on_a_bar_that_cannot_be_written(efds):
    trigger, unmask = efds
    card = Card(trigger, unmask)  # not started: the raise fails before it matters
    loop = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask)], access="rw")
    loop.cfg.bars[0].fd = -1
    res = loop.run(5)
    card.close()
    assert res.reason == lib.PYVFIO_ERROR and res.err == errno.EBADF
    assert ffi.string(res.errop).decode() == "raise (card register write)" and res.raised == 0


# --- the op kinds: tests/test_ops_table.py runs each through run_ops, Python and KVM ---

def test_the_hot_loop_acks_a_cause_that_reads_inverted(efds):
    """A 16550-style status: pending is a 0 in bit 0.  The loop finds the cause and
    writes the raw value back; nothing is spurious."""
    trigger, unmask = efds
    card = start(Card(trigger, unmask, pending=0x02))
    ack = (Op(READ, "bar", STATUS, 4, mask=0x0F, invert=0x01), Op(WRITE_CAUSE, "bar", ACK, 4))
    try:
        res = Loop(card, trigger, [EventfdWrite("write unmask eventfd", unmask)], ack_ops=ack).run(100)
    finally:
        card.close()
    assert res.reason == lib.PYVFIO_DONE
    assert (res.delivered, res.spurious, res.last_cause, card.acks) == (100, 0, 0x03, 100)


def test_fill_ops_refuses_an_access_outside_the_bar(efds):
    trigger, _ = efds
    card = Card(trigger)
    try:
        with pytest.raises(Exception, match="past the end"):
            Loop(card, trigger, [], "rw", raise_ops=(Op(WRITE, "bar", BAR_SIZE - 4, 4, rotate=2, stride=4),))
    finally:
        card.close()


# --- pyvfio.intx's sequences: what Python runs is what the C loop replays ---------------

class EncodingHost:
    """Records set_irqs and encodes as a vfio Device does (Device.encode_irq_set);
    its fd is not a vfio device, so the kernel answers ENOTTY to the C loop's ioctls."""
    name, bdf = "vfio", "0000:00:00.0"
    encode_irq_set = staticmethod(Device.encode_irq_set)
    line_holders = guest_eoi = dma = None

    def __init__(self, fd):
        self.fd, self.calls = fd, []

    def set_irqs(self, index, flags, start=0, count=1, data=None):
        self.calls.append((index, flags, start, count, data))


def _decode(step):
    hdr = ffi.cast("struct vfio_irq_set *", ffi.from_buffer(step.buf))
    nfds = hdr.count if hdr.flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD else 0
    fds = struct.unpack_from(f"<{nfds}i", step.buf, ffi.sizeof(hdr[0]))
    return hdr.argsz, hdr.flags, hdr.index, hdr.start, hdr.count, fds


@pytest.mark.parametrize("mode,rearm_each", [("ioctl", False), ("eventfd", False),
                                             ("ioctl", True), ("eventfd", True)])
def test_encoded_steps_are_the_decoded_ones(mode, rearm_each):
    with open(os.devnull) as null:
        host = EncodingHost(null.fileno())
        with DeviceIrq(host, mode, rearm_each) as intx:
            for name in ("enable", "disable", "eoi", "rearm", "unmask", "mask", "loopback"):
                for step in getattr(intx.seq, name):
                    if step.kind == "write":
                        assert step.fd == intx.unmask_efd.fileno()
                        continue
                    fds = tuple(d if isinstance(d, int) else d.fileno() for d in step.data or ())
                    assert _decode(step) == (len(step.buf), step.flags, 0, step.start, step.count, fds)
                    assert step.fd == null.fileno()


@pytest.mark.parametrize("mode", ["ioctl", "eventfd"])
def test_rearm_unregisters_the_unmask_eventfd_first_in_python_and_in_c(efds, mode):
    trigger, _ = efds
    with open(os.devnull) as null:
        host = EncodingHost(null.fileno())
        with DeviceIrq(host, mode, rearm_each=True) as intx:
            host.calls.clear()
            intx.eoi()  # Python runs the steps through host.set_irqs
            python = [(c[1], c[3]) for c in host.calls]
            assert python == [(s.flags, s.count) for s in intx.seq.rearm]
            card = start(Card(trigger))
            try:
                res = Loop(card, trigger, intx.seq.eoi).run(1)
            finally:
                card.close()
            first = intx.seq.rearm[0].what
    assert res.reason == lib.PYVFIO_ERROR and res.err == errno.ENOTTY
    assert ffi.string(res.errop).decode() == first
    assert first == ("VFIO_DEVICE_SET_IRQS (UNMASK|EVENTFD, fd -1)" if mode == "eventfd"
                     else "VFIO_DEVICE_SET_IRQS (TRIGGER|NONE, count 0)")


# --- MSI/MSI-X: the same builder, an edge (no EOI step), the C loop unchanged -----------

class ConfigHost(EncodingHost):
    """EncodingHost with a config space (COMMAND at 4), for the MSI enable's Bus Master."""

    def __init__(self, fd, command=0):
        super().__init__(fd)
        self.config = bytearray(256)
        self.config[uapi.PCI_COMMAND:uapi.PCI_COMMAND + 2] = command.to_bytes(2, "little")

    def region(self, index, access="rw"):
        assert index == uapi.VFIO_PCI_CONFIG_REGION_INDEX
        return self

    def read(self, offset, width):
        return int.from_bytes(self.config[offset:offset + width], "little")

    def write(self, offset, width, value):
        self.config[offset:offset + width] = value.to_bytes(width, "little")


@pytest.mark.parametrize("irq,index", [("msi", uapi.VFIO_PCI_MSI_IRQ_INDEX),
                                       ("msix", uapi.VFIO_PCI_MSIX_IRQ_INDEX)])
def test_msi_steps_are_encoded_on_their_index_with_no_eoi(irq, index):
    with open(os.devnull) as null:
        host = ConfigHost(null.fileno())
        with DeviceIrq(host, irq=irq) as msi:
            assert msi.seq.eoi == [] and msi.seq.mask is None and msi.seq.unmask is None
            for name in ("enable", "disable", "rearm", "loopback"):
                for step in getattr(msi.seq, name):
                    fds = tuple(d if isinstance(d, int) else d.fileno() for d in step.data or ())
                    assert _decode(step) == (len(step.buf), step.flags, index, 0, step.count, fds)
                    assert step.what.startswith(f"VFIO_DEVICE_SET_IRQS ({msi.name} ")
            assert [c[:4] for c in host.calls] == [(index, s.flags, 0, 1) for s in msi.seq.enable]
            host.calls.clear()
            msi.eoi()
            assert host.calls == []        # an edge: nothing is forwarded per interrupt
            with pytest.raises(UsageError, match="masks only the INTx line"):
                msi.mask()
        assert [c[:4] for c in host.calls[-1:]] == [(index, uapi.VFIO_IRQ_SET_ACTION_TRIGGER
                                                     | uapi.VFIO_IRQ_SET_DATA_NONE, 0, 0)]


@pytest.mark.parametrize("before", [0, uapi.PCI_COMMAND_MASTER])
def test_msi_enable_turns_bus_master_on_and_disable_puts_it_back(before):
    memory = uapi.PCI_COMMAND_MEMORY
    with open(os.devnull) as null:
        host = ConfigHost(null.fileno(), memory | before)
        with DeviceIrq(host, irq="msi"):
            assert host.read(uapi.PCI_COMMAND, 2) == memory | uapi.PCI_COMMAND_MASTER
        assert host.read(uapi.PCI_COMMAND, 2) == memory | before
        with DeviceIrq(host):                      # INTx leaves it alone
            assert host.read(uapi.PCI_COMMAND, 2) == memory | before


def test_c_loop_delivers_msi_with_no_eoi_steps(efds):
    trigger, _ = efds
    with open(os.devnull) as null:
        with DeviceIrq(ConfigHost(null.fileno()), irq="msi") as msi:
            card = start(Card(trigger))
            try:
                loop = Loop(card, trigger, msi.seq.eoi)
                assert loop.cfg.n_eoi == 0
                res = loop.run(500)
            finally:
                card.close()
    assert res.reason == lib.PYVFIO_DONE
    assert (res.raised, res.delivered, res.spurious) == (500, 500, 0)
    assert (card.raises, card.acks) == (500, 500)
    assert loop.hists[2].count == 500
