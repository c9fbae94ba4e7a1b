"""LAVA: one `lava-test-case` line per cell, and one per figure with its
measurement, for a test definition's run steps to execute (docs/lava/).

    lava-test-case ppc64le_6_12_xive.intx.non-2_3.xive.lazy.ioctl --result fail
    lava-test-case ppc64le_6_12_xive.intx.edu.xive.na.ioctl.p99 --result pass --measurement 503.807 --units us

LAVA has pass, fail, skip and unknown: a cell that could not run is a fail.
A figure's line carries its cell's result.  A cell run with --explain has one
more per segment, its p50: `NAME.segment.handler ... --measurement 12.031 --units us`.
"""

import re

RESULT = {"pass": "pass", "fail": "fail", "error": "fail", "skip": "skip"}
UNITS = (("p50_us", "p50", "us"), ("p99_us", "p99", "us"), ("max_us", "max", "us"),
         ("throughput_per_s", "throughput", "irq_per_s"))


def _word(text):
    """A test case name LAVA takes: one word of [-_.A-Za-z0-9]."""
    return re.sub(r"[^-_.A-Za-z0-9]+", "_", str(text)).strip("_") or "case"


def lines(results):
    out = []
    many = len(results.machines) > 1
    for m in results.machines:
        prefix = _word(m.name) + "." if many else ""
        if m.status:   # a machine that gave no cells: failed (an error) or skipped (none in the file)
            out.append(f"lava-test-case {prefix}machine --result {RESULT[m.status]}")
        for c in m.cases:
            name = prefix + _word(c.name)
            out.append(f"lava-test-case {name} --result {RESULT[c.status]}")
            for field, label, unit in UNITS:
                v = c.figures.get(field)
                if v is not None:
                    out.append(f"lava-test-case {name}.{label} --result {RESULT[c.status]} "
                               f"--measurement {v:.3f} --units {unit}")
            for seg, v in c.segments.items():
                out.append(f"lava-test-case {name}.segment.{_word(seg)} --result {RESULT[c.status]} "
                           f"--measurement {v:.3f} --units us")
    return out


def render(results):
    return "\n".join(lines(results)) + "\n"
