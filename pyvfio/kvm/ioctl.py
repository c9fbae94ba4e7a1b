"""KVM's ioctls, issued through the one place (vfio/ioctl.py) with KvmError."""

from ..errors import KvmError
from ..vfio.ioctl import issue


def kvm_ioctl(fd, op, request, arg=0, hint=None):
    """A KVM ioctl; returns its value (an fd for the CREATE ioctls)."""
    return issue(KvmError, fd, op, request, arg, hint)
