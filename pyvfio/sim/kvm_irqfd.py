"""KVM's resample irqfd (virt/kvm/eventfd.c) on the model host: vfio's unmask done
in the kernel on the guest's EOI (docs/model.md, "KVM's resampler").

A VMM hands KVM vfio's trigger eventfd as an irqfd (KVM_IRQFD) with vfio's unmask
eventfd as its resamplefd (KVM_IRQFD_FLAG_RESAMPLE).  When the guest EOIs the level
GSI, KVM's irqchip calls the ack notifier irqfd_resampler_ack: it deasserts the GSI
and eventfd_signal()s every resamplefd of the GSI, which wakes vfio's virqfd
(virqfd_wakeup -> vfio_pci_intx_unmask_handler) in the vCPU thread's kernel
context.  So the host-side sequence is the eventfd-unmask one, with no userspace
write: the model runs the eventfd cell with this as the guest's EOI and counts
every unmask as the kernel's.
"""


class Resampler:
    """struct kvm_kernel_irqfd_resampler for the card's GSI: one resamplefd, vfio's
    unmask eventfd, bound once vfio-pci has registered it (vfio_virqfd_enable)."""

    SIGNALLER = "kvm: guest EOI -> irqfd_resampler_ack -> eventfd_signal(resamplefd)"

    def __init__(self, cpu, trace=None):
        self.cpu, self.trace = cpu, trace
        self.resamplefd = None
        self.acks = 0               # unmasks KVM signalled (userspace made none)

    def bind(self, virqfd):
        """KVM_IRQFD(FLAG_RESAMPLE) with vfio's unmask eventfd (None: unregistered)."""
        self.resamplefd = virqfd.eventfd if virqfd is not None else None
        if virqfd is not None:
            virqfd.signaller = self.SIGNALLER

    def irqfd_resampler_ack(self):
        """The guest's EOI of the level GSI (kvm_notify_acked_irq -> the ack notifier)."""
        if self.resamplefd is None:
            return          # no resampler registered: the EOI reaches nobody (the line stays masked)
        self.acks += 1
        self.resamplefd.signal()
