"""The masking policy of a device's host IRQ: lazy or unlazy disable
(IRQ_DISABLE_UNLAZY), switched through the pyvfio_policy kernel module
(tools/policy), which must be loaded.

vfio-pci requests the IRQ when INTx is enabled and, on a fixed kernel
(8b9f128947dd), sets UNLAZY for non-2.3 INTx at that moment: so a policy is
applied after every enable (and re-applied after every disable/enable re-arm)
to hold.  The IRQ is found by vfio's action name in /proc/interrupts.
"""

import errno

from .errors import PyvfioError, UsageError
from .host import interrupts, paths

POLICIES = ("lazy", "unlazy")
KNOB = "sys/module/pyvfio_policy/parameters/policy"


def knob(root="/"):
    return paths.under(root, KNOB)


def read(root="/"):
    """{irq: policy} for the IRQs the module has switched."""
    text = paths.read_text(knob(root))
    if text is None:
        raise PyvfioError("the pyvfio_policy module is not loaded",
                          "build and load it: make -C tools/policy && insmod tools/policy/pyvfio_policy.ko")
    out = {}
    for line in text.splitlines():
        irq, _, policy = line.partition(" ")
        if irq.isdigit():
            out[int(irq)] = policy.strip()
    return out


def apply(bdf, policy, root="/"):
    """Set `policy` on the IRQ vfio-pci holds for `bdf`'s INTx; returns the IRQ."""
    if policy not in POLICIES:
        raise UsageError(f"unknown masking policy {policy!r}", "use lazy or unlazy")
    line = interrupts.find(interrupts.read(root), action=interrupts.vfio_intx_name(bdf))
    if line is None:
        raise PyvfioError(f"no vfio-intx({bdf}) line in /proc/interrupts",
                          "enable INTx first (the policy applies to the IRQ vfio-pci has requested)")
    try:
        with open(knob(root), "w") as f:
            f.write(f"{line.irq} {policy}")
    except FileNotFoundError:
        read(root)  # raises the "not loaded" error
        raise
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PyvfioError("no permission to switch the IRQ policy", "run as root") from None
        raise PyvfioError(f"pyvfio_policy refused '{line.irq} {policy}': {exc.strerror}") from None
    return line.irq
