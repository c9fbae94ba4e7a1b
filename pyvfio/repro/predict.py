"""A cell on the model host: which model Scenario a cell key is, and what the model
predicts for a cell run on a real kernel.

A cell maps onto a model scenario by the controller serving the line (the lab's
ic, or the /proc/interrupts chip), the card (2.3 if vfio-pci masks it with DisINTx,
else non-2.3; nointxmask=1 makes any card masked at the controller), the policy
(lazy or unlazy as the cell forces it, or for "kernel" the kernel's own: unlazy
with the 8b9f128947dd fix, lazy without) and the unmask mode.  A kvm cell (guest
kvm, x86 only) is the same host path: its ioctl and eventfd unmask are the toy
guest's, done by the VMM after the guest's EOI exit; its resample is the eventfd
cell with KVM's resampler signalling the unmask eventfd (sim/kvm_irqfd.py).  The
model backend (model.py) runs its cells through the same mapping.
"""

from ..host.interrupts import controller_of
from ..errors import UsageError
from ..host.masking import DEVICE, masked_at
from ..results import NA, axis
from . import matrix
from .scenario import RESAMPLE


def model_scenario(key, masks_at_device, unlazy_fix, chip=None, **knobs):
    """The model Scenario for a cell key, or None when the model cannot tell (an
    MSI among them: the model host has INTx only)."""
    if axis(key, "irq") != "intx":
        return None
    controller = key.get("ic") or controller_of(chip)[0]
    if controller not in matrix.AXES["controller"]:
        return None
    kvm = axis(key, "guest") == "kvm"
    if kvm and controller != "ioapic":
        return None     # pyvfio's KVM guest is x86's
    unmask = key["unmask"]
    if kvm and unmask == RESAMPLE:
        unmask, knobs = "eventfd", {**knobs, "resampler": True}
    nim = bool(key["nointxmask"])
    if not nim and masks_at_device is None:
        return None
    # the model's card kind: with nointxmask=1 any card is masked at the controller
    card = "2.3" if (masks_at_device or nim) else "non-2.3"
    policy = key["policy"]
    if policy == "kernel":
        if unlazy_fix is None:
            return None
        policy = "unlazy" if unlazy_fix else "lazy"
    if masked_at(nim, masks_at_device) == DEVICE:
        policy = NA
    try:
        return matrix.Scenario.make(controller, card, policy, unmask, nointxmask=nim, **knobs)
    except UsageError:
        return None


def predict(key, loops, masks_at_device, unlazy_fix, chip=None, recover=False, threaded=False):
    """The model's Verdict for a real cell, or None when the model cannot tell.
    `threaded`: the cell's kernel forces irq threading (PREEMPT_RT)."""
    s = model_scenario(key, masks_at_device, unlazy_fix, chip, threaded=bool(threaded))
    if s is None:
        return None
    return matrix.run_model(s, loops, recover=recover).judged
