"""Progress lines on stderr while the lab prepares and boots (quiet with PYVFIO_LAB_QUIET=1)."""
import os
import sys
import time

_T0 = time.monotonic()


def say(msg):
    if os.environ.get("PYVFIO_LAB_QUIET") == "1":
        return
    print(f"[lab {time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)
