"""The bounds of every number a user gives pyvfio: one table, read by the command
line's argument types, RunConfig.check and the scenario checker, so a value is
refused the same way wherever it is written."""

import argparse
import math
from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Limit:
    what: str           # "loop count": how a message names the value
    kind: type          # int or float (a float option takes whole numbers too)
    low: float
    high: float
    unit: str = ""
    low_open: bool = False   # low itself refused (a threshold must be positive)

    def problem(self, value):
        """None when `value` is a number in range; else what to use instead."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (self.kind is int and not isinstance(value, int)):
            return f"use a {'whole ' if self.kind is int else ''}number"
        if isinstance(value, float) and not math.isfinite(value):
            return "use a finite number"
        if value < self.low or value > self.high or (self.low_open and value == self.low):
            low = f"more than {_num(self.low)}" if self.low_open else _num(self.low)
            return f"use {low} to {_num(self.high)}{' ' + self.unit if self.unit else ''}"
        return None

    def message(self, value):
        unit = f" {self.unit}" if self.unit and self.unit != "interrupts" else ""
        return f"{self.what} {value}{unit} is out of range"


def _num(x):
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# 8192 is the kernel's largest CONFIG_NR_CPUS; SCHED_FIFO takes 1 to 99.
LIMITS = {
    "loops": Limit("loop count", int, 1, 10**9, "interrupts"),
    "interval_us": Limit("interval", int, 0, 10_000_000, "us"),
    "duration_s": Limit("duration", float, 0, 366 * 86400, "s"),
    "affinity": Limit("CPU", int, 0, 8191),
    "priority": Limit("SCHED_FIFO priority", int, 1, 99),
    "watchdog_ms": Limit("watchdog", int, 0, 600_000, "ms"),
    "threshold_us": Limit("threshold", float, 0, 1e9, "us", low_open=True),
    "timeout_s": Limit("timeout", float, 0, 7 * 86400, "s", low_open=True),
}


def problem(name, value):
    """None when `value` is right for LIMITS[name]; else what to use."""
    return LIMITS[name].problem(value)


def check(name, value):
    """UsageError in one line when `value` is out of LIMITS[name]."""
    why = LIMITS[name].problem(value)
    if why:
        raise UsageError(LIMITS[name].message(value), why)


def arg(name):
    """An argparse `type=` for LIMITS[name]: the text parsed (no NaN, no inf) and
    bounded, or argparse's one-line usage error."""
    limit = LIMITS[name]

    def parse(text):
        try:
            value = int(text, 10) if limit.kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'whole ' if limit.kind is int else ''}number") from None
        why = limit.problem(value)
        if why:
            raise argparse.ArgumentTypeError(f"{limit.message(text)}: {why}")
        return value

    parse.__name__ = name   # argparse names the type in its messages
    return parse
