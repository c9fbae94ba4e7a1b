"""One place where KVM ioctls are issued (as vfio/ioctl.py for VFIO)."""

import fcntl

from ..errors import KvmError


def kvm_ioctl(fd, op, request, arg=0, hint=None):
    """Issue `op` (a KVM ioctl name) on fd; `arg` an int or a writable buffer.
    Returns the ioctl's return value (an fd for the CREATE ioctls)."""
    try:
        if isinstance(arg, int):
            return fcntl.ioctl(fd, request, arg)
        return fcntl.ioctl(fd, request, arg, True)
    except OSError as exc:
        raise KvmError(op, exc.errno, hint=hint) from None
