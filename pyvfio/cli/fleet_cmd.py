"""pyvfio fleet run | status | release: one scenario on many lab machines, through a
labgrid coordinator (pip install 'pyvfio[fleet]'; pyvfio/fleet/README.md).

    pyvfio fleet run --coordinator 127.0.0.1:20408 --tag lab=pyvfio --scenario seed --out f/
    pyvfio fleet status --coordinator ... [--out f/]
    pyvfio fleet release --coordinator ... [--place P]

Exit (run; pyvfio.errors.EXITS): 0 every cell everywhere as expected, 1 one was not,
4 a place another holds, 9 a machine failed; 130 interrupted (places released all
the same)."""

from .. import limits
from ..errors import UsageError
from .parser import add_json, renamed


def add_arguments(p):
    sub = p.add_subparsers(dest="fleet_command", metavar="run|status|release")
    sub.required = True
    r = sub.add_parser("run", help="run a scenario on every place, in parallel")
    s = sub.add_parser("status", help="places, who holds them, and the last run's results")
    rel = sub.add_parser("release", help="release what a killed run left held by us")
    for x in (r, s, rel):
        x.add_argument("--coordinator", metavar="HOST:PORT", help="labgrid coordinator (default $LG_COORDINATOR)")
    for x in (r, rel):
        x.add_argument("--place", action="append", metavar="P", help="a place by name (repeatable)")
    r.add_argument("--tag", action="append", metavar="KEY=VALUE",
                   help="every place whose tags have all of these (repeatable)")
    r.add_argument("--scenario", required=True, metavar="FILE", help="a scenario file or a shipped name (seed)")
    r.add_argument("--out", required=True, metavar="DIR", help="fleet.json and one folder per place")
    r.add_argument("--baseline", metavar="FILE", help="a result to compare every machine with")
    r.add_argument("--timeout", type=limits.arg("timeout_s"), default=1800, metavar="S",
                   help="seconds for the scenario on each machine (default 1800)")
    r.add_argument("--acquire-wait", type=limits.arg("timeout_s"), default=60, metavar="S",
                   help="seconds to wait in labgrid's queue for a place held by another (default 60)")
    r.add_argument("--connect-timeout", type=limits.arg("timeout_s"), default=30, metavar="S",
                   help="seconds for a machine's SSH to answer (default 30)")
    r.add_argument("--place-card", metavar="NAME", dest="card",
                   help="which of a place's cards (name, profile or kind); default: the scenario's [lab] card")
    renamed(r, "--card", "--place-card", dest="card")
    r.add_argument("--model", action="store_true",
                   help="run the scenario on each machine's model host (no card touched)")
    r.add_argument("--remote-pyvfio", metavar="PATH",
                   help="use the pyvfio installed at PATH on the machines instead of installing it")
    r.add_argument("--key", metavar="FILE", help="SSH private key for the machines")
    r.add_argument("--workdir", metavar="DIR", help="folder on the machines (default /tmp/pyvfio-fleet)")
    s.add_argument("--out", metavar="DIR", help="a fleet run's folder: show its results per place")
    add_json(s, "the places and results", was_flag=True)


def run(args):
    try:
        import labgrid  # noqa: F401
    except ImportError:
        raise UsageError("pyvfio fleet needs labgrid", "pip install 'pyvfio[fleet]'") from None
    from ..fleet import run as fleet
    if args.fleet_command == "run" and args.card is None and not args.model:
        from ..repro import named_scenario
        from ..repro.scenario import load
        args.card = load(str(named_scenario(args.scenario))).lab_card
    return {"run": fleet.run, "status": fleet.status, "release": fleet.release}[args.fleet_command](args)
