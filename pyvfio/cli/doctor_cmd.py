"""`pyvfio doctor [BDF] [--json FILE] [-v]`: is this host (and this card) ready for an INTx
run, and if not, the command that fixes each problem.

Exit status: 0 when no check fails (warnings allowed), 1 when one does (the report is
printed first, then one error line naming the failed checks).  --json FILE writes
Diagnosis.to_json(): envelope("doctor") with host, bdf, status, facts
{unlazy_fix {present, basis, evidence, module}, controller; with a BDF also device
(PciDevice.to_json), masking ("device"|"controller"), irq_route (RoutedIrq.to_json: the
IRQ INTx will really get), intx_probe (intx_probe.Probe.to_json, when doctor asked the
kernel), irq_line (IrqLine.to_json or null)} and checks [{name, status, summary,
evidence, fix}].

For a card bound to vfio-pci and idle, doctor may enable it a moment through VFIO
(open, enable and mask INTx, close) when sysfs cannot say which IRQ INTx will get or
where vfio-pci will mask it (pyvfio/vfio/intx_probe.py).  It never touches a device
it was not given.
"""

import sys

from .. import doctor
from ..errors import EXIT_NOT_AS_EXPECTED, EXIT_OK, PyvfioError
from ..host import paths
from ..results import check_outputs, write_json
from .parser import add_json


class NotReady(PyvfioError):
    """A check failed: INTx passthrough cannot work here as things stand."""
    exit_code = EXIT_NOT_AS_EXPECTED


def add_arguments(parser):
    parser.add_argument("bdf", metavar="BDF", nargs="?", help="a card to check too, e.g. 0000:01:00.0")
    add_json(parser, "the diagnosis", was_flag=True)
    parser.add_argument("-v", "--verbose", action="store_true", help="show the evidence of every check")


def run(args):
    out = sys.stderr if check_outputs([("--json", args.json)]) else sys.stdout
    d = doctor.diagnose(args.bdf, paths.host_root())
    print(doctor.render(d, verbose=args.verbose), file=out, flush=True)
    if args.json:
        write_json(args.json, d.to_json())
    fails = d.failures
    if fails:
        raise NotReady(f"not ready for VFIO INTx: {len(fails)} check(s) failed "
                       f"({', '.join(c.name for c in fails)})",
                       "apply the fixes listed above (pyvfio doctor -v shows all evidence)"
                       + ("; meanwhile `pyvfio repro --model` and `pyvfio lab ARCH` run without "
                          "VFIO here" if d.facts.get("without_vfio") else ""))
    return EXIT_OK
