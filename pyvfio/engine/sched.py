"""The measuring thread's CPU and scheduling class (-a, -p), cyclictest-style."""

import os

from .. import limits
from ..errors import UsageError


def pin_and_prioritise(cpu=None, priority=None):
    """-a / -p, cyclictest-style.  Returns warnings to print."""
    warnings = []
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except (OSError, ValueError, OverflowError) as exc:
            raise UsageError(f"cannot pin to CPU {cpu}: {exc}", f"use a CPU in {sorted(os.sched_getaffinity(0))}")
    if priority is not None:
        limits.check("priority", priority)
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except PermissionError:
            raise UsageError("cannot set SCHED_FIFO: permission denied", "run as root or drop -p") from None
    if cpu is None and priority is None:
        warnings.append("the measuring thread is neither pinned (-a) nor SCHED_FIFO (-p): "
                        "latencies include scheduler noise")
    return warnings
