"""The pure-Python engine: the same protocol as the C loop, one interpreted step at
a time.  It is the reference (readable, runs against any host, the model included)
and the foil the C engine is measured against."""

import select
import time
from functools import partial

from ..toy_guest import Guest
from .._binding import lib
from .batch import DONE, TIMEOUT, Tally

now_ns = time.monotonic_ns
MAX_SPURIOUS = lib.PYVFIO_MAX_SPURIOUS   # csrc/loop.h: one bound for both engines


class PythonLoop:
    """An engine.run.Engine."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.pending = None

    def run_batch(self, n, hists, deadline_ns=0):
        self.pending = Tally(last_arrival_ns=self.ctx.last_arrival_ns)
        batch = run_external_batch if self.ctx.external else run_batch
        batch(self.ctx, n, hists, deadline_ns, self.pending)
        return self.collect()

    def trigger_pending(self):
        return trigger_pending(self.ctx.intx.trigger)

    def service_external(self):
        return service_external(self.ctx)

    def collect(self):
        b, self.pending = self.pending, None
        return None if b is None else b.batch()

    def update_fds(self):
        pass  # the Python loop reads the DeviceIrq's eventfds afresh every batch

    def guest_json(self):
        return None   # the toy guest: nothing beyond the run's own counts

    def close(self):
        pass


def run_batch(ctx, n, hists, deadline_ns=0, b=None):
    """Up to `n` interrupts: raise, wait for the trigger, run the guest's handler
    (ack + EOI), record, counting into `b` (a Tally, returned); stops early on a
    watchdog timeout."""
    guest = Guest(ctx.intx, ctx.profile, ctx.host.guest_eoi)
    trigger = ctx.intx.trigger
    profile = ctx.profile
    timeout = ctx.config.watchdog_ms / 1000.0
    interval = ctx.config.interval_us * 1000
    raise_irq = profile.program("raise")
    # --explain: the C loop's stamp record (csrc/loop.h), ta taken between ack and EOI
    st = ctx.explain.active if ctx.explain is not None else None
    ta = [0]
    if st is not None:
        ack = guest.intc.handler

        def stamped_ack():
            cause = ack()
            ta[0] = now_ns()
            return cause
        guest.intc.handler = stamped_ack
    # one C call per sample, no Python method in between
    wakeup, service, rtt = (partial(lib.pyvfio_hist_record, h.c) for h in hists)
    b = Tally() if b is None else b  # updated in place: a Ctrl-C keeps what it counted
    nxt = 0
    for _ in range(n):
        if interval:
            now = now_ns()
            if nxt > now:
                time.sleep((nxt - now) / 1e9)
            nxt = (nxt or now) + interval
        t0 = now_ns()
        if deadline_ns and t0 >= deadline_ns:
            break
        raise_irq(profile.raised + b.raised)
        b.raised += 1
        for spurious in range(MAX_SPURIOUS + 1):
            # a storm of triggers without a cause ends as a watchdog timeout does
            count = trigger.wait(timeout) if spurious < MAX_SPURIOUS else 0
            if not count:
                b.reason = TIMEOUT
                return b
            t1 = now_ns()
            b.extra_signals += count - 1
            cause = guest.on_trigger()
            t2 = now_ns()
            if cause:
                break
            b.spurious += 1
        wakeup(t1 - t0)
        service(t2 - t1)
        rtt(t2 - t0)
        if st is not None and st.n < st.cap:
            r = st.rec[st.n]
            r.t0, r.t1, r.ta, r.t2 = t0, t1, ta[0], t2
            st.n += 1
        b.delivered += 1
        b.last_cause = cause
    b.reason = DONE
    return b



def trigger_pending(trigger):
    """Has a trigger come, unread?  (The watchdog asks before it calls a silence.)"""
    return bool(select.select([trigger.fileno()], [], [], 0)[0])


def service_external(ctx):
    """Service the card by polling, as the handler would: (cause, items drained)."""
    return ctx.profile.program("ack_external").counted()


def run_external_batch(ctx, n, hists, deadline_ns=0, b=None):
    """Up to `n` interrupts from outside: wait for the trigger, run the guest's
    handler (ack_external: cause, drain, ack; then the EOI), record the
    inter-arrival time (trigger seen to trigger seen), the service time and the
    items drained.  Stops early on a watchdog timeout (the runner asks the card)
    or at the deadline."""
    intx, profile = ctx.intx, ctx.profile
    trigger = intx.trigger
    ack = profile.program("ack_external").counted
    watchdog = ctx.config.watchdog_ms / 1000.0
    arrival, service, items = (partial(lib.pyvfio_hist_record, h.c) for h in hists)
    b = Tally(last_arrival_ns=ctx.last_arrival_ns) if b is None else b
    last = b.last_arrival_ns
    while b.delivered < n:
        timeout = watchdog
        if deadline_ns:
            left = (deadline_ns - now_ns()) / 1e9
            if left <= 0:
                break
            timeout = min(timeout, left)
        count = trigger.wait(timeout)
        if not count:
            if deadline_ns and now_ns() >= deadline_ns:
                break
            b.reason = TIMEOUT
            return b
        t1 = now_ns()
        b.extra_signals += count - 1
        cause, drained = ack()
        intx.eoi()
        t2 = now_ns()
        b.items += drained
        if not cause:
            b.spurious += 1
            continue
        if last:
            arrival(t1 - last)
        b.last_arrival_ns = last = t1
        service(t2 - t1)
        items(drained)
        b.delivered += 1
        b.last_cause = cause
    b.reason = DONE
    return b
