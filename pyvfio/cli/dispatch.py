"""The `pyvfio` command's subcommands.  Each lives in its own module of this package,
with `add_arguments(parser)` and `run(args) -> int`; COMMANDS maps names to modules
so that `pyvfio --help` does not import what it does not run.  Errors are handled
by the entry point (pyvfio.cli.main)."""

import importlib

from .. import __version__
from ..errors import EXIT_OK
from .parser import Parser

COMMANDS = {
    # name: (module, one-line help)
    "list": ("pyvfio.cli.list_cmd", "list PCI devices with their INTx facts (lspci's wording)"),
    "info": ("pyvfio.cli.info_cmd", "show one device: regions, IRQs, config decode, host facts"),
    "bind": ("pyvfio.cli.bind_cmd", "bind a device (or its whole IOMMU group) to vfio-pci"),
    "unbind": ("pyvfio.cli.unbind_cmd", "give a device back to the driver it had before bind"),
    "run": ("pyvfio.cli.run_cmd", "service a card's INTx through VFIO and measure it"),
    "profile": ("pyvfio.cli.profile_cmd", "list the card profiles, check a profile file (and a card)"),
    "repro": ("pyvfio.cli.repro_cmd", "run the INTx scenario matrix (model host, lab VM or a card)"),
    "doctor": ("pyvfio.cli.doctor_cmd", "check this host (and a card) for INTx passthrough, with fixes"),
    "compare": ("pyvfio.cli.compare_cmd", "compare two result files (run or repro) cell by cell"),
    "report": ("pyvfio.cli.report_cmd", "the summary of result files, and their HTML page (--html)"),
    "fleet": ("pyvfio.cli.fleet_cmd", "run a scenario on many lab machines through labgrid (pyvfio[fleet])"),
    "lab": ("pyvfio.cli.lab_cmd", "boot a lab VM (x86_64 or ppc64le) and run a command inside it"),
}


def _parser(modules):
    parser = Parser(
        prog="pyvfio", description="Userspace VFIO INTx passthrough for legacy PCI cards.")
    parser.add_argument("--version", action="version", version=f"pyvfio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (modname, helptext) in COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        if name in modules:
            modules[name].add_arguments(p)
    return parser


def full_parser():
    """The parser with every command's options (completion, the man page, the
    vocabulary test); `lab machine` has its own (pyvfio.cli.machine_cmd)."""
    return _parser({name: importlib.import_module(mod) for name, (mod, _) in COMMANDS.items()})


def run(argv):
    """The exit status of the command `argv` names; raises PyvfioError and the rest
    for the entry point to report."""
    # `lab machine ...` has its own actions; `lab ARCH ...` cannot parse them.
    if argv[:2] == ["lab", "machine"]:
        from . import machine_cmd

        return machine_cmd.run(machine_cmd.parse(argv[2:])) or EXIT_OK
    # Import only the chosen command's module.
    modules = {}
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen in COMMANDS:
        modules[chosen] = importlib.import_module(COMMANDS[chosen][0])
    args = _parser(modules).parse_args(argv)
    return modules[args.command].run(args) or EXIT_OK
