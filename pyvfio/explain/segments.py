"""Attribution: one round trip's time, split into segments at the kernel's events.

Per delivered interrupt the engine gives four times (csrc/loop.h, struct
pyvfio_stamp): t0 before the raise, t1 the trigger read, ta the ack program
done, t2 the EOI done.  The trace gives the kernel's side in between: the card's
hard IRQ entry, the eventfd signalled (irq_handler_exit on the card's line: vfio's
handler returned), the measuring thread switched in, and the unmask syscall's work
done (its sys_exit; the return of vfio's unmask handler on a kernel without syscall
events).  The eight times bound the segments of SEGMENTS (docs/explain.md says
what each is and whose it is).  A boundary the kernel gives no event for is
folded: the segment that starts at it joins the one before and leaves the list
(`segments_for`).  Time the measuring
thread spent preempted (runnable, another task on its CPU) is the scheduler's
wherever it fell: it is moved into `wakeup`."""

import bisect
import heapq
from typing import NamedTuple

from ..histogram import Histogram
from .events import num

class Segment(NamedTuple):
    span: str      # from -> to, for the analysis' table
    meaning: str   # what it is, for people (the report's legend; docs/explain.md)
    owner: str     # whose time it is, for the analysis' last line


# The one table of segments, in round-trip order.
SEGMENT = {
    "raise": Segment("raise -> host hard IRQ",
                     "the raise written to the card until the host's hard IRQ entry on its line",
                     "the card and the host's interrupt delivery"),
    "hardirq": Segment("hard IRQ -> eventfd signalled",
                       "hard IRQ entry until vfio's handler signalled the trigger eventfd",
                       "the host's hard IRQ path (vfio's handler)"),
    "wakeup": Segment("signalled -> thread running", "the eventfd signalled until the measuring thread ran",
                      "the host scheduler (the measuring thread waited to run)"),
    "return": Segment("running -> event in userspace", "the thread running until the event was back in userspace",
                      "the host kernel's return to userspace"),
    "handler": Segment("guest handler (ack)", "the guest handler (the profile's ack program)",
                       "the guest handler (the profile's ack program)"),
    "unmask": Segment("unmask syscall -> its work done", "the unmask syscall until its work in the kernel was "
                      "done (vfio re-enabled the line, for the ioctl)",
                      "the host kernel's unmask path"),
    "reenable": Segment("syscall work done -> EOI done",
                        "the unmask syscall's work done until the EOI was done (the syscall returned)",
                        "the host kernel's return from the unmask"),
    # --guest kvm (explain/kvm.py): raise and hardirq as above, then the vCPU's side
    "inject": Segment("eventfd signalled -> guest's line raised",
                      "the trigger signalled until KVM raised the guest's line (kvm_set_irq: the irqfd's work)",
                      "KVM's irqfd injection (a kworker the host schedules)"),
    "enter": Segment("line raised -> guest entered",
                     "the guest's line raised until the vCPU entered the guest with it (kvm_entry)",
                     "the host scheduler and KVM (the halted vCPU woken and entered)"),
    "deliver": Segment("guest entered -> guest ISR", "the vCPU entered until the guest's ISR ran",
                       "the interrupt's delivery in the guest (the CPU, or its emulation)"),
    "ack": Segment("guest ISR -> EOI exit", "the guest's ISR: its ack program until its EOI exited to KVM",
                   "the guest handler (the profile's ack program)"),
    "eoi": Segment("EOI exit -> line re-enabled",
                   "the EOI's exit until vfio re-enabled the line (KVM's resampler, or the VMM's unmask)",
                   "KVM's EOI and vfio's unmask path"),
    "resume": Segment("line re-enabled -> guest loop", "the line re-enabled until the guest was back in its loop",
                      "KVM's return into the guest and the ISR's return"),
}
SEGMENTS = ("raise", "hardirq", "wakeup", "return", "handler", "unmask", "reenable")   # the toy guest's
KVM_SEGMENTS = ("raise", "hardirq", "inject", "enter", "deliver", "ack", "eoi", "resume")
SIGNALLED = "pyvfio_signalled"   # kretprobe on vfio_intx_handler
UNMASKED = "pyvfio_unmasked"     # kretprobe on the unmask path (vfio_pci_intx_unmask*)
SLACK_NS = 1000                  # the trace's times are whole microseconds
MAX_BREACHES = 20


def segments_for(unmask_probe):
    """The run's segment list: `reenable` folds into `unmask` without an event ending the unmask."""
    return SEGMENTS if unmask_probe else tuple(s for s in SEGMENTS if s != "reenable")


class Window:
    """The events of one batch, indexed by time."""

    def __init__(self, events):
        self.events = events
        self.ts = [e.ts for e in events]

    def between(self, lo, hi):
        return self.events[bisect.bisect_left(self.ts, lo):bisect.bisect_right(self.ts, hi)]


def split(stamp, window, tid, irq, segments):
    """One interrupt's attribution: (segments_ns, blocking, host_irqs), or None when
    the card's hard IRQ entry is not in the trace (events lost, or a line shared)."""
    t0, t1, ta, t2 = stamp
    evs = window.between(t0 - SLACK_NS, t2 + SLACK_NS)
    entry = signalled = running = unmasked = None
    host_irqs, blocking, out_at, preempted = {}, {}, None, []
    own = f"irq={irq} "      # the card's line, told without parsing the fields (most events)
    for e in evs:
        n = e.name
        if n == "irq_handler_entry":
            if e.body.startswith(own):
                if entry is None and e.ts <= t1 + SLACK_NS:
                    entry = e.ts
            elif t0 <= e.ts <= t2:
                f = e.fields
                which = num(f, "irq")
                key = (which, f.get("name", "?"))
                host_irqs[key] = host_irqs.get(key, 0) + 1
        elif n in (SIGNALLED, "irq_handler_exit") and entry is not None and signalled is None:
            if n == SIGNALLED or e.body.startswith(own):
                signalled = e.ts
        elif n == "sched_switch":
            f = e.fields
            prev, nxt = num(f, "prev_pid"), num(f, "next_pid")
            if prev == tid and f.get("prev_state", "").startswith("R"):
                out_at = (e.ts, f.get("next_comm", "?"), nxt)   # preempted
            elif nxt == tid:
                if out_at is not None:     # back after a preemption: that task ran instead
                    _block(blocking, out_at[1], out_at[2], e.ts - out_at[0])
                    preempted.append((out_at[0], e.ts))
                    out_at = None
                elif signalled is not None and prev not in (0, tid):   # woken, it waited for prev
                    _block(blocking, f.get("prev_comm", "?"), prev, e.ts - signalled)
                if entry is not None and e.ts <= t1 + SLACK_NS:
                    running = e.ts
        elif (n == UNMASKED or n.startswith("sys_")) and unmasked is None and e.ts >= ta - SLACK_NS:
            unmasked = e.ts
    if entry is None:
        return None
    if signalled is None:
        signalled = entry
    if running is None or running < signalled:
        running = signalled   # never slept (the trigger came while it ran): no wakeup
    bounds = [t0]
    for b, hi in ((entry, t1), (signalled, t1), (running, t1), (t1, t1), (ta, ta)):
        bounds.append(min(max(b, bounds[-1]), hi))
    if "reenable" in segments:
        bounds.append(min(max(unmasked if unmasked is not None else t2, ta), t2))
    bounds.append(t2)
    seg = {s: bounds[k + 1] - bounds[k] for k, s in enumerate(segments)}
    # Preempted (runnable, another task on the CPU) is the scheduler's time wherever it
    # fell: moved into wakeup, out of the segment it interrupted (the sum is unchanged).
    for lo, hi in preempted:
        for k, s in enumerate(segments):
            if s != "wakeup":
                moved = max(0, min(hi, bounds[k + 1]) - max(lo, bounds[k]))
                seg[s] -= moved
                seg["wakeup"] += moved
    return seg, blocking, host_irqs


def _block(blocking, comm, pid, ns):
    if ns > 0:
        key = (comm, pid)
        blocking[key] = blocking.get(key, 0) + ns


class Breakdown:
    """Per-segment histograms over the whole run, the worst round trip and the
    worst breaches of the threshold; memory flat whatever the number of interrupts
    (only those kept are held, each as its numbers)."""

    def __init__(self, segments, threshold_ns=None, splitter=None):
        self.segments = segments
        self.split = splitter or split    # the KVM guest's is explain/kvm.py's
        self.threshold_ns = threshold_ns
        self.hists = {s: Histogram() for s in segments}
        self.explained = self.unattributed = 0
        self.worst = None
        self.breaches = []     # a min-heap of (round trip, seq, kept) of at most MAX_BREACHES

    def add(self, seq, stamps, events, tid, irq):
        """Attribute one batch: `stamps` (t0, t1, ta, t2) of interrupts seq, seq+1, ..."""
        window = Window(events)
        for k, stamp in enumerate(stamps):
            got = self.split(stamp, window, tid, irq, self.segments)
            if got is None:
                self.unattributed += 1
                continue
            self.explained += 1
            seg, blocking, host_irqs = got
            for s, ns in seg.items():
                self.hists[s].record(ns)
            rtt = stamp[3] - stamp[0]
            over = self.threshold_ns is not None and rtt > self.threshold_ns
            if self.worst is not None and rtt <= self.worst[0] and not over:
                continue
            kept = (rtt, seq + k, seg, blocking, host_irqs)
            if self.worst is None or rtt > self.worst[0]:
                self.worst = kept
            if over:
                item = (rtt, seq + k, kept)
                if len(self.breaches) < MAX_BREACHES:
                    heapq.heappush(self.breaches, item)
                elif rtt > self.breaches[0][0]:
                    heapq.heapreplace(self.breaches, item)

    def unattributed_batch(self, n):
        """A batch whose trace could not be read: all of it unattributed."""
        self.unattributed += n

    def kept(self):
        """(worst, breaches worst first) as kept tuples."""
        return self.worst, [b[2] for b in sorted(self.breaches, key=lambda b: (-b[0], b[1]))]
