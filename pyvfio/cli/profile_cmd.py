"""pyvfio profile list|check: the card profiles pyvfio finds, and a profile file
checked on its own (every problem as FILE:LINE: what: what to do) or against a
card bound to vfio-pci (IDs, BARs, identification, one raise/ack cycle)."""

import sys

from ..errors import EXIT_NOT_AS_EXPECTED, EXIT_OK, PyvfioError
from ..results import check_outputs, envelope, write_json
from ..vfio.device import IOMMU_CHOICES, IOMMU_HELP
from ..vocabulary import Access
from .parser import add_choice, add_json

SETTLE_S = 0.1       # how long a cleared cause must stay quiet after the unmask


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    ls = sub.add_parser("list", help="the profiles found (builtin, PYVFIO_PROFILE_PATH, ~/.config)")
    add_json(ls, "the profiles", was_flag=True)
    ck = sub.add_parser("check", help="validate a profile file; with BDF also against the card")
    ck.add_argument("file", help="the profile file (.toml)")
    ck.add_argument("bdf", nargs="?", help="a card bound to vfio-pci to check the profile against")
    add_choice(ck, "--access", Access, default=Access.MMAP.value,
               help="register access for the card check (default mmap, where the BAR allows it)")
    ck.add_argument("--iommu", choices=IOMMU_CHOICES, default="auto", help=IOMMU_HELP)


def run(args):
    return _list(args) if args.action == "list" else _check(args)


def _list(args):
    from ..profiles import available, search_path

    out = sys.stderr if check_outputs([("--json", args.json)]) else sys.stdout
    problems = []
    profiles = available(problems)
    rows = [{"name": p.name, "ids": p.ids_text(), "class": None if p.class_code is None else f"{p.class_code:06x}",
             "description": p.description, "source": p.source, "file": str(p.path), "shadows": p.shadows}
            for p in profiles.values()]
    for r in rows:
        print(f"{r['name']:<12} {' '.join(r['ids']):<32} {r['description']}", file=out)
        print(f"{'':<12} {r['file']}" + (f"  (replaces {r['shadows']})" if r["shadows"] else ""), file=out)
    if args.json:
        out.flush()
        write_json(args.json, envelope("profiles", profiles=rows, search_path=[str(d) for d, _ in search_path()],
                                       invalid=[str(e) for e in problems]))
    for e in problems:
        print(f"pyvfio: warning: skipped {e}", file=sys.stderr)
    return EXIT_NOT_AS_EXPECTED if problems else EXIT_OK


def _check(args):
    from ..profiles.format import check_text

    from ..inputs import read_text

    text = read_text(args.file, "profile")
    spec, problems = check_text(args.file, text)
    for pr in problems:
        print(pr.text(args.file))
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_NOT_AS_EXPECTED
    print(f"{args.file}: profile {spec.name} is valid ({', '.join(spec.ids_text())}; "
          f"programs {', '.join(spec.programs)})")
    if args.bdf is None:
        return EXIT_OK
    spec.source = "file"
    if _check_card(spec, args.bdf, args.access, args.iommu):
        print(f"{args.file}: holds on {args.bdf}")
        return EXIT_OK
    print(f"{args.file}: does not hold on {args.bdf}", file=sys.stderr)
    return EXIT_NOT_AS_EXPECTED


def _say(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    return ok


def _check_card(spec, bdf, access, iommu):
    """Each check as a line; True when all hold."""
    from ..cardlock import card_lock
    from ..host.pci import require
    from ..intx import DeviceIrq
    from ..profiles import card_ids
    from ..profiles.base import CardProfile, bar_kind
    from ..vfio import open_device

    bdf = require(bdf)
    print(f"{bdf}:")
    with card_lock(bdf), open_device(bdf, iommu) as dev:
        vendor, device, cls = card_ids(dev)
        good = _say(spec.accepts(vendor, device, cls),
                    f"card {vendor:04x}:{device:04x} class {cls:06x}: profile drives "
                    f"{', '.join(spec.ids_text())}"
                    + (f" of class {spec.class_code:06x}" if spec.class_code is not None else ""))
        for bar in spec.bars.values():
            for method in bar.access:
                index = bar.index[method]
                kind = bar_kind(dev, index)
                try:
                    size = dev.region(index, method).size
                except PyvfioError as exc:
                    good &= _say(False, f"BAR{index} ({bar.name}, {method}): {exc}")
                    continue
                good &= _say(kind in (None, bar.kind[method]) and size >= bar.size,
                             f"BAR{index} ({bar.name}, {method}): {'memory' if kind == 'mem' else 'I/O ports'}, "
                             f"{size:#x} bytes; profile: {bar.kind[method]}, at least {bar.size:#x}")
        if not good:
            return False
        try:
            profile = CardProfile(spec, dev, access)
        except PyvfioError as exc:
            return _say(False, str(exc))
        if spec.identify is not None:
            _say(True, f"identification {spec.identify.op.reg} matches"
                 + (" (reads byte-swapped)" if profile.swapped else ""))
        return _cycle(profile, dev, DeviceIrq)


def _cycle(profile, dev, DeviceIrq):
    """One raise/ack with INTx armed: the trigger must come, the ack must find a
    cause, and after the unmask the line must stay quiet (the cause was cleared)."""
    good = True
    intx = DeviceIrq(dev)
    intx.check_info()
    with intx:
        try:
            profile.init()
            quiet = not intx.trigger.wait(SETTLE_S)
            good &= _say(quiet, "after init the card is quiet" if quiet else
                         "after init the card still interrupts: init must leave no cause pending")
            if not quiet:
                profile.ack()
                intx.eoi()
                intx.trigger.wait(SETTLE_S)
            profile.raise_irq()
            came = intx.trigger.wait(1.0)
            good &= _say(bool(came), "raise: the interrupt came" if came else
                         "raise: no interrupt within 1 s: check the raise program and the enabled cause")
            cause = profile.ack()
            good &= _say(bool(cause), f"ack: cause {cause:#x}" if cause else
                         "ack: no cause read: check the ack program's read and mask")
            intx.eoi()
            again = intx.trigger.wait(SETTLE_S)
            left = profile.ack()
            cleared = not again and not left
            good &= _say(cleared, "the cause was cleared: no interrupt after the unmask" if cleared else
                         f"the cause was not cleared ({'the line interrupted again' if again else ''}"
                         f"{', ' if again and left else ''}{f'ack reads {left:#x}' if left else ''}): "
                         "the ack program must acknowledge what it reads")
        finally:
            profile.quiesce()
    return good
