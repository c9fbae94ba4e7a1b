"""Result files: written atomically (a temporary file renamed into place), stamped
with pyvfio's version, the command line and the host."""

import json
import os
import sys
import tempfile
import time

from . import __version__
from .errors import os_error


def envelope(kind, **body):
    """The common header of every result file."""
    return {"tool": "pyvfio", "version": __version__, "kind": kind,
            "command": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **body}


def check_writable(path, what="write results to"):
    """Fail now, in one line, if `path` cannot be written later: before a run
    touches a card, not after it has measured.  Creates and removes a temporary
    file in the target folder (the same call write_atomic makes)."""
    if path is None:
        return
    if os.path.isdir(path):
        raise os_error(what, path, IsADirectoryError(21, "Is a directory"))
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pyvfio-", dir=folder)
    except OSError as exc:
        raise os_error(what, path, exc) from None
    os.close(fd)
    os.unlink(tmp)


def write_atomic(path, text, what="write"):
    """Write `text` to `path` so that a reader sees the old file or the whole new
    one, never a part: a temporary file in the same folder, synced, renamed.
    An OSError (read-only, no space, no folder) becomes a one-line PyvfioError."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pyvfio-", dir=folder)
    except OSError as exc:
        raise os_error(what, path, exc) from None
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
            raise os_error(what, path, exc) from None
        raise


def write_json(path, data):
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n", "write results to")
