"""KVM's resample irqfd: how a VM on this host would unmask INTx."""

from .check import OK, WARN, Check

_POWER = ("ppc64le", "ppc64")


def check(s, root, kvm_probe):
    avail, ev = kvm_probe(root, s.machine)
    if avail:
        return Check("kvm_irqfd_resample", OK, "KVM resample irqfd available: a VM unmasks "
                     "INTx by eventfd on guest EOI (pyvfio run --guest kvm runs that path)", ev)
    why = ""
    if s.machine in _POWER:
        # arch/powerpc/kvm/powerpc.c: case KVM_CAP_IRQFD_RESAMPLE: r = !xive_enabled()
        why = ("; on POWER, KVM offers it only without XIVE (arch/powerpc/kvm/powerpc.c answers "
               "KVM_CAP_IRQFD_RESAMPLE with !xive_enabled()): a POWER9+ host unmasks INTx by "
               "ioctl whatever the VMM")
    return Check("kvm_irqfd_resample", WARN,
                 "KVM resample irqfd not available" if avail is False else "KVM resample irqfd: unknown",
                 ev + why + "; a VM here would unmask by one SET_IRQS ioctl per interrupt "
                      "(pyvfio's default --unmask ioctl); pyvfio itself does not need KVM",
                 _fix(s.machine, ev))


def _fix(machine, ev):
    if "permission" in ev:
        return "run as root or join the kvm group"
    if machine in _POWER:
        return ("modprobe kvm_hv (or kvm_pr) and join the kvm group; under XIVE (POWER9 and "
                "later) KVM does not offer it at all")
    return "modprobe kvm_intel (or kvm_amd) and join the kvm group"
