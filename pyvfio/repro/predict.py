"""What the model host predicts for a cell run on a real kernel, and whether a
verdict matches an expectation.

A real cell maps onto a model scenario: the controller serving the line (the lab's
--ic, or the /proc/interrupts chip), the card (2.3 if vfio-pci masked it with
DisINTx, else non-2.3; nointxmask=1 makes any card masked at the controller), the
policy (the kernel's own: unlazy with the 8b9f128947dd fix, lazy without), the
unmask mode.
"""

import re

from ..doctor import controller_of
from ..errors import UsageError
from ..sim import matrix
from .scenario import NA


def model_scenario(key, masks_at_device, unlazy_fix, chip=None):
    """The model Scenario for a cell key, or None when the model cannot tell."""
    controller = key.get("ic") or controller_of(chip)[0]
    if controller not in matrix.AXES["controller"]:
        return None
    nim = bool(key["nointxmask"])
    if not nim and masks_at_device is None:
        return None
    card = "2.3" if (masks_at_device or nim) else "non-2.3"
    policy = key["policy"]
    if policy == "kernel":
        if unlazy_fix is None:
            return None
        policy = "unlazy" if unlazy_fix else "lazy"
    if card == "2.3" and not nim:
        policy = NA
    try:
        return matrix.Scenario.make(controller, card, policy, key["unmask"], nointxmask=nim)
    except UsageError:
        return None


def predict(key, loops, masks_at_device, unlazy_fix, chip=None, recover=False):
    s = model_scenario(key, masks_at_device, unlazy_fix, chip)
    if s is None:
        return None
    return matrix.run_model(s, loops, recover=recover).verdict


def essence(verdict):
    """The part of a verdict a real run can observe: 'ok' or 'stall after N'
    (a spurious ratio needs the model's controller count; recoveries are detail)."""
    if verdict is None:
        return None
    m = re.match(r"(ok|stall after \d+|lost \d+|error)", verdict)
    return m.group(1) if m else verdict


def matches(verdict, expected):
    if expected is None:
        return None
    return essence(verdict) == essence(expected)
