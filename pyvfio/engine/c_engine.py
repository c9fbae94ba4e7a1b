"""The C engine: csrc/loop.c through cffi, the GIL released for a whole batch and
no Python per interrupt.  Needs a real vfio device (real fds, real registers)."""

import os
import signal

from .._binding import ffi, lib
from ..errors import UsageError, VfioError
from ..profiles import ops
from .batch import DONE, ERROR, SIGNAL, TIMEOUT, Batch
from .python_engine import service_external, trigger_pending

# the C loop's op codes: the op table's, which csrc/build.py compiles in
_KIND = {k.name: k.code for k in ops.KINDS}
_STEP = {"ioctl": lib.PYVFIO_STEP_IOCTL, "write": lib.PYVFIO_STEP_WRITE}
_REASON = {lib.PYVFIO_DONE: DONE, lib.PYVFIO_TIMEOUT: TIMEOUT, lib.PYVFIO_SIGNAL: SIGNAL,
           lib.PYVFIO_ERROR: ERROR}


class CLoop:
    """An engine.run.Engine: the loop's configuration, built once per run (the EOI
    steps again after a rearm)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.keep = []  # what the EOI steps point into (the DeviceIrq holds the buffers)
        self.pending = None
        cfg = self.cfg = ffi.new("struct pyvfio_loop_cfg *")
        self._bars(ctx.profile)
        if ctx.external:   # no raise; the handler is the ack_external program
            self.loop = lib.pyvfio_external_loop
            cfg.n_ack = self._ops(cfg.ack_ops, ctx.profile.programs.ops["ack_external"])
        else:
            self.loop = lib.pyvfio_intx_loop
            cfg.n_raise = self._ops(cfg.raise_ops, ctx.profile.programs.ops["raise"])
            cfg.n_ack = self._ops(cfg.ack_ops, ctx.profile.programs.ops["ack"])
        cfg.watchdog_ms = ctx.config.watchdog_ms
        cfg.interval_ns = ctx.config.interval_us * 1000
        # Python's C signal handler writes to this pipe; the loop polls it too, so
        # Ctrl-C or SIGTERM ends a batch at once and teardown runs in Python.
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        cfg.wakeup_fd = self.rfd
        self.update_fds()

    def update_fds(self):
        """(Re)bind the trigger eventfd and the EOI steps of the DeviceIrq's sequences."""
        intx, cfg = self.ctx.intx, self.cfg
        cfg.trigger_fd = intx.trigger.fileno()
        cfg.n_eoi = fill_steps(cfg.eoi, intx.seq.eoi, self.keep)

    def _bars(self, profile):
        if len(profile.bars) > lib.PYVFIO_MAX_BARS:
            raise UsageError(f"profile {profile.name} uses more BARs than the C loop supports")
        self.slots = {}
        for slot, (bar, region) in enumerate(sorted(profile.bars.items())):
            b = self.cfg.bars[slot]
            b.fd, b.fd_offset, b.size = region.fd, region.offset, region.size
            b.base = region.ptr
            self.slots[bar] = (slot, region)

    def _ops(self, out, ops):
        return fill_ops(out, ops, self.slots)

    def run_batch(self, n, hists, deadline_ns=0):
        cfg = self.cfg
        cfg.loops = n
        cfg.deadline_ns = deadline_ns
        cfg.raised_base = self.ctx.profile.raised
        cfg.last_arrival_ns = self.ctx.last_arrival_ns
        stamps = self.ctx.explain.active if self.ctx.explain is not None else None
        cfg.stamps = ffi.NULL if stamps is None else stamps
        res = self.pending = ffi.new("struct pyvfio_loop_result *")
        old = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        try:
            self.loop(cfg, res, hists[0].c, hists[1].c, hists[2].c)
        finally:
            signal.set_wakeup_fd(old)
            try:
                while os.read(self.rfd, 64):
                    pass
            except BlockingIOError:
                pass
        b = self.collect()
        if b.reason == ERROR:
            raise VfioError(ffi.string(res.errop).decode(), res.err)
        return b

    def collect(self):
        """The last batch's counts, once (also after a Ctrl-C cut it short: the C
        loop had counted and recorded everything it did)."""
        res, self.pending = self.pending, None
        if res is None:
            return None
        return Batch(res.delivered, res.spurious, res.extra_signals, res.raised, res.last_cause,
                     _REASON[res.reason], res.items, res.last_arrival_ns)

    def trigger_pending(self):
        return trigger_pending(self.ctx.intx.trigger)

    def service_external(self):
        return service_external(self.ctx)

    def guest_json(self):
        return None   # the toy guest: nothing beyond the run's own counts

    def close(self):
        for fd in (self.rfd, self.wfd):
            os.close(fd)
        self.keep.clear()


def fill_ops(out, ops, slots):
    """Copy a register program (profiles.base.Op) into the C loop's op array;
    `slots` maps the profile's BAR names to (slot in cfg.bars, region)."""
    if len(ops) > lib.PYVFIO_MAX_OPS:
        raise UsageError("register program too long for the C loop")
    for o, op in zip(out, ops):
        # Check every access the op can make, once, here: the loop trusts them.
        for bar, offset, width, write in op.offsets():
            slots[bar][1].check(offset, width, write)
        o.kind, o.width, o.offset = _KIND[op.kind], op.width, op.offset
        o.bar = slots[op.bar][0] if op.bar is not None else 0
        o.rotate, o.stride, o.count = op.rotate, op.stride, op.count
        o.value, o.mask, o.invert = op.value, op.mask, op.invert
        if op.status_bar is not None:
            o.status_bar, o.status_offset = slots[op.status_bar][0], op.status_offset
            o.status_width = op.status_width
    return len(ops)


def fill_steps(out, steps, keep):
    """Copy a sequence of pyvfio.intx steps into the C loop's step array; `keep`
    receives the cdata the array points into (keep it as long as the array)."""
    if len(steps) > lib.PYVFIO_MAX_STEPS:
        raise UsageError(f"a sequence of {len(steps)} steps is too long for the C loop")
    del keep[:]
    for o, step in zip(out, steps):
        if step.kind == "ioctl" and step.buf is None:
            raise UsageError(f"{step.what}: not encoded (the host has no device fd)")
        o.kind, o.fd, o.req = _STEP[step.kind], step.fd, step.req
        o.buf = ffi.NULL if step.buf is None else _keep(keep, ffi.from_buffer(step.buf))
        o.what = _keep(keep, ffi.new("char[]", step.what.encode()))
    return len(steps)


def _keep(keep, cdata):
    keep.append(cdata)
    return cdata
