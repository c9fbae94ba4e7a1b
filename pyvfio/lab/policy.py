"""Set genirq's disable policy (IRQ_DISABLE_UNLAZY) for a vfio device's INTx IRQ,
through the knob of tools/policy (pyvfio_policy.ko).  Usable inside a lab guest
and on a real lab machine with the module loaded.

Apply it after INTx is enabled: vfio requests the IRQ then, and the fixed kernel
(8b9f128947dd) sets or clears the flag around request_irq/free_irq, so a policy
applied earlier is overwritten, and a disable/enable of INTx (a re-arm) resets it.
"""
import os

from ..errors import PyvfioError
from ..host import interrupts

KNOB = "/sys/module/pyvfio_policy/parameters/policy"
POLICIES = ("lazy", "unlazy")
_HINT = "load the module: make -C tools/policy && insmod tools/policy/pyvfio_policy.ko"


def available(root="/"):
    return os.path.exists(os.path.join(root, KNOB.lstrip("/")))


def irq_of(bdf, root="/"):
    """The Linux IRQ vfio requested for bdf's INTx (its /proc/interrupts name)."""
    line = interrupts.intx_line(bdf, root=root)
    if line is None:
        raise PyvfioError(f"no vfio-intx({bdf}) line in /proc/interrupts",
                          "enable the device's INTx trigger first")
    return line.irq


def states(root="/"):
    """{irq: "lazy"|"unlazy"|"gone"} for every IRQ the module was told about."""
    with open(os.path.join(root, KNOB.lstrip("/"))) as f:
        return {int(a): b for a, b in (line.split() for line in f if line.strip())}


def set_irq_policy(irq, policy, root="/"):
    if policy not in POLICIES:
        raise PyvfioError(f"unknown policy {policy!r}", "use lazy or unlazy")
    if not available(root):
        raise PyvfioError("the masking-policy module pyvfio_policy is not loaded", _HINT)
    with open(os.path.join(root, KNOB.lstrip("/")), "w") as f:
        f.write(f"{irq} {policy}\n")
    got = states(root).get(irq)
    if got != policy:
        raise PyvfioError(f"IRQ {irq} reads {got} after setting {policy}")
    return irq


def set_policy(bdf, policy, root="/"):
    """Set the policy of bdf's INTx IRQ; returns the IRQ number."""
    return set_irq_policy(irq_of(bdf, root), policy, root)
