"""The C loop's external mode (csrc/loop.c pyvfio_external_loop) on the host: a
memfd is the BAR, eventfds are the trigger and the unmask, and a Python thread
plays a card whose interrupts come from outside (no raise): it sets its cause,
signals the trigger, waits for the ack and the unmask, and comes again.  The loop
runs with the GIL released, so the card thread runs alongside it."""
import os
import threading
import time

from pyvfio._binding import ffi, lib
from pyvfio.engine.c_engine import fill_steps
from pyvfio.histogram import Histogram
from pyvfio.intx import EventfdWrite

from test_cloop import ACK, BAR_SIZE, STATUS, Card

RX = 0x4  # the cause this card reports: received data
READY, DATA = 0x30, 0x34  # a line status (bit 0: data ready) and the receive register
DRAIN_MAX = 4


class Source(Card):
    """Interrupts from outside: `plan` is the list of what comes, each "rx" (a cause
    and data ready on the card, then the trigger), "rx-nodata" (a cause, nothing to
    drain), "spurious" (a trigger with nothing pending) or a pause in seconds (the
    line stays quiet) or "gate" (quiet until the test opens `gate`; `at_gate` says it is
    there).  Memory does not see its reads, so data ready stays set through the drain:
    the bound (DRAIN_MAX) is what ends it."""

    def __init__(self, trigger, unmask, plan):
        super().__init__(trigger, unmask)
        self.plan = list(plan)
        self.sent = 0
        self.at_gate, self.gate = threading.Event(), threading.Event()

    def run(self):
        for what in self.plan:
            if isinstance(what, float):
                time.sleep(what)
                continue
            if what == "gate":
                self.at_gate.set()
                while not self.gate.wait(0.05):
                    if self.stop.is_set():
                        return
                continue
            seen = self.unmasks
            if what.startswith("rx"):
                self.set(STATUS, RX)
                self.set(READY, int(what == "rx"))
            self.sent += 1
            self.trigger.signal()
            if not self._wait(lambda: self.unmasks > seen):
                return
            if what.startswith("rx"):
                if not self._wait(lambda: self.reg(ACK)):
                    return
                self.set(STATUS, self.reg(STATUS) & ~self.reg(ACK))
                self.set(ACK, 0)
                self.acks += 1


class ExternalLoop:
    """ack_external = read STATUS (the cause), write it to ACK, drain DATA while READY
    bit 0 is set (at most DRAIN_MAX loads); EOI = unmask eventfd."""

    def __init__(self, card, trigger, unmask, watchdog_ms=2000, wakeup_fd=-1):
        self.keep = []
        cfg = self.cfg = ffi.new("struct pyvfio_loop_cfg *")
        cfg.trigger_fd, cfg.wakeup_fd, cfg.watchdog_ms = trigger.fileno(), wakeup_fd, watchdog_ms
        bar = cfg.bars[0]
        bar.fd, bar.fd_offset, bar.size = card.fd, 0, BAR_SIZE
        ops = cfg.ack_ops
        for o, (kind, off) in zip(ops, [(lib.PYVFIO_OP_READ, STATUS), (lib.PYVFIO_OP_WRITE_CAUSE, ACK),
                                        (lib.PYVFIO_OP_DRAIN, DATA)]):
            o.kind, o.bar, o.width, o.offset, o.rotate = kind, 0, 4, off, 1
        ops[0].mask = 0xFF
        ops[2].mask, ops[2].value, ops[2].count = 1, 1, DRAIN_MAX
        ops[2].status_bar, ops[2].status_offset, ops[2].status_width = 0, READY, 4
        cfg.n_ack = 3
        cfg.n_eoi = fill_steps(cfg.eoi, [EventfdWrite("write unmask eventfd", unmask)], self.keep)
        self.hists = [Histogram() for _ in range(3)]

    def run(self, n, deadline_ns=0):
        self.cfg.loops, self.cfg.deadline_ns = n, deadline_ns
        res = ffi.new("struct pyvfio_loop_result *")
        rc = lib.pyvfio_external_loop(self.cfg, res, *(h.c for h in self.hists))
        assert rc == (-1 if res.reason == lib.PYVFIO_ERROR else 0)
        self.cfg.last_arrival_ns = res.last_arrival_ns
        return res



def serve(plan, efds, n, **kw):
    trigger, unmask = efds
    card = Source(trigger, unmask, plan)
    loop = ExternalLoop(card, trigger, unmask, **kw)
    card.start()
    try:
        res = loop.run(n)
    finally:
        card.close()
    return res, loop, card


def test_every_interrupt_from_outside_is_serviced_acked_and_unmasked(efds):
    res, loop, card = serve(["rx"] * 300, efds, 300)
    assert res.reason == lib.PYVFIO_DONE
    assert (res.raised, res.delivered, res.spurious, res.last_cause) == (0, 300, 0, RX)
    assert (card.acks, card.unmasks) == (300, 300)
    arrival, service, _ = loop.hists
    assert service.count == 300 and arrival.count == 299    # gaps between 300 arrivals


def test_the_items_each_interrupt_drains_are_counted(efds):
    res, loop, _ = serve(["rx", "rx-nodata", "rx"] * 20, efds, 60)
    assert (res.delivered, res.items) == (60, 40 * DRAIN_MAX)
    items = loop.hists[2]
    assert (items.count, items.c.min, items.c.max, items.c.sum) == (60, 0, DRAIN_MAX, 40 * DRAIN_MAX)


def test_a_trigger_with_nothing_pending_is_spurious_and_eoid(efds):
    res, _, card = serve(["rx", "spurious"] * 50, efds, 50)
    assert (res.delivered, res.spurious) == (50, 49)     # the loop ends at the 50th rx
    assert card.unmasks == 99


def test_a_silence_ends_the_batch_at_the_watchdog_and_the_next_goes_on(efds):
    trigger, unmask = efds
    card = Source(trigger, unmask, ["rx"] * 3 + ["gate"] + ["rx"] * 2)
    loop = ExternalLoop(card, trigger, unmask, watchdog_ms=50)
    card.start()

    def serve_all(n):
        """Batches until n are delivered: a loaded host may leave the card thread (Python)
        slower than the 50 ms watchdog, which then ends a batch early; the runner goes on."""
        got = 0
        while got < n:
            last = loop.run(n - got)
            got += last.delivered
        return last

    try:
        serve_all(3)
        assert card.at_gate.wait(10)
        quiet = loop.run(2)     # the card says nothing: the watchdog ends the batch empty
        assert (quiet.reason, quiet.delivered) == (lib.PYVFIO_TIMEOUT, 0)
        time.sleep(0.3)
        card.gate.set()
        again = serve_all(2)
    finally:
        card.close()
    assert again.reason == lib.PYVFIO_DONE and card.sent == 5
    arrival = loop.hists[0]
    assert arrival.count == 4 and arrival.c.max >= 0.3e9   # the gap spans the silence


def test_the_deadline_ends_a_silent_wait(efds):
    trigger, unmask = efds
    card = Source(trigger, unmask, [])
    loop = ExternalLoop(card, trigger, unmask, watchdog_ms=5000)
    t0 = time.monotonic()
    res = loop.run(10, deadline_ns=time.monotonic_ns() + 100_000_000)
    card.close()
    assert (res.reason, res.delivered) == (lib.PYVFIO_DONE, 0)
    assert time.monotonic() - t0 < 2.0      # well before the 5 s watchdog


def test_a_signal_on_the_wakeup_fd_ends_the_wait(efds):
    trigger, unmask = efds
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    card = Source(trigger, unmask, ["rx"] * 2)
    loop = ExternalLoop(card, trigger, unmask, watchdog_ms=5000, wakeup_fd=rfd)
    timer = threading.Timer(0.2, os.write, (wfd, b"\x02"))
    card.start()
    timer.start()
    try:
        res = loop.run(10)
    finally:
        timer.cancel()
        card.close()
        os.close(rfd)
        os.close(wfd)
    assert (res.reason, res.delivered) == (lib.PYVFIO_SIGNAL, 2)
