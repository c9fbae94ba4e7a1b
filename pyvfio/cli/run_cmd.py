"""pyvfio run BDF: service a card's INTx (or MSI, MSI-X) through VFIO and measure it
(cyclictest-style)."""

import json
import os
import sys
import time

from .. import limits, verdict
from ..host import interrupts
from ..engine import HISTOGRAMS, Run, RunConfig, pin_and_prioritise
from ..explain import Explainer, report_lines
from ..errors import (EXIT_DMA, EXIT_INTERRUPTED, EXIT_NOT_AS_EXPECTED, EXIT_OK, EXIT_PROFILE, EXIT_REMOVED,
                      EXIT_STALL, EXIT_THRESHOLD, EXIT_USAGE, UsageError)
from ..report.formats import FORMATS
from ..results import STDOUT, axis, check_outputs, envelope, write_outputs
from ..vfio.device import IOMMU_CHOICES, IOMMU_HELP
from ..vocabulary import Access, Engine, Guest, Irq, Irqchip, Policy, Source, Unmask
from .parser import add_choice, add_json, add_policy


def add_arguments(p):
    p.add_argument("bdf", help="PCI address of a card bound to vfio-pci (DDDD:BB:DD.F)")
    p.add_argument("-l", "--loops", type=limits.arg("loops"), default=10000, metavar="N",
                   help="interrupts to raise, or with --source external to service (default 10000)")
    p.add_argument("-i", "--interval", type=limits.arg("interval_us"), default=0, metavar="US",
                   help="time between raises in microseconds (default 0: closed loop)")
    p.add_argument("-D", "--duration", type=limits.arg("duration_s"), default=0, metavar="S",
                   help="run for S seconds instead of a loop count")
    p.add_argument("-a", "--affinity", type=limits.arg("affinity"), metavar="CPU",
                   help="pin the measuring thread to CPU")
    p.add_argument("-p", "--priority", type=limits.arg("priority"), metavar="PRIO", help="SCHED_FIFO priority (1-99)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live status line, summary only")
    add_json(p, "the full result")
    p.add_argument("--format", choices=FORMATS,
                   help="print the result as KTAP, JUnit XML, KCIDB v5.3 JSON or lava-test-case lines "
                        "instead of the summary (docs/formats.md); ktap exits as kselftest: 0, 1 fail, 4 skip")
    p.add_argument("--hgrm", metavar="FILE", help="write the round-trip histogram (with --source external the service "
                        "one) in HdrHistogram's .hgrm format")
    p.add_argument("--profile", metavar="NAME|FILE.toml",
                   help="card profile by name (pyvfio profile list) or file (default: probe the card's IDs)")
    add_choice(p, "--source", Source, default=Source.RAISE.value,
                   help="raise: pyvfio raises each interrupt on the card (default); external: "
                        "interrupts come from outside (bytes into a serial port), pyvfio only "
                        "services them with the profile's init_external/ack_external programs; "
                        "dma: the card's DMA engine moves bytes between pages mapped for it and "
                        "interrupts when done (the profile's raise_dma; checked byte for byte)")
    add_choice(p, "--irq", Irq, default=Irq.INTX.value,
                   help="the interrupt to drive: the INTx line (default), or vector 0 of the "
                        "card's MSI or MSI-X (an edge: no unmask step)")
    add_choice(p, "--unmask", Unmask,
                   help="unmask per interrupt by SET_IRQS ioctl or by the unmask eventfd (default "
                        "ioctl); --guest kvm: resample (KVM's resample irqfd, the default), ioctl or "
                        "eventfd (an irqfd without resampler, pyvfio unmasks after the guest's EOI), "
                        "none (a negative control: nobody unmasks)")
    add_choice(p, "--guest", Guest, default=Guest.TOY.value,
                   help="toy: pyvfio's userspace guest (default); kvm: a real vCPU with KVM's "
                        "in-kernel irqchip (x86_64, /dev/kvm)")
    add_choice(p, "--irqchip", Irqchip, default=Irqchip.PIC.value,
                   help="--guest kvm: the interrupt controller the guest programs (default pic)")
    p.add_argument("--eoi-first", action="store_true",
                   help="--guest kvm: the guest EOIs before it acks the card (a negative control: "
                        "each interrupt is re-triggered once and counted spurious)")
    add_choice(p, "--access", Access, default=Access.MMAP.value,
                   help="register access by mmap or pread/pwrite (default mmap)")
    add_choice(p, "--engine", Engine, default=Engine.C.value, help="hot loop in C (default) or Python")
    p.add_argument("--watchdog", type=limits.arg("watchdog_ms"), default=1000, metavar="MS",
                   help="a raise with no trigger within MS milliseconds is a stall (default 1000)")
    p.add_argument("--recover", action="store_true",
                   help="after a stall, service the card by polling and disable/re-enable INTx")
    p.add_argument("--rearm-each", action="store_true",
                   help="disable and re-enable INTx after every interrupt instead of unmasking")
    add_policy(p, help="lazy or unlazy: switch the host IRQ's masking policy through the pyvfio_policy "
                       "module after every INTx enable; kernel (the default): leave the kernel's")
    p.add_argument("--threshold", type=limits.arg("threshold_us"), metavar="US",
                   help=f"exit {EXIT_THRESHOLD} when the round-trip p99 (external: the service p99) exceeds US")
    p.add_argument("--explain", action="store_true",
                   help="break each round trip down into segments (raise, hardirq, wakeup, return, "
                        "handler, unmask, reenable) from the host kernel's tracing, and analyse the worst "
                        "one and each --threshold breach (root; docs/explain.md)")
    p.add_argument("--iommu", choices=IOMMU_CHOICES, default="auto", help=IOMMU_HELP)


def _status_line(run):
    c = run.counts
    # the round trip, or from outside the service time (no raise to time from)
    h = run.hists[1] if run.external else run.hists[2]
    p50 = h.percentile(50)
    extra = f"  items {c.items}" if run.external else ""
    sys.stderr.write(f"\rdelivered {c.delivered}{extra}  stalled {len(run.stalls)}  "
                     f"p50 {p50 / 1e3 if p50 else 0:.1f} us  max {h.c.max / 1e3:.1f} us   ")
    sys.stderr.flush()


def _ready(run):
    if run.external:
        print("pyvfio: armed: waiting for interrupts from outside (-l N, -D S or Ctrl-C ends "
              "the run)", file=sys.stderr, flush=True)


def _host_facts(bdf):
    from ..host import interrupts, system
    facts = system.probe().to_json()
    line = interrupts.intx_line(bdf)
    facts["intx_line"] = line.to_json() if line else None
    return facts


def summary_lines(result):
    c, lat = result["counts"], result["latency"]
    source = result.get("source", "raise")
    out = [f"verdict: {result['verdict']}" + ("  (interrupted)" if result["interrupted"] else "")]
    if source == "external":
        x = result["external"]
        per = x["items_per_interrupt"]
        out.append(f"from outside: delivered {c['delivered']}  stalled {c['stalled']}  "
                   f"recovered {c['recovered']}  polled {c['polled']}  spurious "
                   f"{c['spurious_triggers']}  quiet watchdog periods {x['quiet_watchdog_periods']}")
        avg = f"{per['avg']:.2f}" if per["avg"] is not None else "-"
        out.append(f"items drained {x['items']}  per interrupt: avg {avg}  max {per['max']}"
                   + (f"  ({x['items_polled']} drained by polling)" if x["items_polled"] else ""))
    else:
        out.append(f"raised {c['raised']}  delivered {c['delivered']}  stalled {c['stalled']}  "
                   f"recovered {c['recovered']}  lost {c['lost']}  spurious {c['spurious_triggers']}")
    for name in (n for n in HISTOGRAMS[source] if n in lat):
        s = lat[name]
        if s.get("count"):
            out.append(f"{name:>10} us: min {s['min_us']:.2f}  avg {s['avg_us']:.2f}  p50 {s['p50_us']:.2f}  "
                       f"p99 {s['p99_us']:.2f}  p99.9 {s['p99.9_us']:.2f}  max {s['max_us']:.2f}")
    if result.get("throughput_per_s"):
        out.append(f"throughput {result['throughput_per_s']:.0f}/s")
    d = result.get("dma")
    if d is not None and d["check"] == "copy":
        where = f"IOVA {d['src_iova']:#x} -> card -> IOVA {d['dst_iova']:#x} through {d['iommu']}"
        out.append(f"DMA: {d['bytes']} bytes {where}: " + (
            "arrived byte for byte" if d["arrived"] else
            f"did NOT arrive (first difference at byte {d['first_difference']})"))
    elif d is not None:
        out.append(f"DMA: {d['bytes']} bytes sent from IOVA {d['src_iova']:#x} by the descriptor at "
                   f"IOVA {d['dst_iova']:#x} through {d['iommu']}: " + (
                       "its status written back" if d["arrived"] else
                       f"status NOT written back (descriptor byte {d['first_difference']})"))
    k = result.get("kvm")
    if k:
        out.append(f"kvm guest: {k['irqchip']} GSI {k['gsi']} ({k['trigger']}), unmask {k['unmask']}: "
                   f"userspace unmask calls {k['userspace_unmask_calls']}, exits {k['exits']}, "
                   f"TSC {k['tsc_hz'] / 1e9:.3f} GHz (calibrated against CLOCK_MONOTONIC)")
    hi = result.get("host_interrupts")
    if hi is not None:
        irq = axis(result, "irq")
        name = interrupts.vfio_intx_name(result["bdf"]) if irq == "intx" else \
            interrupts.vfio_msi_name(result["bdf"], irq)
        out.append(f"host interrupts (/proc/interrupts {name}) {hi}  "
                   f"per delivered {result['host_per_delivered'] or 0:.3f}")
    return out


def run(args):
    from ..profiles import probe
    from ..vfio import open_device

    unmask = args.unmask or ("resample" if args.guest == "kvm" else "ioctl")
    config = RunConfig(loops=args.loops, interval_us=args.interval, duration_s=args.duration,
                       unmask=unmask, access=args.access, engine=args.engine,
                       guest=args.guest, irqchip=args.irqchip, eoi_first=args.eoi_first,
                       watchdog_ms=args.watchdog, recover=args.recover, rearm_each=args.rearm_each,
                       source=args.source, irq=args.irq)
    config.check()
    if args.policy == Policy.KERNEL:
        args.policy = None    # nothing to switch
    if args.policy and args.irq != "intx":
        raise UsageError(f"--policy sets the INTx line's masking policy; --irq {args.irq} has no line",
                         "drop --policy, or use --irq intx")
    # before the card is touched, not after the run
    profile_file = [("--profile", args.profile)] if args.profile and os.path.isfile(args.profile) else []
    to_stderr = check_outputs([("--json", args.json), ("--hgrm", args.hgrm),
                               ("--format", STDOUT if args.format else None)], profile_file)
    warnings = pin_and_prioritise(args.affinity, args.priority)
    from ..cardlock import card_lock
    from ..host.pci import require

    bdf = require(args.bdf)
    with card_lock(bdf), open_device(bdf, iommu=args.iommu) as dev:
        profile = probe(dev, args.access, args.profile)
        set_policy = None
        if args.policy:
            from ..host import policy_module
            policy_module.ensure_module()  # before the run, not at the first enable
            set_policy = lambda: policy_module.set_policy(dev.bdf, args.policy)  # noqa: E731

        def after_enable(run):
            # Warn once INTx is armed (the kernel's refusals, EBUSY among them, come
            # before it), and re-apply the policy after every request_irq.
            while warnings:
                print(f"pyvfio: warning: {warnings.pop(0)}", file=sys.stderr)
            if set_policy:
                set_policy()

        live = not args.quiet and sys.stderr.isatty()  # a carriage-return line only on a terminal
        explain = Explainer(args.threshold) if args.explain else None
        r = Run(dev, profile, config, after_enable=after_enable, status=_status_line if live else None,
                ready=_ready, explain=explain)
        started = time.time()
        from ..vfio.request import DeviceRequest

        # The kernel asking for the card back ends the run as a signal does (teardown,
        # partial results), and the device is closed so that its removal can finish.
        with DeviceRequest(dev) as request:
            r.execute()
        if live:
            sys.stderr.write("\n")
        result = envelope("run", bdf=dev.bdf, host=_host_facts(dev.bdf), card=profile.describe(),
                          modes={**config.__dict__, "policy": args.policy or Policy.KERNEL.value,
                                 "iommu": dev.iommu},
                          started_unix=started, **r.to_json(), device_request=request.requested)
    fmt_exit = None
    if args.format:   # a format kernel CI reads, on stdout instead of the summary
        from ..report import cells, formats
        fmt_exit = formats.emit(formats.from_report(cells.check(result), bdf), args.format)
    else:
        # the breakdown after the summary, unless -q (summary only)
        more = [] if args.quiet else report_lines(result.get("explain"))
        for line in summary_lines(result) + more:  # said first: a failed write below loses nothing
            print(line, file=sys.stderr if to_stderr else sys.stdout)
    sys.stdout.flush()
    write_outputs([(args.json, lambda: json.dumps(result, indent=2) + "\n", "write results to"),
                   (args.hgrm, lambda: r.hists[1 if r.external else 2].hgrm(), "write the histogram to")])
    code = _exit(args, r, result, request.requested, bdf)
    if args.format == "ktap" and code not in (EXIT_REMOVED, EXIT_INTERRUPTED):
        # kselftest's: a stall, DMA or threshold fails
        return fmt_exit or (EXIT_NOT_AS_EXPECTED if code else EXIT_OK)
    return code


def _exit(args, r, result, requested, bdf):
    if requested:
        print(f"pyvfio: error: the kernel asked for {bdf} back mid-run (hot-unplug or a driver unbind): "
              f"the run stopped{', partial results in ' + args.json if args.json else ''}", file=sys.stderr)
        return EXIT_REMOVED
    if r.interrupted:
        print(f"pyvfio: interrupted{': partial results in ' + args.json if args.json else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    judged = verdict.of_run(r)
    if judged.error == verdict.NOTHING:
        print(f"pyvfio: error: {judged.error}: give a longer -D (setting up the card takes part of it) "
              "or -l N", file=sys.stderr)
        return EXIT_USAGE
    if judged.cls == "stall":  # a stall not every time recovered
        return EXIT_STALL
    if verdict.failure(judged):  # the profile or the card, not the kernel
        print(f"pyvfio: error: {judged.text}: see pyvfio/profiles/README.md (what each verdict "
              "means when the profile is wrong)", file=sys.stderr)
        return EXIT_PROFILE
    if r.dma is not None and not r.dma.arrived:
        return EXIT_DMA
    p99 = result["latency"]["service" if r.external else "round_trip"].get("p99_us")
    if args.threshold is not None and p99 is not None and p99 > args.threshold:
        print(f"p99 {p99:.2f} us exceeds the threshold {args.threshold} us", file=sys.stderr)
        return EXIT_THRESHOLD
    return EXIT_OK
