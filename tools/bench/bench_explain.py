"""Benchmark: what --explain costs.  In one boot, on one edu card, `pyvfio run`
alternately with --explain and without (R pairs of N interrupts each, the order
swapped every pair, so a drift of the host weighs on both sides), then prints
each side's median p50 round trip and throughput, and the median [range] of the
per-pair p50 ratios (on / off).  Target (docs/explain.md): at most 1.05 at p50.

    pyvfio lab x86_64 --card edu --timeout 900 -- python tools/bench/bench_explain.py
Options: --loops N (default 5000), --reps R (default 5), --unmask ioctl|eventfd,
--bdf BDF (default: the first edu card).

Where the cost is: --sources LIST (repeatable) runs, in each rep, the run without
--explain and one run per LIST with --explain tracing only the sources in LIST
(comma-separated; `none` for the stamps and the empty tracefs instance alone,
`default` for what --explain traces), each
compared with the rep's run without, and prints the p50 added in us per interrupt.
The names: entry (irq:irq_handler_entry), sched (sched:sched_switch), signalled (the
kretprobe on vfio's handler), exit (irq:irq_handler_exit), sysexit (the unmask
syscall's sys_exit), unmasked (the kretprobe on the unmask path, traced only without
sysexit), unmask_entry (a kprobe on its entry).  It sets the developer's
environment knob PYVFIO_EXPLAIN_SOURCES (pyvfio/explain/tracefs.py) for those runs."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from pyvfio.explain.tracefs import SOURCES_ENV


def edu():
    from pyvfio.lab import in_guest
    facts = in_guest.facts() or {"bound": []}
    return next((b["bdf"] for b in facts["bound"] if b["card"] == "edu"), None)


def one(bdf, loops, unmask, explain, out, sources=None):
    cmd = [sys.executable, "-m", "pyvfio", "run", bdf, "-l", str(loops), "-q", "--unmask", unmask,
           "--json", out] + (["--explain"] if explain else [])
    env = dict(os.environ)
    env.pop(SOURCES_ENV, None)
    if sources not in (None, "default"):
        env[SOURCES_ENV] = "" if sources == "none" else sources
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"bench_explain: error: {' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[-300:]}")
    with open(out) as f:
        res = json.load(f)
    if explain and res["explain"]["missing"]:
        sys.exit(f"bench_explain: error: no breakdown: {res['explain']['missing']}")
    return res["latency"]["round_trip"]["p50_us"], res["throughput_per_s"], res["verdict"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--unmask", default="ioctl", choices=("ioctl", "eventfd"))
    ap.add_argument("--bdf")
    ap.add_argument("--sources", action="append")
    a = ap.parse_args()
    bdf = a.bdf or edu()
    if not bdf:
        sys.exit("bench_explain: error: no edu card: give --bdf")
    if a.sources:
        return eliminate(bdf, a)
    got = {False: [], True: []}
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        for rep in range(a.reps):
            for explain in ((False, True) if rep % 2 == 0 else (True, False)):
                got[explain].append(one(bdf, a.loops, a.unmask, explain, out))
    for explain in (False, True):
        p50s, tps = [g[0] for g in got[explain]], [g[1] for g in got[explain]]
        verdicts = sorted({g[2] for g in got[explain]})
        print(f"explain {'on ' if explain else 'off'}: p50 us median {statistics.median(p50s):.2f} "
              f"{[round(p, 2) for p in p50s]}  throughput/s median {statistics.median(tps):.0f}  "
              f"verdicts {verdicts}")
    ratios = [on[0] / off[0] for off, on in zip(got[False], got[True])]
    tput = [on[1] / off[1] for off, on in zip(got[False], got[True])]
    print(f"p50 on/off per pair: median {statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]"
          f"  (target <= 1.05); throughput on/off median {statistics.median(tput):.3f}  "
          f"({a.reps} pairs of {a.loops}, --unmask {a.unmask}, {bdf})")


def eliminate(bdf, a):
    sides = [None] + a.sources          # None: without --explain
    got = {s: [] for s in sides}
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        for rep in range(a.reps):
            for s in (sides if rep % 2 == 0 else sides[::-1]):
                got[s].append(one(bdf, a.loops, a.unmask, s is not None, out, s))
    off = [g[0] for g in got[None]]
    print(f"off: p50 us median {statistics.median(off):.2f} {[round(p, 2) for p in off]}"
          f"  ({a.reps} reps of {a.loops}, --unmask {a.unmask}, {bdf})")
    for s in a.sources:
        on = [g[0] for g in got[s]]
        ratios = [x / y for x, y in zip(on, off)]
        added = [x - y for x, y in zip(on, off)]
        tput = statistics.median(g[1] / o[1] for g, o in zip(got[s], got[None]))
        print(f"{s:<40} p50 on/off median {statistics.median(ratios):.3f} [{min(ratios):.3f}, "
              f"{max(ratios):.3f}]  added us/interrupt median {statistics.median(added):.2f}"
              f"  throughput on/off {tput:.3f}")


if __name__ == "__main__":
    main()
