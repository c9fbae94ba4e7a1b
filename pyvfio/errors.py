"""The errors pyvfio raises.  Each carries a one-line message that says what is
wrong and what to do; the command line prints it without a traceback."""

import errno as _errno
import os
from typing import NamedTuple


class Exit(NamedTuple):
    name: str
    code: int
    meaning: str


# The one table of exit statuses: every command exits with one of these, each with one
# meaning (docs/exit-codes.md is checked against it by tests/test_vocabulary.py).
# `pyvfio lab ARCH -- COMMAND` exits with COMMAND's status, and `--format ktap` with
# kselftest's (0 pass, 1 fail, 4 skip): those are the other programs' codes.
EXITS = (
    Exit("OK", 0, "done: every check passed, every cell and comparison as expected"),
    Exit("NOT_AS_EXPECTED", 1, "the command ran and the answer is no: a cell not as expected, "
                               "a comparison that changed, a failed doctor check, a profile problem"),
    Exit("USAGE", 2, "bad input (arguments, files, addresses): nothing was touched"),
    Exit("THRESHOLD", 3, "run: the round-trip p99 exceeded --threshold"),
    Exit("REFUSED", 4, "what was asked for is someone else's: a device the host uses (--force "
                       "overrides) or a fleet place another holds"),
    Exit("STALL", 5, "run: the kernel stalled the line (a stall not recovered)"),
    Exit("DMA", 6, "run --source dma: the bytes the card moved did not arrive"),
    Exit("REMOVED", 7, "the kernel asked for the card back mid-run (hot-unplug, unbind)"),
    Exit("PROFILE", 8, "the profile or the card at fault (a lost raise, no cause), not the kernel"),
    Exit("MACHINE", 9, "a lab VM or a fleet machine failed (boot, build, SSH, crash)"),
    Exit("BUG", 70, "an exception pyvfio did not expect (sysexits' EX_SOFTWARE): please report it"),
    Exit("IO", 74, "an output (stdout, a result file) failed to write (sysexits' EX_IOERR); "
                   "what was measured is kept in $TMPDIR"),
    Exit("UNAVAILABLE", 77, "the lab cannot run on this machine (not root, no QEMU, no network): "
                            "test harnesses read it as skipped"),
    Exit("INTERRUPTED", 130, "Ctrl-C or SIGTERM: torn down, partial results kept"),
)
EXIT = {e.name: e.code for e in EXITS}

EXIT_OK = EXIT["OK"]
EXIT_NOT_AS_EXPECTED = EXIT["NOT_AS_EXPECTED"]
EXIT_USAGE = EXIT["USAGE"]
EXIT_THRESHOLD = EXIT["THRESHOLD"]
EXIT_REFUSED = EXIT["REFUSED"]
EXIT_STALL = EXIT["STALL"]
EXIT_DMA = EXIT["DMA"]
EXIT_REMOVED = EXIT["REMOVED"]
EXIT_PROFILE = EXIT["PROFILE"]
EXIT_MACHINE = EXIT["MACHINE"]
EXIT_BUG = EXIT["BUG"]
EXIT_IO = EXIT["IO"]
EXIT_UNAVAILABLE = EXIT["UNAVAILABLE"]
EXIT_INTERRUPTED = EXIT["INTERRUPTED"]


class PyvfioError(Exception):
    """A failure to report to the user in one line; `exit_code` is the CLI status."""

    exit_code = EXIT_USAGE

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self):
        return f"{self.message}: {self.hint}" if self.hint else self.message


class StreamError(Exception):
    """A standard stream (`name`: "standard output" or "standard error") failed to
    write with the OSError `exc`.  Raised by the command line's guarded streams, and
    not an OSError, so that a command catching OSError for its own files cannot take
    a lost stdout for one of them; a writer of `-` (results.write_atomic) catches it."""

    def __init__(self, name, exc):
        super().__init__(name, exc)
        self.name, self.exc = name, exc


class UsageError(PyvfioError):
    """Bad input from the user (arguments, files, addresses)."""


class VfioError(PyvfioError):
    """A VFIO operation (ioctl, open, mmap, access) failed; carries op and errno."""

    def __init__(self, op, err=None, message=None, hint=None):
        self.op = op
        self.errno = err
        if message is None:
            message = f"{op} failed"
            if err is not None:
                message += f": {os.strerror(err)} ({_errno.errorcode.get(err, err)})"
        super().__init__(message, hint)


class KvmError(VfioError):
    """A KVM operation (/dev/kvm, a VM or vCPU ioctl) failed; carries op and errno."""


class AccessError(VfioError):
    """A register access outside its region, or of a width the region refuses."""

    def __init__(self, op, message, hint=None):
        super().__init__(op, _errno.EINVAL, message, hint)


class OutputError(PyvfioError):
    """An output that failed while it was written (a full disk, stdout gone), after
    the checks a command makes before it starts: EX_IOERR, not bad input."""

    exit_code = EXIT_IO


class RefusedError(PyvfioError):
    """A safety refusal (device in use by the host, ...) that --force overrides."""

    exit_code = EXIT_REFUSED


# What to do about a failed file operation, by errno (one wording for every caller).
_OS_HINTS = {
    _errno.EROFS: "the file system is read-only: choose a writable place",
    _errno.EACCES: "no permission: run as root or choose a place you may write",
    _errno.EPERM: "not permitted: run as root or choose a place you may write",
    _errno.ENOSPC: "the disk is full: free some space",
    _errno.EDQUOT: "the disk quota is exhausted: free some space",
    _errno.ENOENT: "the folder does not exist: create it or choose another",
    _errno.ENOTDIR: "a part of the path is not a folder: choose another path",
    _errno.EISDIR: "that is a folder: name a file",
}


def os_error(what, path, exc, hint=None, cls=None):
    """A one-line PyvfioError for an OSError while doing `what` to `path`:
    "cannot write results to x.json: Read-only file system (EROFS): ..."."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    if code is not None:
        reason += f" ({_errno.errorcode.get(code, code)})"
    return (cls or PyvfioError)(f"cannot {what} {path}: {reason}",
                                hint or _OS_HINTS.get(code, "check the path and try again"))
