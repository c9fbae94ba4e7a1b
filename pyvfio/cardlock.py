"""One pyvfio run per card at a time: an advisory lock taken before anything is
done to the card (a vfio-pci reload, a rebind, INTx), so a second run is refused
at once and the first is undisturbed.  (The VFIO group itself is exclusive too,
but only once opened; a reload would already have torn the first run's card away.)"""

import contextlib
import errno
import fcntl
import os

from .errors import PyvfioError, RefusedError

LOCK_DIR = "/run/pyvfio"


@contextlib.contextmanager
def card_lock(bdf, lock_dir=LOCK_DIR):
    path = os.path.join(lock_dir, f"card-{bdf}.lock")
    try:
        os.makedirs(lock_dir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        raise PyvfioError(f"no permission to take the card lock {path}",
                          "run as root (VFIO needs it for /dev/vfio/N anyway)") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise RefusedError(f"{bdf} is in use by another pyvfio run (pid {holder})",
                               "wait for it to finish; two runs on one card would disturb each other") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
