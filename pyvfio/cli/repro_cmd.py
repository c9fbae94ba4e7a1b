"""pyvfio repro: run a scenario's cells and give each a verdict (ok / stall after N /
recovered), on the model host, on a card here or in lab VMs.

    pyvfio repro                      # the model host's whole matrix (scenarios/model.toml)
    pyvfio repro --model --scenario seed --json m.json --svg m.svg
    pyvfio repro --trace --ic xive --card-kind non-2.3 --policy lazy --unmask ioctl
    pyvfio repro 0000:01:00.0 --scenario card
    pyvfio repro --lab ppc64le --scenario seed

One pipeline for all three (pyvfio.repro.pipeline): the same scenario loader,
cells, expectations, summary table, JSON and SVG, and exit 1 when a cell does not
match its expectation.
"""

from .. import limits
from ..report.formats import FORMATS
from ..repro import pipeline
from ..sim.xics import VARIANTS as XICS_VARIANTS
from ..vocabulary import Arch, CardKind, Controller, Unmask
from .parser import add_choice, add_json, add_nointxmask, add_policy, renamed


def add_arguments(p):
    p.add_argument("bdf", nargs="?", help="run the scenario's matrix on this card (bound to vfio-pci)")
    p.add_argument("--model", action="store_true",
                   help="run on the model host (the default when no device is given)")
    add_choice(p, "--lab", Arch, help="run the scenario's matrix in lab VMs (x86_64 or ppc64le)")
    p.add_argument("--here", action="store_true",
                   help="keep vfio-pci as loaded: run only the cells of its nointxmask (used in lab VMs)")
    p.add_argument("--kernel", metavar="SERIES",
                   help="--lab: boot the scenario's [lab] machines on this lab kernel instead "
                        "(e.g. 6.12-64k, 6.12-rt)")
    p.add_argument("--vfio", metavar="VARIANT",
                   help="the vfio-pci variant loaded (a [matrix] vfio value of the scenario; default "
                        "shipped): run only its cells (lab VMs pass the one they booted)")
    p.add_argument("--force", action="store_true",
                   help="reload vfio-pci even though other devices are bound to it")
    p.add_argument("--scenario", metavar="FILE",
                   help="a scenario file, or the name of a shipped one (seed, card, model); "
                        "--model's default is model")
    p.add_argument("--svg", metavar="FILE", help="draw the verdict grid and latency histograms")
    add_json(p, "the results")
    p.add_argument("--format", choices=FORMATS,
                   help="print the results as KTAP, JUnit XML, KCIDB v5.3 JSON or lava-test-case lines "
                        "instead of the table (docs/formats.md); ktap exits as kselftest: 0, 1 fail, 4 skip")
    p.add_argument("--timeout", type=limits.arg("timeout_s"), default=900, metavar="S",
                   help="--lab: seconds per VM boot before it is killed (default 900)")
    p.add_argument("-l", "--loops", type=limits.arg("loops"), metavar="N",
                   help=f"interrupts per cell (default: the scenario's; {pipeline.TRACE_LOOPS} with --trace)")
    p.add_argument("--recover", action="store_true",
                   help="after a stall, poll the card and disable/re-enable INTx, then go on")
    add_nointxmask(p, was_flag=True,
                   help="only the cells with vfio-pci loaded with this nointxmask (with 1 a 2.3 card "
                        "is masked at the controller; default: both)")
    sel = p.add_argument_group("the model host's cells (each repeatable or comma-separated; default: all)")
    add_choice(sel, "--ic", Controller, repeatable=True, help="interrupt controller: xive, xics or ioapic")
    renamed(sel, "--controller", "--ic", dest="ic", repeatable=True)   # lab's word is --ic
    add_choice(sel, "--card-kind", CardKind, repeatable=True, dest="card",
               help="2.3: DisINTx masking at the card, or non-2.3: masking at the controller")
    renamed(sel, "--card", "--card-kind", dest="card", repeatable=True)
    add_policy(sel, repeatable=True,
               help="genirq disable: lazy (no 8b9f128947dd), unlazy (IRQ_DISABLE_UNLAZY) or kernel; "
                    "applies only where vfio masks at the controller")
    add_choice(sel, "--unmask", Unmask, repeatable=True,
               help="per-interrupt unmask: ioctl or eventfd (resample: a KVM guest's cells)")
    sel.add_argument("--xics-variant", metavar="NAME",
                     help=f"XICS behaviour: {', '.join(XICS_VARIANTS)} (default qemu)")
    sel.add_argument("--xive-set-pq00-retriggers", action="store_true",
                     help="XIVE knob: SET_PQ_00 re-triggers an asserted LSI (QEMU: it does not)")
    sel.add_argument("--trace", action="store_true",
                     help="print the step-by-step event trace of one model cell")


def run(args):
    return pipeline.run(args)
