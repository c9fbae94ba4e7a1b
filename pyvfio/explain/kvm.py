"""--explain for --guest kvm: the vCPU's round trip split at KVM's tracepoints.

The KVM guest stamps its own TSC (pyvfio/kvm/guest_program.py: T0 before the raise,
the ISR's entry, the EOI done, back in its loop); the host's events must be on that
clock.  So this tracer's instance uses trace_clock `x86-tsc` (the host's TSC, printed
as a raw count) and each guest stamp is moved onto it with the vCPU's TSC offset
and scaling, which KVM shows in debugfs (kvm/PID-VMFD/vcpu0/tsc-offset and
tsc-scaling-ratio): host TSC = (guest TSC - offset) * 2^frac / ratio.  Both become
nanoseconds with the engine's calibrated TSC rate; every boundary is then exact
to a few TSC cycles, none is rounded to a microsecond (docs/explain.md says how
exact that is in practice).

The guest keeps T0's low 32 bits per interrupt; `Stamps.add` unwraps them backward
from the batch end's full 64-bit TSC, one interrupt at a time (each is less than
2^32 cycles before the next), and rebuilds the other stamps from the guest's deltas.

Boundaries, in round-trip order (segments.KVM_SEGMENTS, the words in SEGMENT):
the card's hard IRQ entry, vfio's handler returning (the trigger signalled: the
irqfd), kvm:kvm_set_irq raising the guest's GSI, the kvm:kvm_entry that took the
interrupt into the guest (the last before the ISR's stamp), the ISR's stamp, the
kvm:kvm_exit of the guest's EOI (the last exit before kvm:kvm_ack_irq), vfio's unmask
handler returning (the resampler's unmask, or the VMM's with --unmask ioctl|eventfd),
and the guest back in its loop."""

import os
import re

from . import events, tracefs
from .events import num
from .segments import KVM_SEGMENTS, SIGNALLED, UNMASKED

CLOCK = "x86-tsc"
_SET_IRQ = re.compile(r"gsi (\d+) level (\d+)")
_PIN = re.compile(r"pin (\d+)")
WRAP = 1 << 32


def segments_for(probes):
    """The run's segment list: a boundary without its kretprobe folds the segment
    that starts at it into the one before."""
    gone = {"inject"} if SIGNALLED not in probes else set()
    if UNMASKED not in probes:
        gone.add("resume")
    return tuple(s for s in KVM_SEGMENTS if s not in gone)


class TscMap:
    """Guest TSC -> host TSC for one vCPU: KVM's offset and scaling (debugfs)."""

    def __init__(self, offset, ratio=None, frac_bits=0):
        self.offset, self.ratio, self.frac_bits = offset, ratio, frac_bits

    @classmethod
    def read(cls, vcpu_dir):
        """From debugfs's kvm/PID-VMFD/vcpu0; Missing (one line) where it is not there."""
        try:
            offset = int(tracefs.read(os.path.join(vcpu_dir, "tsc-offset")))
        except (OSError, ValueError) as exc:
            raise tracefs.Missing(f"the vCPU's TSC offset is not readable in {vcpu_dir} "
                                  f"({getattr(exc, 'strerror', None) or exc}): a kernel with "
                                  "KVM's debugfs is needed") from None
        try:   # only where the CPU scales the guest's TSC
            ratio = int(tracefs.read(os.path.join(vcpu_dir, "tsc-scaling-ratio")))
            frac = int(tracefs.read(os.path.join(vcpu_dir, "tsc-scaling-ratio-frac-bits")))
        except (OSError, ValueError):
            ratio, frac = None, 0
        return cls(offset, ratio, frac)

    def host(self, guest_tsc):
        t = guest_tsc - self.offset
        if self.ratio and self.ratio != 1 << self.frac_bits:
            t = (t << self.frac_bits) // self.ratio
        return t


class Stamps:
    """The guest's stamps of the batches run since the last `take`, on the host's
    TSC in ns: (t0, ISR entry, EOI done, back in the loop) per interrupt."""

    def __init__(self, tsc_map, tsc_hz):
        self.map, self.ns_per_tick = tsc_map, 1e9 / tsc_hz
        self.base = None          # the host TSC at the first stamp: ns count from it
        self.placed, self.unplaced = [], 0

    def ns(self, host_tsc):
        return round((host_tsc - self.base) * self.ns_per_tick)

    def add(self, t0_low, wakeup, service, rtt, end_tsc):
        """One guest batch: its arrays (32-bit, per interrupt) and the batch end's full
        TSC (None when the watchdog kicked the guest: then nothing places them)."""
        n = len(t0_low)
        if end_tsc is None:
            self.unplaced += n
            return
        full = [0] * n
        later_full, later_low = end_tsc, end_tsc % WRAP
        for k in range(n - 1, -1, -1):   # backward from the batch end: each gap < 2^32
            full[k] = later_full - (later_low - t0_low[k]) % WRAP
            later_full, later_low = full[k], t0_low[k]
        host = self.map.host
        if self.base is None and n:
            self.base = host(full[0])
        for k in range(n):
            t0 = host(full[k])
            self.placed.append((self.ns(t0), self.ns(host(full[k] + wakeup[k])),
                                self.ns(host(full[k] + wakeup[k] + service[k])), self.ns(host(full[k] + rtt[k]))))

    def take(self):
        """(the stamps placed, how many could not be) since the last take."""
        out, lost = self.placed, self.unplaced
        self.placed, self.unplaced = [], 0
        return out, lost

    def events(self, text):
        """The trace's events (x86-tsc: raw counts) with their times in ns on the stamps' scale."""
        if self.base is None:
            return []
        return [e._replace(ts=self.ns(e.ts)) for e in events.parse(text)]


def split(gsi):
    """A segments.Breakdown splitter for the KVM guest on GSI `gsi`: one interrupt's
    (segments_ns, blocking, host_irqs), or None without the card's hard IRQ entry."""
    def one(stamp, window, tid, irq, segments):
        t0, t1, t2, t3 = stamp
        entry = signalled = injected = entered = acked = unmasked = None
        exits, host_irqs = [], {}
        for e in window.between(t0, t3):
            n = e.name
            if n == "irq_handler_entry":
                f = e.fields
                which = num(f, "irq")
                if which == irq:
                    if entry is None and e.ts <= t1:
                        entry = e.ts
                else:
                    key = (which, f.get("name", "?"))
                    host_irqs[key] = host_irqs.get(key, 0) + 1
            elif entry is None:
                continue
            elif n == SIGNALLED and signalled is None:
                signalled = e.ts
            elif n == "kvm_set_irq" and injected is None:
                m = _SET_IRQ.search(e.body)
                if m and int(m.group(1)) == gsi and m.group(2) != "0":
                    injected = e.ts
            elif n == "kvm_entry" and injected is not None and e.ts <= t1:
                entered = e.ts                       # the last entry before the ISR ran
            elif n == "kvm_exit" and e.ts >= t1 and acked is None:
                exits.append(e.ts)
            elif n == "kvm_ack_irq" and acked is None and e.ts >= t1:
                m = _PIN.search(e.body)
                if m and int(m.group(1)) == gsi:
                    acked = e.ts
            elif n == UNMASKED and unmasked is None and e.ts >= t1:
                unmasked = e.ts
        if entry is None:
            return None
        # the EOI's exit: the last exit before KVM took the EOI (else the ISR's first)
        eoi = exits[-1] if exits and acked is not None else exits[0] if exits else None
        at = {"raise": t0, "hardirq": entry, "inject": signalled, "enter": injected,
              "deliver": entered, "ack": t1, "eoi": eoi, "resume": unmasked}
        bounds, seg = [], {}
        for s in segments:   # a boundary missing for this interrupt: its segment is 0
            b = at[s]
            bounds.append(bounds[-1] if b is None else min(max(b, bounds[-1]), t3) if bounds else b)
        bounds.append(t3)
        for k, s in enumerate(segments):
            seg[s] = bounds[k + 1] - bounds[k]
        return seg, {}, host_irqs
    return one


class Tracer(tracefs.Tracer):
    """tracefs.Tracer on the host's TSC with KVM's events for the vCPU thread `tid`."""

    def __init__(self, root, tid, irq, gsi, pid=None):
        super().__init__(root, tid, irq, pid)
        self.gsi = gsi

    def _events(self):
        clocks = tracefs.read(os.path.join(self.instance, "trace_clock"))
        if CLOCK not in clocks.replace("[", " ").replace("]", " ").split():
            raise tracefs.Missing(f"the host has no '{CLOCK}' trace clock (the KVM guest's "
                                  "breakdown needs the host's TSC: x86 only)")
        self._w("trace_clock", CLOCK)
        self._event("irq/irq_handler_entry")            # every IRQ: those in between are named
        self._event("kvm/kvm_set_irq", f"gsi == {self.gsi}")
        self._event("kvm/kvm_entry", f"common_pid == {self.tid}")
        self._event("kvm/kvm_exit", f"common_pid == {self.tid}")
        self._event("kvm/kvm_ack_irq", f"pin == {self.gsi}")
        self._kprobes(("signalled", "unmasked"))    # vfio's handler and unmask returned
