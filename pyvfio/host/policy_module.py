"""The knob of the lab's masking-policy module (tools/policy, pyvfio_policy.ko):
/sys/module/pyvfio_policy/parameters/policy.  Reading it shows, per IRQ written to
it, the live IRQ_DISABLE_UNLAZY flag; lab/policy.py writes it.  This is its one reader."""

from . import paths

KNOB = "/sys/module/pyvfio_policy/parameters/policy"


def available(root="/"):
    """Is the module loaded (its knob there)?"""
    return paths.read_text(paths.under(root, KNOB)) is not None


def states(root="/"):
    """{irq: "lazy"|"unlazy"|"gone"} for every IRQ the module was told about; None when
    the module is not loaded."""
    text = paths.read_text(paths.under(root, KNOB))
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        irq, _, state = line.partition(" ")
        if irq.isdigit():
            out[int(irq)] = state.strip()
    return out
