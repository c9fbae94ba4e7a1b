"""Benchmark: the C engine, the Python engine and the bare C reference (bare_intx.c)
on the same card, per unmask mode and access method, in one VM boot; prints p50
round trips and the ratios to the bare reference, then the C engine's peak RSS
from 10^3 to 10^6 interrupts (memory must stay flat: histograms are fixed-size).

Run inside a lab VM (or on a lab machine) with an edu card bound to vfio-pci:
    pyvfio lab x86_64 --card edu -- python tools/bench/bench_engines.py
Options: --loops N (default 20000), --bdf BDF (default: the first edu card).
The ppc64le guest has no compiler: cross-build the reference on the host into the
checkout (which the guest shares) and name it in PYVFIO_BARE_INTX:
    powerpc64le-linux-gnu-gcc -O2 -static -o .cache/bench/bare_intx tools/bench/bare_intx.c
    pyvfio lab ppc64le --card edu -- sh -c \
        "PYVFIO_BARE_INTX=$PWD/.cache/bench/bare_intx python tools/bench/bench_engines.py"
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys

from pyvfio.engine import Run, RunConfig
from pyvfio.host import pci
from pyvfio.profiles import probe
from pyvfio.vfio import open_device
from pyvfio.vfio.device import iommu_group_of

HERE = os.path.dirname(os.path.abspath(__file__))


def find_edu():
    for d in pci.devices():
        if (d.vendor, d.device) == (0x1234, 0x11E8) and d.driver == "vfio-pci":
            return d.bdf
    sys.exit("bench_engines: no edu card bound to vfio-pci here")


def bare_binary():
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), "bare_intx")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        prebuilt = os.environ.get("PYVFIO_BARE_INTX")
        if prebuilt:
            return prebuilt
        sys.exit("bench_engines: no C compiler here; set PYVFIO_BARE_INTX to a built bare_intx")
    subprocess.run([cc, "-O2", "-o", out, os.path.join(HERE, "bare_intx.c")], check=True)
    return out


def run_engine(bdf, engine, unmask, access, loops, rearm_each=False):
    with open_device(bdf) as dev:
        profile = probe(dev, access, "edu")
        r = Run(dev, profile, RunConfig(loops=loops, unmask=unmask, access=access, engine=engine,
                                        watchdog_ms=1000, rearm_each=rearm_each)).execute()
        swapped = profile.swapped
    assert r.counts.delivered == loops, (engine, unmask, access, r.verdict)
    return r.hists[2].percentile(50), swapped


def run_bare(binary, bdf, unmask, access, loops, swapped):
    _, group = iommu_group_of(bdf)
    cmd = [binary, bdf, str(group), str(loops), unmask, access] + (["swap"] if swapped else [])
    p50, _avg, _n = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
    return int(p50)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", type=int, default=20000)
    ap.add_argument("--bdf")
    args = ap.parse_args()
    bdf = args.bdf or find_edu()
    binary = bare_binary()
    print(f"edu {bdf}, {args.loops} interrupts per cell, p50 round trip (raise -> EOI done)")
    print(f"{'unmask':8} {'access':6} {'bare C us':>10} {'C engine us':>12} {'ratio':>6} {'Python us':>10} {'ratio':>6}")
    for unmask in ("ioctl", "eventfd"):
        for access in ("mmap", "rw"):
            c, swapped = run_engine(bdf, "c", unmask, access, args.loops)
            bare = run_bare(binary, bdf, unmask, access, args.loops, swapped)
            py, _ = run_engine(bdf, "python", unmask, access, args.loops)
            print(f"{unmask:8} {access:6} {bare / 1e3:10.2f} {c / 1e3:12.2f} {c / bare:6.2f} "
                  f"{py / 1e3:10.2f} {py / bare:6.2f}", flush=True)
    print("the --rearm-each workaround (disable + re-enable INTx per interrupt), C engine, mmap:")
    for unmask in ("ioctl", "eventfd"):
        base, _ = run_engine(bdf, "c", unmask, "mmap", args.loops)
        rearm, _ = run_engine(bdf, "c", unmask, "mmap", max(1000, args.loops // 10), rearm_each=True)
        print(f"  {unmask:8} unmask {base / 1e3:8.2f} us   rearm-each {rearm / 1e3:8.2f} us   "
              f"x{rearm / base:.1f}", flush=True)
    print("C engine memory (peak RSS after each run, KiB):")
    for n in (10**3, 10**4, 10**5, 10**6):
        run_engine(bdf, "c", "eventfd", "mmap", n)
        print(f"  {n:>8} interrupts: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)


if __name__ == "__main__":
    main()
