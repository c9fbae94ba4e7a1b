"""The masking-policy module (tools/policy, pyvfio_policy.ko) and its knob,
/sys/module/pyvfio_policy/parameters/policy: reading it shows, per IRQ written to
it, the live IRQ_DISABLE_UNLAZY flag; writing "IRQ lazy|unlazy" sets genirq's
disable policy for that IRQ.  Usable inside a lab guest and on a real lab machine
with the module loaded (`ensure_module` builds and loads it).

Apply a policy after INTx is enabled: vfio requests the IRQ then, and the fixed
kernel (8b9f128947dd) sets or clears the flag around request_irq/free_irq, so a
policy applied earlier is overwritten, and a disable/enable of INTx (a re-arm)
resets it.
"""

import os

from ..checkout import CHECKOUT
from ..errors import PyvfioError
from ..vocabulary import SWITCHED, words
from . import interrupts, paths, writes

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


POLICIES = words(SWITCHED)
_HINT = "load the module: make -C tools/policy && insmod tools/policy/pyvfio_policy.ko"


def irq_of(bdf, root="/"):
    """The Linux IRQ vfio requested for bdf's INTx (its /proc/interrupts name)."""
    line = interrupts.intx_line(bdf, root=root)
    if line is None:
        raise PyvfioError(f"no vfio-intx({bdf}) line in /proc/interrupts",
                          "enable the device's INTx trigger first")
    return line.irq


def set_irq_policy(irq, policy, root="/"):
    if policy not in POLICIES:
        raise PyvfioError(f"unknown policy {policy!r}", "use lazy or unlazy")
    if not available(root):
        raise PyvfioError("the masking-policy module pyvfio_policy is not loaded", _HINT)
    writes.write(paths.under(root, KNOB), f"{irq} {policy}\n")
    got = (states(root) or {}).get(irq)
    if got != policy:
        raise PyvfioError(f"IRQ {irq} reads {got} after setting {policy}")
    return irq


def set_policy(bdf, policy, root="/"):
    """Set the policy of bdf's INTx IRQ; returns the IRQ number."""
    return set_irq_policy(irq_of(bdf, root), policy, root)


MODULE_SRC = str(CHECKOUT / "tools" / "policy")


def ensure_module(release=None):
    """Load pyvfio_policy if it is not: build it against the running kernel's
    headers (/lib/modules/RELEASE/build) and insmod it.  Inside a lab VM the boot
    has loaded it already."""
    if available():
        return
    release = release or os.uname().release
    build = f"/lib/modules/{release}/build"
    if not os.path.isdir(build):
        raise PyvfioError(f"the masking-policy module needs the kernel headers of {release} ({build} is missing)",
                          f"install them (Debian: apt-get install linux-headers-{release}), or leave the "
                          "policy axis at 'kernel'")
    if not os.path.isdir(MODULE_SRC):
        # pip-installed pyvfio has no tools/; the sdist carries them.
        raise PyvfioError("the masking-policy module pyvfio_policy is not loaded, and this pyvfio "
                          "(installed, not a checkout) has no tools/policy to build it from",
                          "build and load it from pyvfio's sdist: tar xzf pyvfio-*.tar.gz && "
                          "make -C pyvfio-*/tools/policy && insmod pyvfio-*/tools/policy/pyvfio_policy.ko")
    r = writes.run(["make", "-C", MODULE_SRC, f"KDIR={build}"],
                   "install gcc and make (Debian: apt-get install build-essential)")
    ko = os.path.join(MODULE_SRC, "pyvfio_policy.ko")
    if r.returncode or not os.path.exists(ko):
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PyvfioError(f"building tools/policy against {build} failed: {tail[0]}", "see make -C tools/policy")
    r = writes.run(["insmod", ko], "install kmod (Debian: apt-get install kmod)")
    if r.returncode:
        raise PyvfioError(f"insmod pyvfio_policy.ko failed: {r.stderr.strip()}",
                          "run as root; with Secure Boot, unsigned modules are refused")
