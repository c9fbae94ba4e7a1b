"""KVM's resample irqfd: how a VM on this host would unmask INTx."""

from .check import OK, WARN, Check


def check(s, root, kvm_probe):
    avail, ev = kvm_probe(root, s.machine)
    if avail:
        return Check("kvm_irqfd_resample", OK, "KVM resample irqfd available: a VM unmasks "
                     "INTx by eventfd on guest EOI (pyvfio run --guest kvm runs that path)", ev)
    return Check("kvm_irqfd_resample", WARN,
                 "KVM resample irqfd not available" if avail is False else "KVM resample irqfd: unknown",
                 ev + "; a VM here would unmask by one SET_IRQS ioctl per interrupt "
                      "(pyvfio's default --unmask ioctl); pyvfio itself does not need KVM",
                 "modprobe kvm_intel (or kvm_amd / kvm_hv) and add yourself to the kvm group"
                 if "permission" not in ev else "run as root or join the kvm group")
