"""The scenario matrix: controller x card x policy x unmask, run through the real
INTx engine (pyvfio.engine, Python engine) against a host, with a verdict each.

Reusable beyond the model: `Scenario` names a case, `run_matrix` takes any
`runner(scenario, loops, recover, trace) -> Outcome`, and `Outcome` carries the
facts a lab run can be compared on (`comparable()`).  The model runner is
`run_model`.

Verdicts: "ok" (every raise delivered), "stall after N" (N interrupts delivered,
then the card's raise never reached the trigger), and for a delivering scenario
whose controller delivered more than /proc/interrupts counted, the spurious ratio
("ok, 1.00 spurious/irq": deliveries genirq took on its disabled path, masked
and EOId without counting them).
"""

import itertools
from dataclasses import asdict, dataclass, field, fields

from ..errors import UsageError
from .host import CARDS, CONTROLLERS, POLICIES
from .xics import VARIANTS as XICS_VARIANTS

UNMASKS = ("ioctl", "eventfd")
AXES = {"controller": CONTROLLERS, "card": CARDS, "policy": POLICIES, "unmask": UNMASKS}
NA = "-"                # the policy of a scenario where it does not apply


@dataclass(frozen=True)
class Scenario:
    controller: str
    card: str
    policy: str         # "lazy", "unlazy", or NA when vfio never masks at the controller
    unmask: str
    nointxmask: bool = False
    xics_variant: str = "qemu"
    xive_set_pq00_retriggers: bool = False

    @property
    def controller_masking(self):
        """vfio masks at the interrupt controller (disable_irq_nosync): a non-2.3
        card, or any card with nointxmask=1.  Only then does the policy apply."""
        return self.card == "non-2.3" or self.nointxmask

    @property
    def name(self):
        parts = [self.controller, self.card, self.policy, self.unmask]
        if self.nointxmask:
            parts.append("nointxmask")
        if self.controller == "xics" and self.xics_variant != "qemu":
            parts.append(self.xics_variant)
        if self.controller == "xive" and self.xive_set_pq00_retriggers:
            parts.append("pq00-retriggers")
        return "/".join(parts)

    @classmethod
    def make(cls, controller, card, policy, unmask, **knobs):
        """A checked scenario.  `policy` None: the genirq default where it does
        not apply, "lazy" where it does."""
        for axis, value in (("controller", controller), ("card", card), ("unmask", unmask)):
            _check(axis, value, AXES[axis])
        if policy is not None and policy != NA:
            _check("policy", policy, POLICIES)
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
                "drop --policy, or use --card non-2.3 (or --nointxmask) to mask at the controller")
        return probe

    def host_kwargs(self):
        return {"controller": self.controller, "card": self.card,
                "policy": self.policy if self.policy != NA else "lazy",
                "nointxmask": self.nointxmask, "xics_variant": self.xics_variant,
                "xive_set_pq00_retriggers": self.xive_set_pq00_retriggers}


def _check(axis, value, allowed):
    if value not in allowed:
        raise UsageError(f"unknown {axis} {value!r}", f"use one of: {', '.join(allowed)}")


def scenarios(controllers=None, cards=None, policies=None, unmasks=None, **knobs):
    """The matrix, restricted to the given values of each axis (None: all).
    A policy filter leaves in the scenarios where the policy does not apply,
    unless every scenario selected is one of those and unlazy was asked for."""
    for axis, values in (("controller", controllers), ("card", cards),
                         ("policy", policies), ("unmask", unmasks)):
        for v in values or ():
            _check(axis, v, AXES[axis])
    out = []
    for ctl, card in itertools.product(controllers or CONTROLLERS, cards or CARDS):
        probe = Scenario.make(ctl, card, None, UNMASKS[0], **knobs)
        if probe.controller_masking:
            out.extend(Scenario.make(ctl, card, p, u, **knobs)
                       for p in (policies or POLICIES) for u in (unmasks or UNMASKS))
        elif policies and "unlazy" in policies and "lazy" not in policies:
            Scenario.make(ctl, card, "unlazy", UNMASKS[0], **knobs)   # raises: does not apply
        else:
            out.extend(Scenario.make(ctl, card, None, u, **knobs) for u in (unmasks or UNMASKS))
    return out


@dataclass
class Outcome:
    scenario: Scenario
    loops: int
    delivered: int              # interrupts the guest serviced after a trigger
    stalled_after: int | None   # delivered before the first stall, None if none
    stalls: int = 0
    recovered: int = 0
    irq_count: int | None = 0   # /proc/interrupts delta
    controller_deliveries: int | None = None   # model only: every delivery
    extra_signals: int = 0      # trigger signals beyond one per raise
    spurious_triggers: int = 0  # triggers that found nothing on the card
    detail: dict = field(default_factory=dict)

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
        if self.stalled_after is not None:
            v = f"stall after {self.stalled_after}"
            if self.recovered:
                v += f", recovered {self.recovered}x"
            return v
        if self.delivered < self.loops:
            return f"lost {self.loops - self.delivered}"
        r = self.spurious_ratio
        if r:
            return f"ok, {r:.2f} spurious/irq"
        return "ok"

    def comparable(self):
        """What a lab run of the same scenario must agree on."""
        return {"stalled_after": self.stalled_after,
                "delivered_all": self.stalled_after is None and self.delivered >= self.loops}

    def to_json(self):
        out = {**asdict(self.scenario), "name": self.scenario.name, "loops": self.loops,
               "verdict": self.verdict, "delivered": self.delivered,
               "stalled_after": self.stalled_after, "stalls": self.stalls,
               "recovered": self.recovered, "irq_count": self.irq_count,
               "controller_deliveries": self.controller_deliveries,
               "spurious": self.spurious, "spurious_ratio": self.spurious_ratio,
               "extra_signals": self.extra_signals,
               "spurious_triggers": self.spurious_triggers}
        if self.detail:
            out["detail"] = self.detail
        return out


def run_model(scenario, loops, recover=False, trace=None, **host_knobs):
    """Run one scenario on a fresh model host through the INTx engine (the same
    toy guest, profile and protocol as against /dev/vfio)."""
    from ..engine import Run, RunConfig
    from ..profiles import probe
    from .host import ModelHost
    host = ModelHost(**scenario.host_kwargs(), trace=trace, **host_knobs)
    profile = probe(host)
    # watchdog 0: the model is synchronous, a trigger that is not pending when the
    # guest waits never comes (no time passes in the model).
    cfg = RunConfig(loops=loops, unmask=scenario.unmask, engine="python",
                    watchdog_ms=0, recover=recover)
    run = Run(host, profile, cfg).execute()
    return outcome_from_run(scenario, loops, run)


def outcome_from_run(scenario, loops, run):
    """An Outcome from an engine Run (any host)."""
    c = run.counts
    before, after = run.host_before or {}, run.host_after or {}

    def delta(key):
        a, b = before.get(key), after.get(key)
        return None if a is None or b is None else b - a

    stalls = run.stalls
    return Outcome(scenario=scenario, loops=loops, delivered=c.delivered,
                   stalled_after=stalls[0].after_delivered if stalls else None,
                   stalls=len(stalls), recovered=sum(s.recovered for s in stalls),
                   irq_count=delta("irq_count"),
                   controller_deliveries=delta("controller_deliveries"),
                   extra_signals=c.extra_signals, spurious_triggers=c.spurious,
                   detail={"host_at_stall": stalls[0].host_state if stalls else None,
                           "host_after": after})


def run_matrix(selected, loops, runner=run_model, recover=False):
    return [runner(s, loops, recover=recover) for s in selected]


# -- presentation -------------------------------------------------------------

_COLS = ("controller", "card", "policy", "unmask", "delivered", "/proc/interrupts",
         "controller deliveries", "verdict")


def table(outcomes):
    rows = []
    for o in outcomes:
        s = o.scenario
        card = s.card + ("+nointxmask" if s.nointxmask else "")
        ctl = s.controller + ("" if s.controller != "xics" or s.xics_variant == "qemu"
                              else f" ({s.xics_variant})")
        rows.append((ctl, card, s.policy, s.unmask, f"{o.delivered}/{o.loops}",
                     "?" if o.irq_count is None else str(o.irq_count),
                     "?" if o.controller_deliveries is None else str(o.controller_deliveries),
                     o.verdict))
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(_COLS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(_COLS), line(["-" * w for w in widths])] + [line(r) for r in rows])


SCENARIO_KEYS = {f.name for f in fields(Scenario)}
