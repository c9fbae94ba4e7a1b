"""A KVM VM: the in-kernel irqchip, memory slots, irqfds, vCPUs.  close() undoes
everything in reverse (irqfds deassigned before the eventfds they use are closed)."""

from .. import uapi
from .._binding import ffi
from ..fdowner import FdOwner
from .ioctl import kvm_ioctl
from .irqfd import Irqfd
from .memory import Memslot


class Vm(FdOwner):
    def __init__(self, kvm, fd):
        self.kvm = kvm
        self.fd = fd
        self.slots = []
        self.irqfds = []
        self.vcpus = []

    def create_irqchip(self):
        """KVM_CREATE_IRQCHIP: on x86 the PIC pair, the IOAPIC and per-vCPU LAPICs in
        the kernel, with the default GSI routing (GSI 0-15 to PIC and IOAPIC)."""
        kvm_ioctl(self.fd, "KVM_CREATE_IRQCHIP", uapi.KVM_CREATE_IRQCHIP, 0)

    def add_memslot(self, gpa, size, hva, what, readonly=False):
        r = ffi.new("struct kvm_userspace_memory_region *")
        r.slot, r.guest_phys_addr, r.memory_size, r.userspace_addr = len(self.slots), gpa, size, hva
        r.flags = uapi.KVM_MEM_READONLY if readonly else 0
        kvm_ioctl(self.fd, f"KVM_SET_USER_MEMORY_REGION ({what} at {gpa:#x})",
                  uapi.KVM_SET_USER_MEMORY_REGION, ffi.buffer(r))
        slot = Memslot(r.slot, gpa, size, hva, what)
        self.slots.append(slot)
        return slot

    def irqfd(self, gsi, trigger, resample=None):
        fd = Irqfd(self, gsi, trigger, resample)
        self.irqfds.append(fd)
        return fd

    def create_vcpu(self, index=0):
        from .vcpu import Vcpu
        fd = kvm_ioctl(self.fd, "KVM_CREATE_VCPU", uapi.KVM_CREATE_VCPU, index)
        vcpu = Vcpu(self, fd)
        self.vcpus.append(vcpu)
        return vcpu

    def close(self):
        errors = []
        for step in [fd.deassign for fd in self.irqfds] + [v.close for v in self.vcpus]:
            try:
                step()
            except Exception as exc:  # keep closing; report the first
                errors.append(exc)
        self.irqfds.clear()
        self.vcpus.clear()
        self.close_fd()  # frees the memslots with the VM
        if errors:
            raise errors[0]
