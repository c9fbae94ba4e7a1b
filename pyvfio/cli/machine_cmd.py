"""pyvfio lab machine start|ssh|copy|list|stop: Debian lab machines over SSH
(pyvfio/lab/machine.py).  `pyvfio lab machine ...` is routed here by the cli."""

import os
import sys

from ..errors import EXIT_OK, UsageError
from ..results import check_outputs, envelope, write_json
from ..vocabulary import Controller
from .parser import Parser, add_choice, add_json


def _parser():
    p = Parser(prog="pyvfio lab machine",
               description="Debian lab machines in QEMU, reached over SSH on 127.0.0.1")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("start", help="boot a machine and wait for its sshd")
    s.add_argument("arch", metavar="ARCH", help="x86_64 or ppc64le")
    s.add_argument("--card", action="append", dest="cards", metavar="CARD",
                   help="emulated card, left on its host driver (repeat; default edu)")
    s.add_argument("--kernel", metavar="SERIES",
                   help="Debian kernel series: 6.1 or 6.12 on x86_64 (default 6.12), 6.12 on ppc64le")
    add_choice(s, "--ic", Controller, help="interrupt controller on ppc64le: xive (default) or xics")
    s.add_argument("--bridge", action="store_true",
                   help="two more edu cards behind a conventional PCI bridge (one IOMMU group, a shared line)")
    s.add_argument("--name", help="the machine's name (default ARCH-N)")
    s.add_argument("--deploy", action="store_true",
                   help="install pyvfio from this checkout (sdist + pip, as docs/usage.md 'On your lab machines' says)")
    add_json(s, "the machine", was_flag=True)
    s.add_argument("--prepare-only", action="store_true",
                   help="build what the machine needs (its image, keys; with --deploy the sdist), then stop")
    s = sub.add_parser("ssh", help="run a command on a machine (or a shell)")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--user", help="log in as USER (default root; the image also has `lab`, in group vfio)")
    s.add_argument("remote", nargs="*", metavar="-- CMD")
    s = sub.add_parser("copy", help="copy files: copy NAME LOCAL :REMOTE, or NAME :REMOTE LOCAL")
    s.add_argument("name", metavar="NAME")
    s.add_argument("src")
    s.add_argument("dst")
    s = sub.add_parser("list", help="list the running machines")
    add_json(s, "the machines", was_flag=True)
    s = sub.add_parser("stop", help="stop a machine (or --all)")
    s.add_argument("name", nargs="?", metavar="NAME")
    s.add_argument("--all", action="store_true")
    return p


def parse(argv):
    """Everything after the first `--` is the remote command, verbatim."""
    argv = list(argv)
    tail = []
    if "--" in argv:
        i = argv.index("--")
        argv, tail = argv[:i], argv[i + 1:]
    args = _parser().parse_args(argv)
    if tail and args.action != "ssh":
        raise UsageError(f"`--` is for `ssh NAME -- CMD`, not {args.action}")
    if args.action == "ssh":
        args.remote = list(args.remote) + tail
    return args


def run(args):
    from ..lab import machine

    out = sys.stderr if check_outputs([("--json", getattr(args, "json", None))]) else sys.stdout
    if args.action == "start":
        if args.prepare_only:
            _, folder, _ = machine.prepare(args.arch)
            if args.deploy:
                from .. import deploy

                deploy.build_dist()
            print(f"prepared {folder}")
            return EXIT_OK
        m = machine.start(args.arch, cards=tuple(args.cards or ("edu",)), kernel=args.kernel, ic=args.ic,
                          name=args.name, bridge=args.bridge)
        if args.deploy:
            from .. import deploy

            deploy.deploy_machine(m)
        _describe(m, out)
        if args.json:
            out.flush()
            write_json(args.json, envelope("machine", machine=m.to_json()))
        return EXIT_OK
    if args.action == "ssh":
        m = machine.get(args.name)
        remote = list(args.remote)
        argv = m.ssh_args(args.user) + (["-t"] if not remote and sys.stdin.isatty() else [])
        if remote:
            argv += ["--", " ".join(remote) if len(remote) > 1 else remote[0]]
        sys.stdout.flush()
        os.execvp(argv[0], argv)
    if args.action == "copy":
        m = machine.get(args.name)
        if args.src.startswith(":") == args.dst.startswith(":"):
            raise UsageError("copy needs one side on the machine, written :PATH",
                             "e.g. pyvfio lab machine copy NAME results.json :/tmp/")
        if args.src.startswith(":"):
            m.get_file(args.src[1:], args.dst)
        else:
            m.put(args.src, args.dst[1:])
        return EXIT_OK
    if args.action == "list":
        ms = machine.list_machines()
        if not ms:
            print("no lab machines running", file=out)
        for m in ms:
            cards = ", ".join(f"{c['card']} {c['bdf']} ({c['driver'] or 'no driver'})" for c in m.cards)
            print(f"{m.name:12} {m.arch:8} {m.release:24} ic {m.ic:6} ssh -p {m.ssh_port}  {cards}", file=out)
        if args.json:
            out.flush()
            write_json(args.json, envelope("machines", machines=[m.to_json() for m in ms]))
        return EXIT_OK
    if args.action == "stop":
        if args.all == bool(args.name):
            raise UsageError("stop takes a machine NAME or --all")
        names = machine.stop_all() if args.all else [machine.stop(args.name).name]
        print(f"stopped {', '.join(names) or 'nothing: no machines were running'}")
        return EXIT_OK
    raise UsageError(f"unknown action {args.action}")


def _describe(m, out):
    print(f"machine {m.name}: {m.arch} {m.release} (ic {m.ic}), sshd up after {m.boot_seconds} s", file=out)
    for c in m.cards:
        print(f"  {c['card']:8} {c['bdf']}  driver {c['driver'] or '(none)'}"
              f"{'  behind the PCI bridge' if c['bridge'] else ''}", file=out)
    print(f"reach it: pyvfio lab machine ssh {m.name} -- CMD", file=out)
    print(f"      or: ssh -i {m.key} -p {m.ssh_port} -o StrictHostKeyChecking=no "
          f"-o UserKnownHostsFile=/dev/null {m.user}@{m.ssh_host}", file=out)
