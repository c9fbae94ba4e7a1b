"""The tracefs `trace` file's text, parsed: one Event per line, the rest skipped.

The text, not trace_pipe_raw's binary pages: it needs no event format decoding,
and with trace_clock `mono` its times are CLOCK_MONOTONIC, the engine's clock.
The text prints them in microseconds (sec.usec), so an event's time here is the
middle of its microsecond (+500 ns): off by at most 0.5 us either way.  A counter
clock (x86-tsc: explain/kvm.py) prints a plain count, kept as it is."""

import re
from typing import NamedTuple

# "  python3-1234  [000] d.h2.  123.456789: irq_handler_entry: irq=11 name=vfio-intx(...)"
# (the irq-info flags and the record-tgid column are optional: options can hide them).
# One pass over the whole text (a batch is thousands of lines): the task's name is
# not kept, only its pid.
_LINE = re.compile(r"^[^\n]*?-(\d+)[ \t]+(?:\([ \t]*[-\d]+\)[ \t]+)?\[(\d+)\][ \t]+(?:\S+[ \t]+)?"
                   r"(\d+)(?:\.(\d{6}))?: (\w+)(?:: ?| (?=-> ))([^\n]*)$", re.M)
_FIELD = re.compile(r"(\w+)=(\S*)")


class Event(NamedTuple):
    ts: int            # CLOCK_MONOTONIC ns (the middle of the printed microsecond)
    cpu: int
    pid: int           # the task the event happened in
    name: str          # irq_handler_entry, sched_switch, ... or our kprobe's name
    body: str          # the event's own text (key=value pairs for a tracepoint)

    @property
    def fields(self):
        """key=value pairs of the event's text (strings)."""
        return dict(_FIELD.findall(self.body))


def parse(text):
    """Events of a `trace` file's text, in time order; comment and unknown lines
    (a lost-events marker, a truncated line) are skipped."""
    out = [Event(int(sec) * 1_000_000_000 + int(usec) * 1000 + 500 if usec else int(sec),
                 int(cpu), int(pid), name, body)
           for pid, cpu, sec, usec, name, body in _LINE.findall(text)]
    out.sort(key=lambda e: e.ts)
    return out


def num(fields, key, default=None):
    """An integer field (irq=11, next_pid=42), or `default` when absent or not a number."""
    try:
        return int(fields[key])
    except (KeyError, ValueError):
        return default
