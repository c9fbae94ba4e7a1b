"""Result files: written atomically (a temporary file renamed into place), stamped
with pyvfio's version, the command line and the host.

Every file pyvfio writes for its user (--json, --svg, --hgrm, --html, fleet files,
the bindings record, machine.json) goes through write_atomic, which, as root, never
writes through a link or into anything but a regular file, takes `-` for standard
output, and keeps the text in $TMPDIR when the final write fails, so that a full
disk never loses what was measured.  check_outputs refuses, before a command
starts, an empty path, a path that is not a regular file, and an output that is
one of the same command's inputs or outputs."""

import json
import os
import stat
import sys
import tempfile
import time

from . import __version__
from .errors import OutputError, PyvfioError, StreamError, UsageError, os_error

STDOUT = "-"
# The result format's words, one name each.
FLEET_FILE = "fleet.json"       # `pyvfio fleet run`'s summary, in its --out folder
NA = "-"                        # a cell's axis that does not apply to it (an MSI's policy...)
# What a cell key from before an axis existed means: the distribution's vfio-pci, on
# INTx, with the toy guest (the axes' defaults in a scenario, pyvfio/repro/scenario.py).
KEY_DEFAULTS = {"vfio": "shipped", "irq": "intx", "guest": "toy"}
_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def axis(key, name):
    """A cell key's (or a run's modes') value of axis `name`; an older file's default
    where it has none."""
    return key.get(name, KEY_DEFAULTS.get(name))


def envelope(kind, **body):
    """The common header of every result file."""
    return {"tool": "pyvfio", "version": __version__, "kind": kind,
            "command": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **body}


def _not_regular(path, what):
    """A UsageError if `path` exists and is not a regular file (lstat: a link is
    not followed), else None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return os_error(what, path, exc)
    if stat.S_ISREG(st.st_mode):
        return None
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    return UsageError(f"cannot {what} {path}: it is {kind}, not a regular file",
                      "name a new or regular file (or - for standard output)")


def check_writable(path, what="write results to"):
    """Fail now, in one line, if `path` cannot be written later: before a run
    touches a card, not after it has measured.  Creates and removes a temporary
    file in the target folder (the same call write_atomic makes)."""
    if path is None or path == STDOUT:
        return
    if path == "":
        raise UsageError(f"cannot {what} an empty path", "name a file, or - for standard output")
    refused = _not_regular(path, what)
    if refused:
        raise refused
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pyvfio-", dir=folder)
    except OSError as exc:
        raise os_error(what, path, exc) from None
    os.close(fd)
    os.unlink(tmp)


def _identity(path):
    """What makes two paths one file: its (device, inode) when it exists, and the
    real path either way."""
    ids = {("path", os.path.realpath(path))}
    try:
        st = os.stat(path)
        ids.add(("inode", st.st_dev, st.st_ino))
    except OSError:
        pass
    return ids


def check_outputs(outputs, inputs=()):
    """The one check of a command's output files, before it starts: outputs
    [(option, path or None)], inputs [(what, path or None)].  Each output must be
    writable (check_writable), `-` at most once, and no output may be an input or
    another output (compared by real path and by inode).  Returns whether one of
    them is standard output (the summary then goes to stderr)."""
    seen = [(what, _identity(path)) for what, path in inputs if path not in (None, "", STDOUT)]
    stdout_by = None
    for option, path in outputs:
        if path is None:
            continue
        if path == STDOUT:
            if stdout_by:
                raise UsageError(f"{stdout_by} and {option} both name - (standard output)",
                                 "name a file for one of them")
            stdout_by = option
            continue
        check_writable(path, f"write {option} to")
        ids = _identity(path)
        for what, other in seen:
            if ids & other:
                raise UsageError(f"{option} {path} is also {what}",
                                 "name another file: writing it would destroy or mix the two")
        seen.append((f"the {option} output", ids))
    return stdout_by is not None


def _keep(path, text):
    """Somewhere else for a text that could not be written to `path`: a new file
    in $TMPDIR (or /tmp, /var/tmp, ...); None if there is no place either."""
    base = "stdout" if path == STDOUT else os.path.basename(path) or "output"
    try:
        fd, kept = tempfile.mkstemp(prefix="pyvfio-kept-", suffix=f"-{base}")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return kept
    except OSError:
        return None


def _failed(what, path, text, exc, keep):
    shown = "standard output" if path == STDOUT else path
    err = os_error(what, shown, exc, cls=OutputError) if isinstance(exc, OSError) else exc
    if keep:
        kept = _keep(path, text)
        where = f"what was measured is kept in {kept}" if kept else "and it could not be kept anywhere else"
        err.hint = f"{err.hint}; {where}" if err.hint else where
    return err


def write_atomic(path, text, what="write", keep=True):
    """Write `text` to `path` so that a reader sees the old file or the whole new
    one, never a part: a temporary file in the same folder, synced, renamed.  `-`
    is standard output.  Anything there that is not a regular file is refused
    (lstat: a link is replaced by nothing and written through never).  A failure
    (read-only, no space, no folder) is a one-line PyvfioError; with `keep` the
    text is saved in $TMPDIR first and the message says where."""
    if path == STDOUT:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (OSError, StreamError) as exc:
            if isinstance(exc, StreamError):
                exc = exc.exc                # the command line's guarded stdout says why
            # What stdout still buffers would fail again at exit, a second message:
            # it goes to /dev/null from now on.
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, sys.stdout.fileno())
                os.close(null)
            except (OSError, ValueError):
                pass
            raise _failed(what, path, text, exc, keep) from None
        return
    if path == "":
        raise UsageError(f"cannot {what} an empty path", "name a file, or - for standard output")
    refused = _not_regular(path, what)
    if refused:
        raise _failed(what, path, text, refused, keep)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pyvfio-", dir=folder)
    except OSError as exc:
        raise _failed(what, path, text, exc, keep) from None
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide root's results from other users
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _failed(what, path, text, exc, keep) from None
        raise


def write_outputs(items):
    """write_atomic each (path or None, text or a function giving it, what); a
    failed one does not stop the others.  Raises the first failure after all."""
    first = None
    for path, text, what in items:
        if path is None:
            continue
        try:
            write_atomic(path, text() if callable(text) else text, what)
        except PyvfioError as exc:
            first = first or exc
    if first:
        raise first


def open_log(path, append=False, what="write the log to"):
    """A log file that a child process writes as it goes (no atomic rename for a
    stream): opened without following a link (O_NOFOLLOW) and without blocking on a
    FIFO, and refused unless it is a regular file.  A binary file object."""
    refused = _not_regular(path, what)
    if refused:
        raise refused
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    flags |= os.O_APPEND if append else 0
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise _failed(what, path, "", exc, keep=False) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):   # swapped in after the lstat
        os.close(fd)
        raise _not_regular(path, what) or UsageError(f"cannot {what} {path}: not a regular file")
    if not append:
        os.ftruncate(fd, 0)  # only now that it is known to be a regular file
    os.set_blocking(fd, True)
    return os.fdopen(fd, "ab" if append else "wb")


def write_json(path, data):
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n", "write results to")
