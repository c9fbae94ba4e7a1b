"""One pyvfio run per card at a time: an advisory lock taken before anything is
done to the card (a vfio-pci reload, a rebind, INTx), so a second run is refused
at once and the first is undisturbed.  (The VFIO group itself is exclusive too,
but only once opened; a reload would already have torn the first run's card away.)

The lock is flock(2) on a file, so a run killed with SIGKILL leaves no stale lock:
the kernel drops it with the process.  The folder is /run/pyvfio, or
$PYVFIO_LOCK_DIR where /run is not writable (every pyvfio user of the machine must
then name the same folder).  `pyvfio bind` and `unbind` hold one such lock too
(`locked`), for their whole sequence of sysfs writes.

pyvfio runs as root and the folder may be shared, so the lock is taken the way
sshd's StrictModes trusts a file: the folder is opened without following a link
and must be owned by root or by us and not writable by group or others unless
sticky (1777, like /tmp); the lock file is opened relative to it (dir_fd),
never through a link, made with O_EXCL when missing, and an existing one is used
only if it is a regular file with one link owned by root or by us.  Only a file
pyvfio made is ever chmod-ed; the holder's pid is written only into a file we own."""

import contextlib
import errno
import fcntl
import os
import stat

from .errors import RefusedError, os_error

LOCK_DIR = "/run/pyvfio"

_ROOT_HINT = "run as root (VFIO needs it for /dev/vfio/N anyway)"
_HINTS = {errno.EACCES: _ROOT_HINT, errno.EPERM: _ROOT_HINT,
          errno.EROFS: "the file system is read-only: make /run writable, or set "
                       "PYVFIO_LOCK_DIR to a writable folder every pyvfio user shares"}
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
CARD = "take the card lock"


def _hint(exc, what):
    """PYVFIO_LOCK_DIR moves the card locks only (not bind's record): said for them."""
    if exc.errno == errno.EROFS and what != CARD:
        return None
    return _HINTS.get(exc.errno)


def lock_dir():
    return os.environ.get("PYVFIO_LOCK_DIR") or LOCK_DIR


def _trusted(st):
    return st.st_uid in (0, os.geteuid())


def open_folder(folder, what=CARD):
    """An fd of `folder` (made 0755 when missing), checked: a real folder, not a
    link, owned by root or us, not group/other-writable unless sticky."""
    folder = os.path.abspath(folder)
    made = False
    try:
        if not os.path.lexists(folder):
            if not os.path.lexists(os.path.dirname(folder)):
                os.makedirs(os.path.dirname(folder), exist_ok=True)
            try:
                os.mkdir(folder, 0o755)
                made = True
            except FileExistsError:  # made meanwhile by another pyvfio: checked below
                pass
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(folder):
            raise RefusedError(f"cannot {what} in {folder}: it is a symbolic link",
                               "make PYVFIO_LOCK_DIR a real folder owned by root") from None
        raise os_error(what, folder, exc, _hint(exc, what)) from None
    st = os.fstat(fd)
    why = None
    if not _trusted(st):
        why = f"it is owned by uid {st.st_uid}, not by root or by uid {os.geteuid()}"
    elif st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        why = f"it is writable by {'others' if st.st_mode & 0o002 else 'its group'} (mode " \
              f"{stat.S_IMODE(st.st_mode):04o}) and not sticky"
    if why:
        os.close(fd)
        raise RefusedError(f"cannot {what} in {folder}: {why}",
                           "use a folder owned by root of mode 0755 or 1777 (sticky), "
                           "e.g. `install -d -m 1777 FOLDER`")
    if made:
        os.fchmod(fd, 0o755)  # ours: the umask must not hide it from the vfio group
    return fd


def open_lock_file(dir_fd, folder, name, what=CARD):
    """(fd, ours) for `name` in the checked folder: made with O_EXCL (ours), or an
    existing regular file with one link owned by root or us (ours if ours by uid)."""
    path = os.path.join(folder, name)
    create_error = None
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644, dir_fd=dir_fd)
        os.fchmod(fd, 0o644)  # we made it: readable by every user (see prepare)
        return fd, True
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise os_error(what, path, exc, _hint(exc, what)) from None
        # A user in group vfio cannot create files in root's /run/pyvfio, but flock
        # needs no write access to the file `pyvfio bind` made (prepare).
        create_error = exc
    try:
        # Looked at before it is opened, so that a FIFO or device is never opened.
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        exc = create_error or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        raise os_error(what, path, exc, _hint(exc, what)) from None
    except OSError as exc:
        raise os_error(what, path, exc, _hint(exc, what)) from None
    _refuse_untrusted(st, path, what)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        raise os_error(what, path, exc, _hint(exc, what)) from None
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):  # swapped meanwhile
        os.close(fd)
        raise RefusedError(f"cannot {what}: {path} was replaced while it was opened",
                           "someone else is writing that folder: make it owned by root, mode 0755")
    _refuse_untrusted(now, path, what)
    return fd, now.st_uid == os.geteuid()


def _refuse_untrusted(st, path, what):
    why = None
    if stat.S_ISLNK(st.st_mode):
        why = "it is a symbolic link"
    elif not stat.S_ISREG(st.st_mode):
        why = "it is not a regular file"
    elif st.st_nlink != 1:
        why = f"it has {st.st_nlink} hard links"
    elif not _trusted(st):
        why = f"it is owned by uid {st.st_uid}, not by root or by uid {os.geteuid()}"
    if why:
        raise RefusedError(f"cannot {what}: {path}: {why}, not made by pyvfio",
                           "remove it (someone may have planted it) and check who can write its folder")


@contextlib.contextmanager
def locked(folder, name, busy, what=CARD):
    """Hold flock on folder/name; `busy(holder)` is the RefusedError raised when
    another process holds it (holder: its pid as it wrote it, or "another process")."""
    dir_fd = open_folder(folder, what)
    try:
        fd, ours = open_lock_file(dir_fd, folder, name, what)
    finally:
        os.close(dir_fd)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise os_error(what, os.path.join(folder, name), exc) from None
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise busy(holder) from None
        if ours:  # the holder's pid, for the refusal above; the lock holds without it
            try:
                if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
                    # the same inode again (a magic link, not a path anyone can swap)
                    wfd = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_CLOEXEC)
                else:
                    wfd = os.dup(fd)
                try:
                    os.ftruncate(wfd, 0)
                    os.pwrite(wfd, f"{os.getpid()}\n".encode(), 0)
                finally:
                    os.close(wfd)
            except OSError:
                pass
        yield
    finally:
        os.close(fd)


def open_shared(path, what="take the lock"):
    """An fd to flock for a lock file in a folder others may write (the lab's cache,
    which PYVFIO_CACHE may name; /tmp): made or opened without following a link,
    without blocking on a FIFO and without truncating anything, and refused in one
    line unless it is a regular file.  Nothing is ever written into it."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NONBLOCK | _NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedError(f"cannot {what}: {path} is a symbolic link, not made by pyvfio",
                               "remove it (someone may have planted it) and check who can write its folder") from None
        raise os_error(what, path, exc) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RefusedError(f"cannot {what}: {path} is not a regular file, not made by pyvfio",
                           "remove it (someone may have planted it) and check who can write its folder")
    return fd


@contextlib.contextmanager
def waiting(path, what="take the lock"):
    """Hold flock on `path` (open_shared), waiting for its holder: preparers of one
    lab cache take turns."""
    fd = open_shared(path, what)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def card_lock(bdf, folder=None):
    def busy(holder):
        return RefusedError(f"{bdf} is in use by another pyvfio run (pid {holder})",
                            "wait for it to finish; two runs on one card would disturb each other")

    with locked(folder or lock_dir(), f"card-{bdf}.lock", busy):
        yield


def prepare(bdf, folder=None):
    """Made by `pyvfio bind` (root): the card's lock file, readable by every user, so
    that a user allowed /dev/vfio/N (group vfio) can take the lock too.  Best effort:
    a run as root makes it anyway; a file that is there already is left as it is."""
    try:
        dir_fd = open_folder(folder or lock_dir())
    except Exception:  # the run that needs it says what is wrong, in one line
        return
    try:
        fd = os.open(f"card-{bdf}.lock", os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644,
                     dir_fd=dir_fd)
        os.fchmod(fd, 0o644)  # ours: past the umask
        os.close(fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


__all__ = ["card_lock", "lock_dir", "locked", "open_folder", "open_shared", "prepare", "waiting"]
