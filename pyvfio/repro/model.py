"""pyvfio repro --model: the scenario's cells on the model host (pyvfio.sim).

The machines are the scenario's own (machines.py: every [lab] machine, then the
[model] ones); each machine's cells are the scenario's matrix (Plan.cells), each
run on a fresh model host through the INTx engine (predict.model_scenario maps
the cell onto the model, as it does to predict a real cell).  A cell is what a
card or a lab boot writes (Run.to_json() and its key), minus what would mislead:

- engine: the model runs the Python engine only (the C loop needs kernel
  eventfds and a mapped BAR), so its cells say engine=python (a kvm cell too:
  the model runs it as the toy guest on the same host path, its resample
  through the model's KVM resampler: predict.py);
- latency, throughput and CPU time: they time the model's Python code, not an
  INTx path, so they are left out.
"""

from dataclasses import replace

from ..errors import EXIT_INTERRUPTED, UsageError
from ..explain import not_traced
from ..intx import UNMASK_MODES
from . import matrix
from ..sim.host import CARDS, CONTROLLERS
from ..sim.xics import VARIANTS as XICS_VARIANTS
from . import predict
from .machines import unlazy_fix_with
from ..results import NA
from ..vocabulary import Policy, words
from .scenario import RESAMPLE

# The selection options (--ic, --card-kind, --policy, --unmask): the allowed values.
SELECT = {"ic": CONTROLLERS, "card": CARDS, "policy": words(Policy) + (NA,),
          "unmask": UNMASK_MODES + (RESAMPLE,)}
_TIMING = ("latency", "throughput_per_s", "elapsed_s", "cpu")


def check_selection(select, knobs):
    for axis, values in select.items():
        for v in values:
            if v not in SELECT[axis]:
                raise UsageError(f"unknown {axis} {v!r}", f"use one of: {', '.join(SELECT[axis])}")
    xv = knobs.get("xics_variant")
    if xv is not None and xv not in XICS_VARIANTS:
        raise UsageError(f"unknown XICS variant {xv!r}", f"use one of: {', '.join(XICS_VARIANTS)}")


def planned(plan, select=None, knobs=None):
    """[(machine, cell, key)] in order: every machine's cells, narrowed by `select`
    ({axis: [values]}, matched against the key and the machine's card kind)."""
    machines = plan.machines()
    if not machines:
        raise UsageError(f"the scenario {plan.path} names no machine for the model host",
                         "add [lab] machines or a [model] table (see pyvfio/repro/scenario.py)")
    out, seen = [], set()
    for m in machines:
        m = m.with_knobs(**(knobs or {}))
        for cell in plan.cells(m.masks_at_device, m.unlazy_fix, m.x86):
            if unlazy_fix_with(m.unlazy_fix, cell.vfio) is None and cell.vfio != "shipped":
                continue    # a patched vfio-pci: only a real kernel runs it
            if cell.irq != "intx":
                continue   # the model host has INTx only (its card no MSI capability)
            cell = replace(cell, engine="python")
            key = cell.key(**m.key)
            ident = tuple(key.items())
            facts = {**key, "card": m.card}
            if ident in seen or any(str(facts.get(a)) not in vs for a, vs in (select or {}).items()):
                continue
            seen.add(ident)
            out.append((m, cell, key))
    if not out:
        hint = "widen the selection"
        if select and "policy" in select:
            hint = ("the policy applies only where vfio masks at the controller: a non-2.3 card, "
                    "or nointxmask=1 (--nointxmask 1)")
        raise UsageError(f"no cell of {plan.path} matches the selection", hint)
    return out


def run_cell(machine, cell, key, plan, trace=None):
    """One cell on a fresh model host; returns the cell as a card or lab writes it."""
    fix = unlazy_fix_with(machine.unlazy_fix, cell.vfio)
    s = predict.model_scenario(key, machine.masks_at_device, fix, **machine.knobs)
    if s is None:
        raise UsageError(f"the model cannot run {key}: policy 'kernel' needs the machine's kernel",
                         "name one in [model] kernel = \"6.1\" or \"6.12\", or use lazy/unlazy")
    o = matrix.run_model(s, plan.loops, recover=plan.run["recover"], trace=trace, access=cell.access)
    out = {k: v for k, v in o.run.to_json().items() if k not in _TIMING}
    out.update(verdict=o.judged.text, outcome=o.judged.to_json(), key=key,
               card=o.run.profile.describe(), chip=(o.run.host_before or {}).get("chip"),
               masks_at_device=machine.masks_at_device, unlazy_fix=fix, threaded=machine.threaded)
    if plan.run["explain"]:   # asked for, and impossible here: said in the cell, as a run says it
        out["explain"] = {"missing": not_traced("model")}
    return out, o


def run_plan(cells, plan):
    """The cells of `planned()`, run: (cells, None), or on Ctrl-C or SIGTERM the cells
    before it and `stopped` (as a card's run_cells gives it: the pipeline judges and
    saves what was measured and exits 130).  The cell the signal cut short (its Run
    took the signal and tore down) is dropped, not reported as a short cell."""
    out, cell = [], None
    try:
        for m, c, k in cells:
            cell = c
            got, o = run_cell(m, c, k, plan)
            if o.run.interrupted:
                raise KeyboardInterrupt
            out.append(got)
    except KeyboardInterrupt:
        return out, {"why": "interrupted", "exit": EXIT_INTERRUPTED, "during": str(cell),
                     "planned": len(cells)}
    return out, None

