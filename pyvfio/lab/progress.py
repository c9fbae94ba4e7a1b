"""Progress lines on stderr while the lab prepares and boots (quiet with PYVFIO_LAB_QUIET=1),
and, for work in parts (repro --lab's boots, fleet run's places), how much is done
out of the total and how long the rest should take."""
import os
import sys
import threading
import time

_T0 = time.monotonic()


def say(msg):
    if os.environ.get("PYVFIO_LAB_QUIET") == "1":
        return
    print(f"[lab {time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def duration(s):
    s = max(0, int(round(s)))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Tracker:
    """`done` of `total` cells (or other units), said each time a part ends.  Time
    left: the time per unit so far, times the units left, over the parts that run at
    once (`parallel`); `bound` (seconds from now, or None) caps it where a deadline
    is known.  Thread-safe: parts end on worker threads."""

    def __init__(self, what, total, unit="cell(s)", parallel=1, clock=time.monotonic, out=say):
        self.what, self.total, self.unit, self.parallel = what, total, unit, max(1, parallel)
        self.done, self.clock, self.out, self.t0 = 0, clock, out, clock()
        self.lock = threading.Lock()

    def left_s(self):
        if not self.done:
            return None
        per = (self.clock() - self.t0) / self.done
        return per * (self.total - self.done) / self.parallel

    def advance(self, n, note="", bound=None):
        """n more units done; returns the line said."""
        with self.lock:
            self.done = min(self.total, self.done + n)
            left = self.left_s()
            if bound is not None and left is not None:
                left = min(left, bound)
            line = (f"{self.what}: {self.done}/{self.total} {self.unit} done"
                    + (f" ({note})" if note else "")
                    + f", {duration(self.clock() - self.t0)} in"
                    + ("" if self.done >= self.total or left is None else f"; about {duration(left)} left"))
            self.out(line)
            return line
