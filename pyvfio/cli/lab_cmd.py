"""pyvfio lab ARCH [options] -- COMMAND...: boot a lab VM and run COMMAND inside it.

The guest runs COMMAND as root in this checkout with pyvfio importable, with the
requested cards bound to vfio-pci; COMMAND's output streams here and its exit
status is ours.  The first run downloads and caches Debian packages (see
pyvfio/lab/README.md)."""

import sys

from .. import limits
from ..errors import EXIT_OK, UsageError
from ..lab import config as labconfig
from ..vocabulary import Controller, Policy
from .parser import add_choice, add_nointxmask, add_policy


def add_arguments(p):
    p.add_argument("arch", metavar="ARCH", help="x86_64 or ppc64le")
    p.add_argument("--kernel", metavar="SERIES", help="Debian kernel series: 6.1 or 6.12 on x86_64 (default 6.12), "
                                    "6.12 on ppc64le")
    p.add_argument("--card", action="append", dest="cards", metavar="CARD",
                   help="emulated card to bind to vfio-pci: one of pyvfio's (" + ", ".join(labconfig.CARDS) + "), "
                        "or any PCI device QEMU models as qemu:DEVICE[,PROP=V...] (e.g. qemu:sdhci-pci) "
                        "(repeat for several; default edu)")
    p.add_argument("--host-card", action="append", dest="host_cards", metavar="CARD",
                   help="emulated card left on its guest driver (e1000), on the INTx line of the "
                        "--card in the same position (x86_64; its interface starts down)")
    add_choice(p, "--ic", Controller, help="interrupt controller on ppc64le: xive (default) or xics")
    add_nointxmask(p, default=0,
                   help="load vfio-pci with nointxmask=0 (DisINTx masking) or 1 (controller masking)")
    add_policy(p, default=Policy.KERNEL.value,
               help="masking policy: kernel (as shipped, the default) or lazy/unlazy, which loads "
                    "the policy module (tools/policy) for in-guest code to apply")
    p.add_argument("--vfio", default="shipped", metavar="VARIANT",
                   help="vfio-pci: shipped (the distribution's), prefix (rebuilt from linux-source with "
                        "8b9f128947dd reverted), patch:FILE or prefix+patch:FILE (rebuilt with FILE, a "
                        "diff against drivers/vfio/, applied); see pyvfio/lab/vfio_build.py")
    p.add_argument("--iommufd", action="store_true",
                   help="x86_64 6.12: load iommufd.ko and a vfio with its device cdev, rebuilt from "
                        "linux-source (Debian builds neither), beside the container; see "
                        "pyvfio/lab/vfio_build.py")
    p.add_argument("--timeout", type=limits.arg("timeout_s"), default=300.0, metavar="S",
                   help="kill the VM after S seconds (default 300)")
    p.add_argument("--prepare-only", action="store_true",
                   help="download and build what the VM needs, then stop")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show the QEMU command line and the whole guest console")
    p.add_argument("guest_command", nargs="*", metavar="-- COMMAND", help="the command to run in the guest")
    _split_at_double_dash(p)


def _split_at_double_dash(p):
    """Everything after the first `--` is COMMAND, verbatim.  argparse alone cannot
    do this for `ARCH [options] -- COMMAND` (a '*' positional is used up by ARCH)."""
    parse = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        tail = []
        if "--" in args:
            i = args.index("--")
            args, tail = args[:i], args[i + 1:]
        ns, extras = parse(args, namespace)
        ns.guest_command = list(ns.guest_command or []) + tail
        return ns, extras

    p.parse_known_args = parse_known_args


def run(args):
    from ..lab import session

    command = list(args.guest_command)
    cfg = labconfig.LabConfig(args.arch, kernel=args.kernel, cards=tuple(args.cards or ()),
                              host_cards=tuple(args.host_cards or ()), ic=args.ic,
                              nointxmask=args.nointxmask, policy=args.policy, vfio=args.vfio, iommufd=args.iommufd,
                              timeout=args.timeout, command=tuple(command), verbose=args.verbose)
    if args.prepare_only:
        cfg.qemu_binary()
        session.prepare(cfg)
        return EXIT_OK
    if not command:
        raise UsageError("no command to run in the guest",
                         "give one after --, e.g. pyvfio lab x86_64 -- python -c 'import pyvfio'")
    try:
        status, _output = session.run(cfg)
    except session.LabError as exc:
        if exc.detail:
            sys.stderr.write(f"--- last lines of the guest console / tool output ---\n{exc.detail}\n---\n")
        raise
    return status
