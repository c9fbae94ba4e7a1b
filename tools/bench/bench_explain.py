"""Benchmark: what --explain costs.  In one boot, on one edu card, `pyvfio run`
alternately with --explain and without (R pairs of N interrupts each, the order
swapped every pair, so a drift of the host weighs on both sides), then prints
each side's median p50 round trip and throughput, and the median [range] of the
per-pair p50 ratios (on / off).  Target (docs/explain.md): at most 1.05 at p50.

    pyvfio lab x86_64 --card edu --timeout 900 -- python tools/bench/bench_explain.py
Options: --loops N (default 5000), --reps R (default 5), --unmask ioctl|eventfd,
--bdf BDF (default: the first edu card)."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def edu():
    from pyvfio.lab import in_guest
    facts = in_guest.facts() or {"bound": []}
    return next((b["bdf"] for b in facts["bound"] if b["card"] == "edu"), None)


def one(bdf, loops, unmask, explain, out):
    cmd = [sys.executable, "-m", "pyvfio", "run", bdf, "-l", str(loops), "-q", "--unmask", unmask,
           "--json", out] + (["--explain"] if explain else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
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
    a = ap.parse_args()
    bdf = a.bdf or edu()
    if not bdf:
        sys.exit("bench_explain: error: no edu card: give --bdf")
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


if __name__ == "__main__":
    main()
