"""The machines a scenario names, and what the model host needs to run each one.

A [lab] machine (arch, kernel, ic) is booted by `repro --lab ARCH`; `repro --model`
runs the same machine on the model host, and names its cells with the same key
(arch, kernel, ic), so the two reports compare cell by cell.  A [model] machine is
the model's own (ic x card kind; no lab can boot a non-2.3 card).

What a boot measures and the model must be told is here and only here.
"""

import itertools
from dataclasses import dataclass, replace

from .. import unlazy_fix
from ..errors import UsageError
from ..lab.config import ARCHES
from ..sim.host import CARDS, CONTROLLERS
from ..sim.xics import VARIANTS as XICS_VARIANTS

# Does the lab kernel's vfio-pci carry the unlazy fix (8b9f128947dd), i.e. what policy
# "kernel" means there: the version rule's answer (pyvfio.unlazy_fix: Debian bookworm's
# 6.1 does not, its 6.12 does).  A boot reads it from vfio-pci's imports
# (pyvfio.lab.kernels), every lab cell carries what it read, and
# tests/test_repro_lab.py checks both kernels.
LAB_UNLAZY_FIX = {k: unlazy_fix.of_series(k) for a in ARCHES.values() for k in a["kernels"]}
# Lab kernels that force irq threading (PREEMPT_RT): the model's `threaded` knob.  A
# real cell carries what its kernel says (/sys/kernel/realtime: host/system.py).
LAB_THREADED = {"6.12-rt"}
# The PCI kind of each lab card: QEMU implements DisINTx for every PCI device
# (hw/pci/pci.c pci_init_wmask), so vfio-pci masks them at the card unless loaded
# with nointxmask=1.
LAB_CARD_KIND = {"edu": "2.3", "e1000": "2.3", "rtl8139": "2.3", "i82557b": "2.3", "pci-serial": "2.3",
                 "e1000e": "2.3"}


@dataclass(frozen=True)
class ScenarioMachine:
    ic: str                     # the interrupt controller serving the card's line
    card: str                   # "2.3" (vfio-pci masks it with DisINTx) or "non-2.3"
    unlazy_fix: bool | None     # what policy "kernel" means (None: no such kernel named)
    arch: str | None = None     # a [lab] machine: its arch and lab kernel
    kernel: str | None = None
    xics_variant: str = "qemu"  # the model's knobs for unverified hardware (docs/model.md)
    xive_set_pq00_retriggers: bool = False
    threaded: bool = False      # forced irq threading (PREEMPT_RT)

    @property
    def masks_at_device(self):
        return self.card == "2.3"

    @property
    def x86(self):
        """Can it run a kvm cell: an x86_64 lab machine, or a model one on the IO-APIC."""
        return self.arch == "x86_64" if self.arch else self.ic == "ioapic"

    @property
    def key(self):
        """The key axes naming this machine's cells: a lab machine's as a lab run names
        them; a model machine's with its card kind and any knob it changes."""
        if self.arch:
            key = {"arch": self.arch, "kernel": self.kernel, "ic": self.ic}
        else:
            key = {"kernel": self.kernel} if self.kernel else {}
            key.update(ic=self.ic, card=self.card)
        if self.ic == "xics" and self.xics_variant != "qemu":
            key["xics_variant"] = self.xics_variant
        if self.ic == "xive" and self.xive_set_pq00_retriggers:
            key["xive_set_pq00_retriggers"] = True
        if self.threaded and not self.arch:     # a lab machine's kernel says it (6.12-rt)
            key["threaded"] = True
        return key

    @property
    def knobs(self):
        return {"xics_variant": self.xics_variant,
                "xive_set_pq00_retriggers": self.xive_set_pq00_retriggers, "threaded": self.threaded}

    def with_knobs(self, **knobs):
        return replace(self, **{k: v for k, v in knobs.items() if v is not None})


def unlazy_fix_with(kernel_fix, vfio):
    """What policy "kernel" means with a vfio-pci variant (the scenario's vfio axis):
    the shipped module's own, none in the prefix (8b9f128947dd reversed), and for a
    patch None: only the built module can tell (the lab reads its imports)."""
    if vfio == "shipped":
        return kernel_fix
    return False if vfio == "prefix" else None


def unlazy_fix_of(kernel):
    if kernel not in LAB_UNLAZY_FIX:
        raise UsageError(f"no lab kernel {kernel!r}", f"use {' or '.join(LAB_UNLAZY_FIX)}")
    return LAB_UNLAZY_FIX[kernel]


def lab_machine(arch, kernel=None, ic=None, card="edu"):
    """A [lab] machine, with the lab's defaults (pyvfio.lab.config) filled in."""
    from ..lab.config import LabConfig
    cfg = LabConfig(arch=arch, kernel=kernel, ic=ic, cards=(card,))
    return ScenarioMachine(ic=cfg.ic, card=LAB_CARD_KIND[card], unlazy_fix=unlazy_fix_of(cfg.kernel),
                   arch=arch, kernel=cfg.kernel, threaded=cfg.kernel in LAB_THREADED)


def model_machines(ics, cards, kernel=None, xics_variant="qemu", xive_set_pq00_retriggers=False,
                   threaded=False):
    """The [model] machines: every ic x card kind."""
    for ic in ics:
        if ic not in CONTROLLERS:
            raise UsageError(f"unknown ic {ic!r}", f"use {', '.join(CONTROLLERS)}")
    for card in cards:
        if card not in CARDS:
            raise UsageError(f"unknown card kind {card!r}", f"use {', '.join(CARDS)}")
    if xics_variant not in XICS_VARIANTS:
        raise UsageError(f"unknown XICS variant {xics_variant!r}", f"use {', '.join(XICS_VARIANTS)}")
    fix = unlazy_fix_of(kernel) if kernel is not None else None
    return [ScenarioMachine(ic=ic, card=card, unlazy_fix=fix, kernel=kernel, xics_variant=xics_variant,
                    xive_set_pq00_retriggers=xive_set_pq00_retriggers,
                    threaded=threaded or kernel in LAB_THREADED)
            for ic, card in itertools.product(ics, cards)]
