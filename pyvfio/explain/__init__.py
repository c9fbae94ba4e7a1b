"""--explain: where each INTx round trip's time goes (docs/explain.md).

`Explainer` is what a Run is handed: the engine writes each delivered interrupt's
times into `stamps` (csrc/loop.h, struct pyvfio_stamps: at most CAP per batch,
so memory stays flat), and after every batch the Run calls `after_batch`, which
reads the host's trace (tracefs.py), attributes each interrupt's time to the
segments (segments.py) and empties the stamps.  With --guest kvm the stamps are
the guest's own, handed over by its engine, and the trace KVM's (kvm.py).  `to_json` is the result's
"explain" section; `report` the auto-analysis (analysis.py) printed after the
summary.  Where tracing is impossible, `missing` is the one-line reason, said
once on stderr; the run goes on and its verdict is never touched."""

import sys
import threading

from .._binding import ffi
from . import analysis, events, kvm, segments, tracefs

CAP = 1 << 16              # stamps per batch; the Run sizes its batches to it
SHOWN = 3                  # breaches printed after the summary (all of them in the JSON)
BATCH = 1 << 13            # the batch size while tracing: the buffer holds one batch's events


def not_traced(host):
    """Why a run on a host other than vfio (the model) has no breakdown."""
    return f"the {host} host has no kernel to trace (explain needs a card through vfio)"


class Explainer:
    def __init__(self, threshold_us=None, mounts="/proc/mounts", root=None):
        self.threshold_ns = int(threshold_us * 1000) if threshold_us else None
        self._mounts, self._root = mounts, root
        self.missing = None
        self.tracer = None
        self.kvm = None            # --guest kvm: the guest's stamps (explain/kvm.py Stamps)
        self.breakdown = None
        self.seq = 0
        self.lost = 0
        self.stamps = ffi.new("struct pyvfio_stamps *")
        self._rec = ffi.new("struct pyvfio_stamp[]", CAP)
        self.stamps.rec, self.stamps.cap = self._rec, CAP

    def start(self, irq, guest="toy", host="vfio", tid=None, source="raise", engine=None):
        """Before the first batch, INTx enabled (`irq`: the host IRQ vfio's line is on;
        `tid`: the measuring thread, default the caller's; `engine`: the KVM guest's
        KvmLoop, whose vCPU is traced)."""
        tid = threading.get_native_id() if tid is None else tid
        if host != "vfio":
            return self._miss(not_traced(host))
        if source == "external":
            return self._miss("--source external has no raise to time from (use --source raise or dma)")
        if guest not in ("toy", "kvm"):
            return self._miss(f"the {guest} guest's round trip is not broken down yet (use --guest toy)")
        if irq is None:
            return self._miss("the card's host IRQ is not in /proc/interrupts")
        root = self._root or self._find()
        if root is None:
            return self._miss("no tracefs mounted (mount -t tracefs nodev /sys/kernel/tracing)")
        if guest == "kvm":
            return self._start_kvm(root, irq, engine)
        tracer = tracefs.Tracer(root, tid, irq)
        try:
            tracer.start()
        except tracefs.Missing as exc:
            return self._miss(str(exc))
        self.tracer, self.tid, self.irq = tracer, tid, irq
        self.breakdown = segments.Breakdown(segments.segments_for(tracer.unmask_event),
                                            self.threshold_ns)
        if not tracer.unmask_event:
            print("pyvfio: warning: --explain: no event ends the unmask (no syscall events, no kprobe on "
                  f"{tracefs.PROBES[-1][1][0]}): its segment is folded into its neighbour", file=sys.stderr)

    @staticmethod
    def _warn_probes(tracer):
        """The KVM guest's boundaries at kretprobes: a missing one folds its segment."""
        if segments.SIGNALLED not in tracer.probes or segments.UNMASKED not in tracer.probes:
            gone = [f for e, fs in tracefs.PROBES if e not in tracer.probes for f in fs[:1]]
            print(f"pyvfio: warning: --explain: no kprobe on {', '.join(gone)} (the kernel has no such "
                  "function, or no kprobes): its segment is folded into its neighbour", file=sys.stderr)

    def _find(self, debugfs=False):
        try:
            with open(self._mounts) as f:
                text = f.read()
            return tracefs.mounted(text, "debugfs") if debugfs else tracefs.find(text)
        except OSError:
            return None

    def _start_kvm(self, root, irq, engine):
        """The KVM guest's breakdown: its vCPU thread traced on the host's TSC."""
        if engine is None:
            return self._miss("the KVM guest's engine is not running")
        dbg = self._find(debugfs=True)
        if dbg is None:
            return self._miss("debugfs is not mounted (KVM shows the vCPU's TSC offset there): "
                              "mount -t debugfs none /sys/kernel/debug")
        tid = engine.thread.native_id
        tracer = kvm.Tracer(root, tid, irq, engine.gsi)
        try:
            stamps = kvm.Stamps(kvm.TscMap.read(engine.debugfs_dir(dbg)), engine.tsc_hz)
            tracer.start()
        except tracefs.Missing as exc:
            return self._miss(str(exc))
        self.tracer, self.tid, self.irq, self.kvm = tracer, tid, irq, stamps
        self.breakdown = segments.Breakdown(kvm.segments_for(tracer.probes), self.threshold_ns,
                                            splitter=kvm.split(engine.gsi))
        self._warn_probes(tracer)

    def _miss(self, why):
        self.missing = why
        print(f"pyvfio: warning: --explain: {why}; the run goes on without the breakdown", file=sys.stderr)

    @property
    def active(self):
        """The stamps for the engine while tracing, else None (the engine stamps nothing)."""
        return self.stamps if self.tracer is not None else None

    @property
    def batch(self):
        """The most interrupts one batch may have while explaining (the KVM guest's
        trace has twice the events per interrupt: half as many)."""
        return (BATCH // 2 if self.kvm is not None else BATCH) if self.tracer is not None else CAP

    def after_batch(self):
        """Attribute the batch the engine just ran, then empty the stamps."""
        if self.kvm is not None:   # the guest's stamps (KvmLoop hands them over)
            stamps, unplaced = self.kvm.take()
            self.breakdown.unattributed_batch(unplaced)
            self.seq += unplaced
            n = len(stamps)
        else:
            n = self.stamps.n
            rec = self._rec
            stamps = [(r.t0, r.t1, r.ta, r.t2) for r in (rec[i] for i in range(n))]
            self.stamps.n = 0
        if self.tracer is None or not n:
            self.seq += n
            return
        try:
            text, lost = self.tracer.take()
        except OSError as exc:
            self.breakdown.unattributed_batch(n)
            self.seq += n
            if self.missing is None:
                print(f"pyvfio: warning: --explain: reading the trace failed ({exc.strerror}): "
                      "its interrupts are unattributed", file=sys.stderr)
            return
        self.lost = lost
        evs = self.kvm.events(text) if self.kvm is not None else events.parse(text)
        self.breakdown.add(self.seq, stamps, evs, self.tid, self.irq)
        self.seq += n

    def close(self):
        if self.tracer is not None:
            self.tracer.close()

    def to_json(self):
        if self.missing is not None or self.breakdown is None:
            return {"missing": self.missing or "the run ended before tracing started"}
        b = self.breakdown
        worst, breaches = b.kept()
        return {"missing": None, "traced": list(self.tracer.traced), "segments": list(b.segments),
                "explained": b.explained, "unattributed": b.unattributed,
                "latency": {s: h.to_json() for s, h in b.hists.items()},
                "worst": analysis.analysis(worst, "worst round trip") if worst else None,
                "breaches": [analysis.analysis(k, f"breach of the {self.threshold_ns / 1e3:g} us threshold")
                             for k in breaches]}


def report_lines(section):
    """What `run` prints after its summary: the per-segment p50/p99/max and the
    analyses (a result's "explain" section in, lines out)."""
    if section is None:
        return []
    if section.get("missing"):
        return [f"explain: no breakdown: {section['missing']}"]
    out = [f"explain: {section['explained']} interrupt(s) attributed, {section['unattributed']} not "
           f"(traced: {', '.join(section['traced'])})"]
    for s in section["segments"]:
        h = section["latency"][s]
        if h.get("count"):
            out.append(f"{s:>10} us: p50 {h['p50_us']:.2f}  p99 {h['p99_us']:.2f}  max {h['max_us']:.2f}")
    worst = section.get("worst")
    breaches = [a for a in section.get("breaches", []) if not worst or a["seq"] != worst["seq"]]
    for a in ([worst] if worst else []) + breaches[:SHOWN]:
        out += ["", a["text"]]
    if len(breaches) > SHOWN:
        out.append(f"({len(breaches) - SHOWN} more breach(es) in the JSON's explain.breaches)")
    return out

