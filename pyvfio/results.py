"""Result files: written atomically (a temporary file renamed into place), stamped
with pyvfio's version, the command line and the host."""

import json
import os
import sys
import tempfile
import time

from . import __version__


def envelope(kind, **body):
    """The common header of every result file."""
    return {"tool": "pyvfio", "version": __version__, "kind": kind,
            "command": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **body}


def write_atomic(path, text):
    """Write `text` to `path` so that a reader sees the old file or the whole new
    one, never a part: a temporary file in the same folder, synced, renamed."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pyvfio-", dir=folder)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide root's results from other users
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path, data):
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
