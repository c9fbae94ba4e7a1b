"""KVM_IRQFD: an eventfd that injects a GSI (virt/kvm/eventfd.c).

Without a resamplefd, irqfd_inject pulses the GSI (kvm_set_irq 1 then 0 from a
work item): an edge.  With KVM_IRQFD_FLAG_RESAMPLE it asserts the GSI and leaves it
asserted; when the guest acknowledges the interrupt (the irqchip's ack notifier:
the PIC's EOI, the IOAPIC's EOI of a level entry), irqfd_resampler_ack deasserts it
and signals the resamplefd.  vfio-pci registered that eventfd as its unmask eventfd
(VFIO_IRQ_SET_ACTION_UNMASK|DATA_EVENTFD), so the host line is unmasked in the
kernel, with no userspace transition per interrupt.
"""

from .. import uapi
from .._binding import ffi
from .ioctl import kvm_ioctl


class Irqfd:
    def __init__(self, vm, gsi, trigger, resample=None):
        self.vm, self.gsi, self.trigger, self.resample = vm, gsi, trigger, resample
        self.assigned = False
        self._ioctl(uapi.KVM_IRQFD_FLAG_RESAMPLE if resample is not None else 0)
        self.assigned = True

    def _ioctl(self, flags):
        arg = ffi.new("struct kvm_irqfd *")
        arg.fd, arg.gsi, arg.flags = self.trigger.fileno(), self.gsi, flags
        if self.resample is not None and not flags & uapi.KVM_IRQFD_FLAG_DEASSIGN:
            arg.resamplefd = self.resample.fileno()
        what = "KVM_IRQFD" + (" (deassign)" if flags & uapi.KVM_IRQFD_FLAG_DEASSIGN else
                              " (resample)" if self.resample is not None else "")
        kvm_ioctl(self.vm.fd, what, uapi.KVM_IRQFD, ffi.buffer(arg))

    def deassign(self):
        if self.assigned:
            self.assigned = False
            self._ioctl(uapi.KVM_IRQFD_FLAG_DEASSIGN)
