"""One place where VFIO ioctls are issued: fcntl.ioctl on a mutable buffer (an
immutable `bytes` argument loses the ioctl's return value), errors turned into
VfioError carrying the operation and errno."""

import fcntl

from ..errors import VfioError


def vfio_ioctl(fd, op, request, arg=0, hint=None):
    """Issue `op` (a VFIO ioctl name) on fd; `arg` is an int or a writable buffer.
    Returns the ioctl's return value."""
    try:
        if isinstance(arg, int):
            return fcntl.ioctl(fd, request, arg)
        return fcntl.ioctl(fd, request, arg, True)
    except OSError as exc:
        raise VfioError(op, exc.errno, hint=hint) from None
