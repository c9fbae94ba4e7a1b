"""One place where ioctls are issued (VFIO's here, KVM's through kvm/ioctl.py):
fcntl.ioctl on a mutable buffer (an immutable `bytes` argument loses the ioctl's
return value), errors turned into the caller's error class carrying the
operation and errno."""

import fcntl

from ..errors import VfioError


def issue(error, fd, op, request, arg=0, hint=None):
    """Issue `op` (an ioctl's name) on fd; `arg` is an int or a writable buffer.
    Returns the ioctl's return value; an OSError becomes error(op, errno, hint=hint)."""
    try:
        if isinstance(arg, int):
            return fcntl.ioctl(fd, request, arg)
        return fcntl.ioctl(fd, request, arg, True)
    except OSError as exc:
        raise error(op, exc.errno, hint=hint) from None


def vfio_ioctl(fd, op, request, arg=0, hint=None):
    """A VFIO ioctl: see issue()."""
    return issue(VfioError, fd, op, request, arg, hint)
