"""The CPU that takes the controller's notifications (docs/model.md, "The CPU rule").

Hard interrupts are off while a handler runs and while the kernel holds an
irqsave lock (desc->lock, vdev->irqlock), so a notification raised then (an EOI
that re-presents a line, an unmask that finds it asserted) is not taken at once:
it waits in the presenter (XIVE's event queue replayed by xive_do_queue_eoi, the
LAPIC's IRR) and is taken, FIFO, when interrupts come back on.  The model takes
them at two points: after each handle_fasteoi_irq returns (the drain loop below),
and when the current host entry (a register access, an ioctl, an eventfd write)
returns to the user; the user never observes a notification still queued.

The workqueue (schedule_work, used by virqfd's inject) runs at the same point,
after the pending interrupts: a kworker is scheduled by the writer's syscall and
has run by the time the user's next step (its next wait) can observe it.
"""

from collections import deque


class Cpu:
    __slots__ = ("pending", "work", "depth", "trace")

    def __init__(self, trace=None):
        self.pending = deque()      # deliver callables, one per notification
        self.work = deque()         # schedule_work() items
        self.depth = 0              # nesting of host entries (irqs considered off)
        self.trace = trace

    def notify(self, deliver):
        """The controller presents an interrupt: queue it (taken at irq_restore)."""
        self.pending.append(deliver)

    def schedule_work(self, fn):
        self.work.append(fn)

    def enter(self):
        self.depth += 1

    def leave(self):
        """Return from a host entry: take pending interrupts, then run work."""
        self.depth -= 1
        if self.depth == 0 and (self.pending or self.work):
            self.run_pending()

    def run_pending(self):
        self.depth += 1
        pending, work = self.pending, self.work
        try:
            while pending or work:
                while pending:
                    deliver = pending.popleft()
                    deliver()               # ... -> handle_fasteoi_irq
                if work:
                    fn = work.popleft()
                    if self.trace is not None:
                        self.trace("kworker", f"run deferred work {getattr(fn, '__name__', fn)}")
                    fn()
        finally:
            self.depth -= 1
