"""/dev/kvm: the API version, capabilities, and VMs."""

import errno
import os

from .. import uapi
from ..errors import KvmError
from ..fdowner import FdOwner
from .ioctl import kvm_ioctl

DEVICE = "/dev/kvm"
# The capabilities the KVM guest needs, with what each is for.
CAPS = {
    "KVM_CAP_USER_MEMORY": "guest RAM and BAR memslots",
    "KVM_CAP_IRQCHIP": "the in-kernel PIC/IOAPIC",
    "KVM_CAP_IRQFD": "vfio's trigger eventfd as an irqfd",
    "KVM_CAP_MP_STATE": "waking a halted vCPU after the watchdog stopped it",
}
RESAMPLE = ("KVM_CAP_IRQFD_RESAMPLE", "the resample irqfd (INTx unmasked in the kernel at guest EOI)")


class Kvm(FdOwner):
    """An open /dev/kvm.  Use as a context manager."""

    def __init__(self, path=DEVICE):
        self.path = path
        if not os.path.exists(path):
            raise KvmError(f"open {path}", errno.ENOENT, f"{path} does not exist",
                           "load kvm_intel or kvm_amd (virtualisation enabled in the firmware, or "
                           "nested virtualisation in a VM), or use --guest toy")
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError:
            raise KvmError(f"open {path}", errno.EACCES, f"no permission to open {path}",
                           "run as root or join the kvm group") from None
        except OSError as exc:
            raise KvmError(f"open {path}", exc.errno) from None
        try:
            version = kvm_ioctl(self.fd, "KVM_GET_API_VERSION", uapi.KVM_GET_API_VERSION)
            if version != uapi.KVM_API_VERSION:
                raise KvmError("KVM_GET_API_VERSION", None, f"{path} speaks KVM API {version}, "
                               f"pyvfio was built for {uapi.KVM_API_VERSION}")
            self.vcpu_mmap_size = kvm_ioctl(self.fd, "KVM_GET_VCPU_MMAP_SIZE", uapi.KVM_GET_VCPU_MMAP_SIZE)
        except BaseException:
            self.close()
            raise

    def check_extension(self, cap):
        """KVM_CHECK_EXTENSION: 0 when absent, else the capability's value."""
        return kvm_ioctl(self.fd, "KVM_CHECK_EXTENSION", uapi.KVM_CHECK_EXTENSION, getattr(uapi, cap))

    def require(self, cap, why):
        if self.check_extension(cap) <= 0:
            raise KvmError("KVM_CHECK_EXTENSION", None, f"this host's KVM lacks {cap} ({why})",
                           "use --unmask ioctl (an irqfd without resampler and a userspace unmask)"
                           if cap == RESAMPLE[0] else "use --guest toy")

    def create_vm(self):
        from .vm import Vm
        fd = kvm_ioctl(self.fd, "KVM_CREATE_VM", uapi.KVM_CREATE_VM, 0)
        return Vm(self, fd)
