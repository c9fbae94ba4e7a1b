"""Benchmark: the toy guest's C engine against the KVM guest, on the same card in
one boot.  Prints, never asserts.

Cells: toy C engine with --unmask ioctl and eventfd (pyvfio's thread waits on the
trigger, services the card, unmasks); the KVM guest with the resample irqfd (the
whole interrupt in the kernel), and with an irqfd without resampler plus the
userspace unmask (ioctl, eventfd) after the guest's EOI, on the PIC and the IOAPIC.
Per cell: p50/p99 round trip (toy: raise -> EOI done, CLOCK_MONOTONIC; KVM: the
guest's TSC from raise to its loop seeing the ISR done, calibrated against
CLOCK_MONOTONIC, see pyvfio/engine/kvm_engine.py), throughput over the measured loop, and
the CPU time (user + system) of pyvfio's process per interrupt: with the KVM guest
that includes the vCPU thread, i.e. the guest's own execution, which KVM accounts to
the thread that runs it.

Run in a lab VM with an edu card bound to vfio-pci (x86_64: the guest has /dev/kvm):
    pyvfio lab x86_64 --card edu --timeout 900 -- python tools/bench/bench_kvm.py
Options: --loops N (default 10000), --bdf BDF (default: the first edu card),
--profile NAME (default edu).
"""

import argparse
import sys

from pyvfio.engine import Run, RunConfig
from pyvfio.errors import PyvfioError
from pyvfio.host import pci
from pyvfio.profiles import probe
from pyvfio.vfio import open_device

CELLS = [  # (label, RunConfig keywords)
    ("toy C engine, unmask ioctl", dict(unmask="ioctl")),
    ("toy C engine, unmask eventfd", dict(unmask="eventfd")),
    ("KVM pic, resample irqfd", dict(guest="kvm", unmask="resample")),
    ("KVM pic, irqfd + userspace ioctl", dict(guest="kvm", unmask="ioctl")),
    ("KVM pic, irqfd + userspace eventfd", dict(guest="kvm", unmask="eventfd")),
    ("KVM ioapic, resample irqfd", dict(guest="kvm", unmask="resample", irqchip="ioapic")),
    ("KVM ioapic, irqfd + userspace ioctl", dict(guest="kvm", unmask="ioctl", irqchip="ioapic")),
]


def find(vendor_device):
    for d in pci.devices():
        if (d.vendor, d.device) == vendor_device and d.driver == "vfio-pci":
            return d.bdf
    sys.exit("bench_kvm: no edu card bound to vfio-pci here (use --bdf)")


def run_cell(bdf, profile, loops, kw):
    with open_device(bdf) as dev:
        prof = probe(dev, "mmap", profile)
        return Run(dev, prof, RunConfig(loops=loops, watchdog_ms=2000, **kw)).execute().to_json()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=10000)
    ap.add_argument("--bdf")
    ap.add_argument("--profile", default="edu")
    args = ap.parse_args()
    bdf = args.bdf or find((0x1234, 0x11E8))
    print(f"bench_kvm: {args.loops} interrupts per cell on {bdf} ({args.profile})")
    print(f"{'cell':38} {'verdict':>10} {'p50 us':>8} {'p99 us':>8} {'per s':>7} "
          f"{'cpu us/irq':>10} {'unmask calls':>12}")
    for label, kw in CELLS:
        try:
            r = run_cell(bdf, args.profile, args.loops, kw)
        except PyvfioError as exc:
            print(f"{label:38} error: {exc}")
            continue
        rt = r["latency"]["round_trip"]
        k = r.get("kvm")
        calls = k["userspace_unmask_calls"] if k else r["counts"]["delivered"]
        print(f"{label:38} {r['verdict']:>10} {rt.get('p50_us', 0):8.1f} {rt.get('p99_us', 0):8.1f} "
              f"{r['throughput_per_s'] or 0:7.0f} {r['cpu']['cpu_us_per_interrupt'] or 0:10.1f} "
              f"{calls:12d}")
    print("toy: unmask calls = one SET_IRQS or eventfd write per interrupt from pyvfio's thread; "
          "KVM: the vCPU's exits to userspace for the unmask (0 with the resampler)")


if __name__ == "__main__":
    main()
