"""Reading the files a user hands pyvfio (profiles, scenarios, result files, a
fleet's fleet.json, patches): regular files only, never a FIFO, a device node or a
folder (stat first, then opened with O_NONBLOCK and checked again, so nothing can
hang a read), bounded in size, and every failure one line naming the file."""

import errno
import os
import stat

from .errors import UsageError, os_error

MAX_BYTES = 64 << 20    # a result of a long repro is a few MiB; a profile a few KiB

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(path, what, mode):
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return UsageError(f"{what} {path} is {kind}, not a file", "give a regular file")


def _failed(path, what, exc):
    hint = f"check the path of the {what}" if exc.errno in (errno.ENOENT, errno.ENOTDIR) else None
    return os_error(f"read {what}", path, exc, hint, cls=UsageError)


def read_bytes(path, what="file", limit=MAX_BYTES):
    """The bytes of the regular file `path`; UsageError in one line otherwise
    (`what` names it: "profile", "scenario", "result file")."""
    path = os.fspath(path)
    if path == "":
        raise UsageError(f"an empty path where a {what} is expected", f"name the {what}")
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, what, st.st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _failed(path, what, exc) from None
    try:
        st = os.fstat(fd)           # what was opened, if it was swapped since the stat
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, what, st.st_mode)
        if st.st_size > limit:
            raise UsageError(f"{what} {path} is {st.st_size} bytes, more than any pyvfio {what}",
                             f"give a file under {limit >> 20} MiB")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise UsageError(f"{what} {path} grew past {limit >> 20} MiB while read",
                                 "give a file that holds still")
        return b"".join(chunks)
    except OSError as exc:
        raise _failed(path, what, exc) from None
    finally:
        os.close(fd)


def read_text(path, what="file", limit=MAX_BYTES):
    """read_bytes decoded as UTF-8, undecodable bytes replaced (a parser then names them)."""
    return read_bytes(path, what, limit).decode(errors="replace")
