"""One run of the INTx engine: drives a card's interrupts through a host (real or model),
counts what was delivered, stalled and recovered, and measures latency.

`Run` owns one run: it arms INTx (or, RunConfig.irq, the card's MSI or MSI-X:
pyvfio.intx), initialises the card, runs batches on the chosen
engine (C or Python; both execute the profile's register programs and the same
protocol), handles stalls between batches (the watchdog), and always tears down:
INTx disabled, card quiesced, fds closed, whatever happened.

Three sources of interrupts (RunConfig.source):
- "raise": pyvfio raises each interrupt on the card (the raise program) and times
  raise -> wakeup -> EOI;
- "external": something outside raises them (bytes into a serial port, packets to
  a NIC).  The profile's init_external program enables the receive cause, and
  every trigger is serviced by its ack_external program (read the cause, drain the
  data counting the items, acknowledge), then EOI'd like any other.  The run times
  the service and the inter-arrival times and counts the items drained.  A silence
  longer than the watchdog is not a stall: the card is asked, and only a card that
  reports a cause pending while no trigger came is (serviced by polling).
"""

import time
from dataclasses import dataclass
from typing import Protocol

import psutil

from .. import limits
from ..errors import UsageError
from ..histogram import Histogram, Window
from ..series import Series
from ..intx import UNMASK_MODES, DeviceIrq, check_kind
from ..verdict import of_run
from ..vocabulary import Access, Engine, Guest, Irqchip, Source, words
from . import python_engine
from .batch import DONE, SIGNAL, TIMEOUT, Batch
from .dma_source import DmaSource

ENGINES = words(Engine)
SOURCES = words(Source)
GUESTS = words(Guest)      # toy: pyvfio's userspace guest; kvm: a real vCPU (pyvfio/kvm)
IRQCHIPS = words(Irqchip)  # the KVM guest's interrupt controller (in KVM)
MAX_LOOPS = limits.LIMITS["loops"].high
BATCH_NS, BATCH_MAX_NS = 200_000_000, 2_000_000_000   # a batch's aimed length, and its cap
# What the three histograms of a run hold, by source (the items one counts, not ns).
HISTOGRAMS = {"raise": ("wakeup", "service", "round_trip"),
              "external": ("inter_arrival", "service", "items"),
              "dma": ("wakeup", "service", "round_trip")}


@dataclass
class RunConfig:
    loops: int = 1000
    interval_us: int = 0
    duration_s: float = 0.0
    unmask: str = "ioctl"
    access: str = "mmap"
    engine: str = "c"
    watchdog_ms: int = 1000
    recover: bool = False
    rearm_each: bool = False
    source: str = "raise"
    guest: str = "toy"
    irqchip: str = "pic"
    irq: str = "intx"           # intx, msi or msix (pyvfio.intx.IRQ_KINDS)
    eoi_first: bool = False     # the KVM guest EOIs before its ack (a negative control)

    @property
    def intx_mode(self):
        """How the DeviceIrq unmasks: the toy guest's --unmask, or what the KVM one needs."""
        if self.guest == "kvm":
            from .kvm_engine import intx_mode
            return intx_mode(self.unmask)
        return self.unmask

    def check(self):
        for name, value in (("loops", self.loops), ("interval_us", self.interval_us),
                            ("duration_s", self.duration_s), ("watchdog_ms", self.watchdog_ms)):
            limits.check(name, value)
        if self.guest not in GUESTS:
            raise UsageError(f"unknown guest {self.guest!r}", f"use one of: {', '.join(GUESTS)}")
        if self.guest == "kvm":
            self._check_kvm()
        elif self.unmask not in UNMASK_MODES:
            raise UsageError(f"unknown unmask mode {self.unmask!r}", "use ioctl or eventfd")
        elif self.irqchip != "pic":
            raise UsageError(f"--irqchip {self.irqchip} is for --guest kvm",
                             "the toy guest has no interrupt controller to choose")
        elif self.eoi_first:
            raise UsageError("--eoi-first is for --guest kvm",
                             "the toy guest's EOI always follows its ack")
        if self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r}", "use c or python")
        if self.access not in words(Access):
            raise UsageError(f"unknown access mode {self.access!r}", "use mmap or rw")
        if self.source not in SOURCES:
            raise UsageError(f"unknown interrupt source {self.source!r}", "use raise, external or dma")
        if self.source == "external" and self.interval_us:
            raise UsageError("--interval paces raises; with --source external the card's "
                             "source sets the pace", "drop -i")
        if self.irq != "intx" and self.guest == "kvm":
            raise UsageError(f"--irq {self.irq} is for --guest toy",
                             "the KVM guest takes the card's INTx through its irqchip")
        check_kind(self.irq, self.intx_mode, self.rearm_each)


    def _check_kvm(self):
        import platform

        from .kvm_engine import KVM_UNMASK
        if self.unmask not in KVM_UNMASK:
            raise UsageError(f"unknown unmask mode {self.unmask!r} for the KVM guest",
                             f"use one of: {', '.join(KVM_UNMASK)}")
        if self.irqchip not in IRQCHIPS:
            raise UsageError(f"unknown irqchip {self.irqchip!r}", f"use one of: {', '.join(IRQCHIPS)}")
        if platform.machine() != "x86_64":
            raise UsageError(f"--guest kvm is for x86_64 hosts, not {platform.machine()}",
                             "use --guest toy (docs/usage.md: why no KVM guest on POWER)")
        for bad, flag in ((self.source != "raise", "--source external"),
                          (self.rearm_each, "--rearm-each"), (self.interval_us, "--interval")):
            if bad:
                raise UsageError(f"{flag} is not available with --guest kvm", "use --guest toy for it")


class Engine(Protocol):
    """The loop that services the card's interrupts for one Run: the Python
    reference (python_engine.PythonLoop), the C loop (c_engine.CLoop) or the KVM
    guest (kvm_engine.KvmLoop).  Built with the Run, an engine reads its config,
    profile, DeviceIrq and last_arrival_ns, records latencies into the histograms it is
    handed, and writes nothing into the Run: every count comes back as a Batch."""

    def run_batch(self, n: int, hists, deadline_ns: int = 0) -> Batch:
        """Up to `n` interrupts (source raise: raises; external: deliveries), fewer at
        a watchdog timeout (reason TIMEOUT), a signal (SIGNAL) or the deadline."""

    def collect(self) -> Batch | None:
        """Once, after a signal cut run_batch short: what that batch had counted
        (None: nothing to give, or already given)."""

    def trigger_pending(self) -> bool:
        """Has a trigger come, unread?  (The watchdog asks before it calls a silence.)"""

    def service_external(self) -> tuple:
        """Service the card by polling, as the handler would: (cause, items drained)."""

    def update_fds(self) -> None:
        """After a re-arm: take the DeviceIrq's eventfds and EOI steps afresh."""

    def guest_json(self) -> dict | None:
        """What the guest adds to the run's results (the KVM guest: its irqchip,
        unmask path, exits), or None."""

    def close(self) -> None:
        """Release what the engine holds (fds, threads, the VM); once."""


@dataclass
class Stall:
    """The watchdog fired and the card had a cause pending, but no trigger came
    (source raise: after a raise; external: after whatever the outside sent)."""
    after_delivered: int      # interrupts delivered before this stall
    host_state: dict          # /proc/interrupts count, physical DisINTx, ... at that moment
    card_cause: int           # what the card had pending (serviced by polling)
    recovered: bool = False

    def to_json(self):
        return {"after_delivered": self.after_delivered, "host_state": self.host_state,
                "card_cause": self.card_cause, "card_pending": bool(self.card_cause),
                "recovered": self.recovered}


@dataclass
class Counts:
    raised: int = 0
    delivered: int = 0
    spurious: int = 0
    extra_signals: int = 0
    polled: int = 0          # interrupts serviced by polling after a stall
    lost: int = 0            # raised, no trigger, nothing pending on the card either
    items: int = 0           # external: items drained (bytes, frames), polling included
    items_polled: int = 0    # external: of those, drained by polling after a stall
    quiet: int = 0           # external: watchdog periods with no trigger and nothing pending


class Run:
    def __init__(self, host, profile, config, after_enable=None, status=None, ready=None, explain=None):
        config.check()
        if config.source == "external" and not profile.programs.ops.get("ack_external"):
            raise UsageError(f"profile {profile.name} cannot take interrupts from outside: it has "
                             "no init_external/ack_external programs",
                             "use --source raise, or add them to the profile (enable a receive "
                             "cause; read the cause, drain, acknowledge)")
        if config.source == "dma":
            DmaSource.check(host, profile)
        if host.name != "vfio":   # before INTx is enabled, not after
            if config.guest == "kvm":
                raise UsageError(f"the KVM guest needs a real vfio device, not the {host.name} host",
                                 "use --guest toy with the model host")
            if config.engine == "c":
                raise UsageError(f"the C engine needs a real vfio device, not the {host.name} host",
                                 "use --engine python with the model host")
        self.dma = None               # source dma: the pages the card moves bytes between
        self._engine: Engine | None = None   # set by execute
        self.host = host
        self.profile = profile
        self.config = config
        # called after INTx is enabled and after each recovery re-arm, i.e. after every
        # request_irq on the host (a masking policy must be re-applied then to hold)
        self.after_enable = after_enable
        self.status = status          # called with the Run between batches (live status line)
        self.ready = ready            # called once the card is initialised, before the first batch
        self.explain = explain        # --explain: a pyvfio.explain.Explainer, or None
        self.intx = DeviceIrq(host, config.intx_mode, config.rearm_each, config.irq)
        self.hists = (Histogram(), Histogram(), Histogram())  # HISTOGRAMS[config.source]
        self.series = Series()        # the round trip, window by window (a batch each)
        self.counts = Counts()
        self.stalls = []
        self.uncleared = 0            # a cause the ack left set (the profile's fault), or 0
        self.interrupted = False
        self.last_arrival_ns = 0      # external: the last trigger's time, across batches
        self.elapsed_s = 0.0          # the whole run, set-up and teardown included
        self.loop_s = 0.0             # the measured loop: first batch start to last batch end
        self.host_before = self.host_after = None
        self.cpu = {}

    @property
    def _timed_round_trip(self):
        return HISTOGRAMS[self.config.source][2] == "round_trip"

    @property
    def external(self):
        return self.config.source == "external"

    # --- the stall path (rare; Python) --------------------------------------------
    def _stall(self):
        state = self._host_state()
        # service the card by polling: its interrupt is not lost
        if self.external:
            if self._engine.trigger_pending():
                return True      # it came just as the watchdog fired: the next batch has it
            cause, items = self._engine.service_external()
            self.counts.items += items
            self.counts.items_polled += items
            if not cause:
                self.counts.quiet += 1
                return True      # a silence, not a stall: nothing came, nothing is pending
        else:
            cause = self.profile.ack()
            if not cause:
                self.counts.lost += 1
                return True  # nothing pending: a lost raise, not a stalled line; go on
            if self._still_set(cause):
                return False  # the ack does not clear it: the profile's fault, not a stall
        stall = Stall(self.counts.delivered, state, cause)
        self.stalls.append(stall)
        self.counts.polled += 1
        if not self.config.recover:
            return False
        self.intx.rearm()  # free_irq + request_irq re-arm the controller's source
        if self.after_enable:
            self.after_enable(self)
        self._engine.update_fds()
        stall.recovered = True
        return True

    def _uncleared(self, b):
        """After a batch whose every raise was serviced nothing is pending, unless
        the ack does not clear the cause it reads: then every later trigger finds
        the old cause and "delivered" means nothing (verdict: the profile's fault).
        Only the bits the ack serviced count, so a second cause a card sets late
        is not taken for one.  One register read per batch, outside the timing
        (read again, later, before the cause is called uncleared)."""
        if not b.raised or b.delivered < b.raised:
            return False
        return self._still_set(b.last_cause)

    def _still_set(self, cause):
        """Are bits of `cause`, which the ack serviced, still set on the card?  Also
        asked at a stall before the kernel is blamed: a line held up by an uncleared
        cause and never re-presented (XIVE's level interrupts after the unmask) would
        otherwise look like the kernel's stall."""
        for wait in (0, 0.01, 0.1):   # a card may take a moment to drop what was acked
            if wait:   # sleep(0) is no free yield: timer slack, ~60 us natively, after every batch
                time.sleep(wait)
            self.uncleared = (self.profile.cause() or 0) & cause
            if not self.uncleared:
                return False
        return True

    def execute(self):
        cfg = self.config
        self.intx.check_info()
        self.profile.check_irq(self.config.irq)
        proc = psutil.Process()
        self._engine = None
        cpu0 = ctx0 = None
        start = time.monotonic_ns()
        loop0 = 0
        deadline = start + int(cfg.duration_s * 1e9) if cfg.duration_s else 0
        try:
            self.intx.enable()
            if self.after_enable:
                self.after_enable(self)
            if cfg.source == "dma":
                self.dma = DmaSource(self.host, self.profile)
                self.profile = self.profile.bind_dma(self.dma.values)   # raise_dma, its IOVAs in
            self.profile.init()
            if self.external:
                self.profile.program("init_external")()
            if cfg.guest == "kvm":
                from .kvm_engine import KvmLoop
                self._engine = KvmLoop(self)
            elif cfg.engine == "c":
                from .c_engine import CLoop
                self._engine = CLoop(self)
            else:
                self._engine = python_engine.PythonLoop(self)
            self.host_before = self._host_state()
            if self.explain is not None:   # tracing on once INTx is armed: its IRQ is known
                self.explain.start(self.host_before.get("irq"), cfg.guest, self.host.name,
                                   source=cfg.source, engine=self._engine)
            if self.ready:
                self.ready(self)
            cpu0, ctx0 = proc.cpu_times(), proc.num_ctx_switches()
            batch_n = 64
            remaining = cfg.loops if not cfg.duration_s else MAX_LOOPS
            loop0 = time.monotonic_ns()
            between = 0      # the last gap between two batches: Python's own work, in ns
            while remaining > 0:
                if deadline and time.monotonic_ns() >= deadline:
                    break
                t = time.monotonic_ns()
                n = min(batch_n, remaining, self.explain.batch if self.explain is not None else batch_n)
                window = Window(self.hists[2]) if self._timed_round_trip else None
                b = self._engine.run_batch(n, self.hists, deadline)
                ran = max(1, time.monotonic_ns() - t)
                self._account(b)
                if window is not None:
                    self.series.add((time.monotonic_ns() - loop0) / 1e9, self.counts.delivered, *window.close())
                remaining -= b.delivered if self.external else b.raised
                if b.reason == SIGNAL:
                    raise KeyboardInterrupt
                if b.reason == TIMEOUT and not self._stall():
                    break
                if b.reason == DONE and not self.external and self._uncleared(b):
                    break
                if b.reason != TIMEOUT and (b.delivered if self.external else b.raised) < n:
                    break  # deadline reached inside the batch
                # ~0.2 s per batch so the status line stays live, longer (at most 2 s) where
                # the work between batches would cost the loop more than 1 % of its time
                # (Python in a slow guest: docs/usage.md, the engine against a bare loop)
                if self.status:
                    self.status(self)
                target = min(BATCH_MAX_NS, max(BATCH_NS, 100 * between))
                batch_n = max(16, min(1 << 20, int(n * target / ran)))
                between = time.monotonic_ns() - t - ran
        except KeyboardInterrupt:
            self.interrupted = True
            cut = self._engine.collect() if self._engine is not None else None
            if cut is not None:  # the batch the signal cut short
                self._account(cut)
        finally:
            end = time.monotonic_ns()
            self.elapsed_s = (end - start) / 1e9
            if loop0:  # the work between batches (stalls, status line) is inside it
                self.loop_s = (end - loop0) / 1e9
            if cpu0 is not None:  # the measurement had started
                cpu1, ctx1 = proc.cpu_times(), proc.num_ctx_switches()
                self.cpu = {"user_s": cpu1.user - cpu0.user, "system_s": cpu1.system - cpu0.system,
                            "voluntary_ctx_switches": ctx1.voluntary - ctx0.voluntary,
                            "involuntary_ctx_switches": ctx1.involuntary - ctx0.involuntary}
            self.teardown()
        return self

    def _account(self, b):
        if self.explain is not None:   # attributed outside the timing, between batches
            self.explain.after_batch()
        c = self.counts
        c.raised += b.raised
        c.delivered += b.delivered
        c.spurious += b.spurious
        c.extra_signals += b.extra_signals
        c.items += b.items
        self.last_arrival_ns = b.last_arrival_ns or self.last_arrival_ns
        self.profile.raised += b.raised

    def teardown(self):
        """Always: INTx disabled, card quiesced, fds closed (each step attempted)."""
        errors = []
        # host state first: once INTx is disabled, vfio's line leaves /proc/interrupts.
        # A DMA still in flight ends before quiesce (which clears its completion) and
        # before its pages are unmapped (_close_dma).  The card is quiesced before its
        # interrupts are disabled, as a driver's close does before free_irq: a card
        # model may still be timing a message (QEMU 7.2's e1000e aborts if MSI-X goes
        # off under its throttling timer; its quiesce waits the timer out).
        for step in (self._host_after, self._close_explain, self._close_engine, self._dma_idle, self.profile.quiesce,
                     self.intx.close, self._close_dma):
            try:
                step()
            except Exception as exc:  # keep tearing down; report the first failure
                errors.append(exc)
        if errors and not self.interrupted:
            raise errors[0]

    def _close_explain(self):
        if self.explain is not None:
            self.explain.close()

    def _close_engine(self):
        if self._engine is not None:
            self._engine.close()

    def _dma_idle(self):
        if self.dma is not None:
            self.dma.wait_idle()

    def _close_dma(self):
        if self.dma is not None:
            self.dma.close()
    def _host_state(self):
        return self.host.host_state(self.config.irq)

    def _host_after(self):
        self.host_after = self._host_state()

    # --- results --------------------------------------------------------------------
    def _latency_json(self):
        """The time histograms by name (HISTOGRAMS); external's items are in "external"."""
        return {name: h.to_json() for name, h in zip(HISTOGRAMS[self.config.source], self.hists)
                if name != "items"}

    @property
    def verdict(self):
        """The verdict's text; pyvfio.verdict holds the rule and the data."""
        return of_run(self).text

    def host_irq_delta(self):
        a, b = (self.host_before or {}).get("irq_count"), (self.host_after or {}).get("irq_count")
        return None if a is None or b is None else b - a

    def to_json(self):
        c = self.counts
        delta = self.host_irq_delta()
        per_irq = (self.cpu.get("user_s", 0) + self.cpu.get("system_s", 0)) / c.delivered if c.delivered else None
        verdict = of_run(self)
        out = {
            "verdict": verdict.text,            # for readers; "outcome" is the verdict as data
            "outcome": verdict.to_json(),
            "interrupted": self.interrupted,
            "source": self.config.source,
            "irq": self.config.irq,
            "counts": {"raised": c.raised, "delivered": c.delivered, "stalled": len(self.stalls),
                       "recovered": sum(s.recovered for s in self.stalls), "polled": c.polled,
                       "lost": c.lost, "spurious_triggers": c.spurious, "extra_signals": c.extra_signals,
                       "uncleared_cause": self.uncleared},
            "host_interrupts": delta,
            "host_per_delivered": (delta / c.delivered) if delta is not None and c.delivered else None,
            "elapsed_s": self.elapsed_s,
            # delivered over the measured loop (batches and the work between them,
            # not INTx enable, card init or teardown)
            "loop_s": self.loop_s,
            "throughput_per_s": c.delivered / self.loop_s if self.loop_s else None,
            "cpu": {**self.cpu, "cpu_us_per_interrupt": per_irq * 1e6 if per_irq is not None else None},
            "latency": self._latency_json(),
            "series": {"round_trip": self.series.to_json()} if self._timed_round_trip else {},
            "stalls": [s.to_json() for s in self.stalls],
            "host_state": {"before": self.host_before, "after": self.host_after},
        }
        if self.external:
            items = self.hists[2].c
            out["external"] = {
                "items": c.items, "items_polled": c.items_polled, "quiet_watchdog_periods": c.quiet,
                "items_per_interrupt": {"count": items.count, "min": items.min, "max": items.max,
                                        "avg": items.sum / items.count if items.count else None,
                                        "buckets": self.hists[2].to_json()["buckets"]}}
        if self.dma is not None:
            out["dma"] = self.dma.to_json()
        if self.explain is not None:   # never part of the verdict
            out["explain"] = self.explain.to_json()
        guest = self._engine.guest_json() if self._engine is not None else None
        if guest is not None:  # the KVM guest: its irqchip, unmask path and counts
            out["kvm"] = guest
        for key in ("controller_deliveries",):  # what only a model host can count
            if self.host_after and key in self.host_after and self.host_before:
                out[key] = self.host_after[key] - self.host_before.get(key, 0)
        return out
