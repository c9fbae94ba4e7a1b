"""One model host configuration (`Scenario`: controller, card kind, genirq policy,
unmask mode, vfio-pci's nointxmask and the model's knobs) and one run of it
through the real INTx engine (`run_model`: pyvfio.engine's Python engine, the edu
profile, the toy guest; with `resampler`, the guest's EOI goes to KVM's resample
irqfd instead of userspace), with its verdict (`Outcome`).

`pyvfio repro --model` runs a scenario file's cells this way (pyvfio.repro.model);
pyvfio.repro.predict maps a real kernel's cell onto a Scenario to predict it.
"""

from dataclasses import dataclass

from ..errors import UsageError
from ..intx import UNMASK_MODES
from ..results import NA
from ..verdict import of_run
from ..sim.host import CARDS, CONTROLLERS, POLICIES
from ..sim.xics import VARIANTS as XICS_VARIANTS

AXES = {"controller": CONTROLLERS, "card": CARDS, "policy": POLICIES, "unmask": UNMASK_MODES}


@dataclass(frozen=True)
class Scenario:
    controller: str
    card: str
    policy: str         # "lazy", "unlazy", or NA when vfio never masks at the controller
    unmask: str
    nointxmask: bool = False
    xics_variant: str = "qemu"
    xive_set_pq00_retriggers: bool = False
    threaded: bool = False      # forced irq threading (PREEMPT_RT): genirq.py
    resampler: bool = False     # a KVM guest's resample irqfd unmasks (kvm_irqfd.py); unmask eventfd

    @property
    def controller_masking(self):
        """vfio masks at the interrupt controller (disable_irq_nosync): a non-2.3
        card, or any card with nointxmask=1.  Only then does the policy apply."""
        return self.card == "non-2.3" or self.nointxmask

    @classmethod
    def make(cls, controller, card, policy, unmask, **knobs):
        """A checked scenario.  `policy` None: the genirq default where it does
        not apply, "lazy" where it does."""
        for axis, value in (("controller", controller), ("card", card), ("unmask", unmask)):
            _check(axis, value, AXES[axis])
        if policy is not None and policy != NA:
            _check("policy", policy, POLICIES)
        if knobs.get("resampler") and unmask != "eventfd":
            raise UsageError("KVM's resampler signals vfio's unmask eventfd",
                             "use unmask eventfd with the resampler")
        xv = knobs.get("xics_variant", "qemu")
        _check("XICS variant", xv, XICS_VARIANTS)
        probe = cls(controller, card, NA, unmask, **knobs)
        if probe.controller_masking:
            return cls(controller, card, policy if policy not in (None, NA) else "lazy",
                       unmask, **knobs)
        if policy == "unlazy":
            raise UsageError(
                f"policy 'unlazy' does not apply to a PCI 2.3 card ({controller}/{card}): vfio-pci "
                "masks it with DisINTx and never disables the host IRQ",
                "drop --policy, or use --card-kind non-2.3 (or --nointxmask 1) to mask at the controller")
        return probe

    def host_kwargs(self):
        return {"controller": self.controller, "card": self.card,
                "policy": self.policy if self.policy != NA else "lazy",
                "nointxmask": self.nointxmask, "xics_variant": self.xics_variant,
                "xive_set_pq00_retriggers": self.xive_set_pq00_retriggers,
                "threaded": self.threaded, "resampler": self.resampler}


def _check(axis, value, allowed):
    if value not in allowed:
        raise UsageError(f"unknown {axis} {value!r}", f"use one of: {', '.join(allowed)}")


class Outcome:
    """A model run: the engine's Run, its verdict (pyvfio.verdict, with the spurious
    deliveries only a model host counts) and the counts the model tests look at."""

    def __init__(self, scenario, loops, run):
        self.scenario, self.loops, self.run = scenario, loops, run
        c = run.counts
        self.delivered = c.delivered
        self.stalls = len(run.stalls)
        self.recovered = sum(s.recovered for s in run.stalls)
        self.stalled_after = run.stalls[0].after_delivered if run.stalls else None
        self.irq_count = run.host_irq_delta()
        before, after = run.host_before or {}, run.host_after or {}
        self.controller_deliveries = (after["controller_deliveries"] - before["controller_deliveries"]
                                      if "controller_deliveries" in after and before else None)
        self.judged = of_run(run).with_spurious(self.spurious_ratio)
        self.detail = {"host_at_stall": run.stalls[0].host_state if run.stalls else None,
                       "host_after": after}

    @property
    def spurious(self):
        """Controller deliveries not counted in /proc/interrupts (None: unknown)."""
        if self.controller_deliveries is None or self.irq_count is None:
            return None
        return self.controller_deliveries - self.irq_count

    @property
    def spurious_ratio(self):
        s = self.spurious
        return None if s is None or not self.delivered else s / self.delivered

    @property
    def verdict(self):
        return self.judged.text


def run_model(scenario, loops, recover=False, trace=None, access="mmap", **host_knobs):
    """Run one scenario on a fresh model host through the INTx engine (the same
    toy guest, profile and protocol as against /dev/vfio)."""
    from ..engine import Run, RunConfig
    from ..profiles import probe
    from ..sim.host import ModelHost
    host = ModelHost(**scenario.host_kwargs(), trace=trace, **host_knobs)
    profile = probe(host, access)
    # watchdog 0: the model is synchronous, a trigger that is not pending when the
    # guest waits never comes (no time passes in the model).
    cfg = RunConfig(loops=loops, unmask=scenario.unmask, access=access, engine="python",
                    watchdog_ms=0, recover=recover)
    return Outcome(scenario, loops, Run(host, profile, cfg).execute())
