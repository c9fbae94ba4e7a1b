"""The C engine: csrc/loop.c through cffi, the GIL released for a whole batch and
no Python per interrupt.  Needs a real vfio device (real fds, real registers)."""

import os
import signal

from .. import uapi
from .._binding import ffi, lib
from ..errors import UsageError, VfioError
from ..intx import INTX
from ..profiles.base import READ, WRITE, WRITE_CAUSE
from .batch import DONE, ERROR, SIGNAL, TIMEOUT, Batch

_KIND = {WRITE: lib.PYVFIO_OP_WRITE, READ: lib.PYVFIO_OP_READ, WRITE_CAUSE: lib.PYVFIO_OP_WRITE_CAUSE}
_REASON = {lib.PYVFIO_DONE: DONE, lib.PYVFIO_TIMEOUT: TIMEOUT, lib.PYVFIO_SIGNAL: SIGNAL,
           lib.PYVFIO_ERROR: ERROR}


class CLoop:
    """The loop's configuration, built once per run (and again after a rearm)."""

    def __init__(self, ctx):
        host = ctx.host
        if getattr(host, "name", None) != "vfio":
            raise UsageError(f"the C engine needs a real vfio device, not the {host.name} host",
                             "use --engine python with the model host")
        self.ctx = ctx
        self.keep = []        # buffers the C side points into, for the whole run
        self.rearm_keep = []  # the --rearm-each buffers of the current eventfds
        self.pending = None
        cfg = self.cfg = ffi.new("struct pyvfio_loop_cfg *")
        cfg.device_fd = host.fd
        cfg.set_irqs_req = uapi.VFIO_DEVICE_SET_IRQS
        cfg.unmask_buf = self._buf(INTX, uapi.VFIO_IRQ_SET_ACTION_UNMASK | uapi.VFIO_IRQ_SET_DATA_NONE, 1, b"")
        self._bars(ctx.profile)
        cfg.n_raise = self._ops(cfg.raise_ops, ctx.profile.raise_ops)
        cfg.n_ack = self._ops(cfg.ack_ops, ctx.profile.ack_ops)
        cfg.watchdog_ms = ctx.config.watchdog_ms
        cfg.interval_ns = ctx.config.interval_us * 1000
        # Python's C signal handler writes to this pipe; the loop polls it too, so
        # Ctrl-C or SIGTERM ends a batch at once and teardown runs in Python.
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        cfg.wakeup_fd = self.rfd
        self.update_fds()

    def _buf(self, index, flags, count, payload, keep=None):
        buf = self.ctx.host.irq_set_buffer(index, flags, 0, count, payload)
        (self.keep if keep is None else keep).append(buf)
        return ffi.from_buffer(buf)

    def update_fds(self):
        """(Re)bind the eventfds: after a rearm they are the same fds, but --rearm-each
        needs the SET_IRQS buffers that re-register them."""
        intx, cfg = self.ctx.intx, self.cfg
        cfg.trigger_fd = intx.trigger.fileno()
        cfg.unmask_fd = intx.unmask_efd.fileno() if intx.unmask_efd is not None else -1
        cfg.n_rearm = 0
        if intx.rearm_each:
            keep = []
            fd = lambda efd: efd.fileno().to_bytes(4, "little", signed=True)  # noqa: E731
            bufs = [self._buf(INTX, uapi.VFIO_IRQ_SET_ACTION_TRIGGER | uapi.VFIO_IRQ_SET_DATA_NONE, 0, b"", keep),
                    self._buf(INTX, uapi.VFIO_IRQ_SET_ACTION_TRIGGER | uapi.VFIO_IRQ_SET_DATA_EVENTFD, 1,
                              fd(intx.trigger), keep)]
            if intx.unmask_efd is not None:
                bufs.append(self._buf(INTX, uapi.VFIO_IRQ_SET_ACTION_UNMASK | uapi.VFIO_IRQ_SET_DATA_EVENTFD,
                                      1, fd(intx.unmask_efd), keep))
            for i, b in enumerate(bufs):
                cfg.rearm_bufs[i] = b
            cfg.n_rearm = len(bufs)
            self.rearm_keep = keep  # the previous set is no longer pointed to

    def _bars(self, profile):
        if len(profile.bars) > lib.PYVFIO_MAX_BARS:
            raise UsageError(f"profile {profile.name} uses more BARs than the C loop supports")
        self.bar_slot, self.regions = {}, {}
        for slot, (bar, region) in enumerate(sorted(profile.bars.items())):
            b = self.cfg.bars[slot]
            b.fd, b.fd_offset, b.size = region.fd, region.offset, region.size
            b.base = region.ptr
            self.bar_slot[bar] = slot
            self.regions[slot] = region

    def _ops(self, out, ops):
        if len(ops) > lib.PYVFIO_MAX_OPS:
            raise UsageError("register program too long for the C loop")
        for i, op in enumerate(ops):
            slot = self.bar_slot[op.bar]
            # Check every offset the op can reach, once, here: the loop trusts them.
            for k in range(op.rotate):
                self.regions[slot].check(op.offset + op.stride * k, op.width, op.kind != READ)
            o = out[i]
            o.kind, o.bar, o.width = _KIND[op.kind], slot, op.width
            o.offset, o.rotate, o.stride, o.value = op.offset, op.rotate, op.stride, op.value
        return len(ops)

    def run_batch(self, n, hists, deadline_ns=0):
        cfg = self.cfg
        cfg.loops = n
        cfg.deadline_ns = deadline_ns
        cfg.raised_base = self.ctx.profile.raised
        res = self.pending = ffi.new("struct pyvfio_loop_result *")
        old = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        try:
            lib.pyvfio_intx_loop(cfg, res, hists[0].c, hists[1].c, hists[2].c)
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
                     _REASON[res.reason])

    def close(self):
        for fd in (self.rfd, self.wfd):
            os.close(fd)
        self.keep.clear()
        self.rearm_keep = []
