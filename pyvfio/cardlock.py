"""One pyvfio run per card at a time: an advisory lock taken before anything is
done to the card (a vfio-pci reload, a rebind, INTx), so a second run is refused
at once and the first is undisturbed.  (The VFIO group itself is exclusive too,
but only once opened; a reload would already have torn the first run's card away.)

The lock is flock(2) on a file, so a run killed with SIGKILL leaves no stale lock:
the kernel drops it with the process.  The folder is /run/pyvfio, or
$PYVFIO_LOCK_DIR where /run is not writable (every pyvfio user of the machine must
then name the same folder)."""

import contextlib
import errno
import fcntl
import os

from .errors import RefusedError, os_error

LOCK_DIR = "/run/pyvfio"


def lock_dir():
    return os.environ.get("PYVFIO_LOCK_DIR") or LOCK_DIR


@contextlib.contextmanager
def card_lock(bdf, folder=None):
    folder = folder or lock_dir()
    path = os.path.join(folder, f"card-{bdf}.lock")
    try:
        os.makedirs(folder, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError:
            # A user in group vfio cannot create files in root's /run/pyvfio, but
            # flock needs no write access to the file `pyvfio bind` made (prepare).
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        hint = {errno.EACCES: "run as root (VFIO needs it for /dev/vfio/N anyway)",
                errno.EPERM: "run as root (VFIO needs it for /dev/vfio/N anyway)",
                errno.EROFS: "the file system is read-only: make /run writable, or set "
                             "PYVFIO_LOCK_DIR to a writable folder every pyvfio user shares"}.get(exc.errno)
        raise os_error("take the card lock", path, exc, hint) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise os_error("lock", path, exc) from None
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise RefusedError(f"{bdf} is in use by another pyvfio run (pid {holder})",
                               "wait for it to finish; two runs on one card would disturb each other") from None
        try:  # the holder's pid, for the refusal above; the lock holds without it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def prepare(bdf, folder=None):
    """Made by `pyvfio bind` (root): the card's lock file, readable by every user, so
    that a user allowed /dev/vfio/N (group vfio) can take the lock too.  Best effort:
    a run as root makes it anyway."""
    folder = folder or lock_dir()
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(os.path.join(folder, f"card-{bdf}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.fchmod(fd, 0o644)
        os.close(fd)
    except OSError:
        pass


__all__ = ["card_lock", "lock_dir", "prepare"]
