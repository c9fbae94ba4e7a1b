"""Will controller-masked INTx stall?  The model host answers (pyvfio/sim/ask.py:
lazy disable, no 8b9f128947dd, on XIVE stalls after one interrupt; on an IO-APIC
it costs a spurious interrupt per cycle); this module keeps the words.  The
masking-policy module's live flag, when it speaks for the next run, beats the
kernel's version."""

from .. import unlazy_fix
from ..host import interrupts, policy_module
from ..sim.ask import CONTROLLERS, stalls_after
from .check import FAIL, NA, OK, WARN, Check
from .masking import DEVICE

KNOB = policy_module.KNOB
# why the model's stall happens, in the words of each controller family
STALL_WHY = {"xive": "lazy disable on XIVE leaves the source at PQ=10"}


def module_check(root):
    """policy_module: listed only when the module is loaded."""
    pol = policy_module.states(root)
    if pol is None:
        return []
    return [Check("policy_module", OK, "masking-policy module pyvfio_policy loaded: "
                  + (", ".join(f"IRQ {i} {v}" for i, v in sorted(pol.items())) or "no IRQ set yet"),
                  f"{KNOB}; it overrides the kernel's choice on the IRQs listed")]


def check(dev, irq, line, family, cname, masking, why, fix, root):
    if masking == DEVICE:
        return Check("stall_prediction", NA, "vfio masks at the card (DisINTx): the genirq "
                     "disable policy, and so the stall, does not apply", why)
    lazy = {True: False, False: True}.get(fix.present)
    live = (policy_module.states(root) or {}).get(irq)
    # A fixed kernel rewrites the flag at request_irq: the live flag speaks for the
    # next run only while vfio holds the line, or on a kernel that never sets it.
    held = line is not None and interrupts.vfio_intx_name(dev.bdf) in line.actions
    if live in ("lazy", "unlazy") and (held or fix.present is not True):
        lazy = live == "lazy"
        fix = unlazy_fix.Finding(not lazy, "policy-module",
                                 f"pyvfio_policy reads IRQ {irq} {live} (the live flag)")
    how = fix.evidence if fix.basis == "policy-module" else f"by {fix.basis}"
    # the model host decides (pyvfio/sim/ask.py); this keeps the words
    if lazy is not False and family in CONTROLLERS:
        after = stalls_after(family, lazy=True)
    else:
        after = None
    if after is not None and lazy:
        return Check("stall_prediction", FAIL, f"INTx will stall after {_times(after)}: "
                     + STALL_WHY.get(family, f"lazy disable on {cname}"),
                     f"controller masking ({why}), {family.upper()}, unlazy fix absent ({how})",
                     f"echo {irq} unlazy > {KNOB}" if fix.basis == "policy-module" else
                     "boot a kernel with 8b9f128947dd (v6.18+, Debian 6.12.95+), or apply "
                     "IRQ_DISABLE_UNLAZY with tools/policy; pyvfio run --recover survives it")
    if after is not None:
        return Check("stall_prediction", WARN, f"INTx may stall after {_times(after)} ({family.upper()}, "
                     "unlazy fix unknown)", f"controller masking ({why})",
                     f"run `pyvfio run BDF -l 100 --watchdog 500` and look for 'stall after {after}'")
    if lazy is False:
        return Check("stall_prediction", OK, "expected to deliver: unlazy disable masks and "
                     f"unmasks at {cname}", f"controller masking ({why}), unlazy fix present ({how})")
    state = "absent" if lazy else "unknown"
    if family == "ioapic":
        return Check("stall_prediction", OK, f"expected to deliver: the {cname} re-delivers a "
                     "still-asserted line at EOI, at the cost of a spurious interrupt per "
                     "cycle under lazy disable", f"controller masking ({why}), unlazy fix {state} ({how})")
    if family == "xics":
        return Check("stall_prediction", WARN, "expected to deliver: QEMU's XICS re-sends an "
                     "asserted line at EOI (lazy disable); unverified on XICS silicon",
                     f"controller masking ({why}), unlazy fix {state} ({how})",
                     "run `pyvfio run BDF -l 100 --watchdog 500` to see")
    return Check("stall_prediction", WARN, f"no prediction for controller {cname}",
                 f"controller masking ({why})")


def _times(n):
    return "one interrupt" if n == 1 else f"{n} interrupts"
