"""The cells of a scenario run on one card, here (pyvfio repro BDF; inside a lab VM
too).  Per cell: open the card, probe its profile, arm INTx, apply the masking
policy after every enable, run the engine, record the result.  A cell that fails
(a stall, an error) is recorded and the run goes on with the next.  A signal
(Ctrl-C, SIGTERM) or the kernel asking for the card back (vfio's device request:
hot-unplug, a driver unbind) stops the scenario: the cell it cut short is dropped,
the cells before it are kept and reported (`stopped` says why), vfio-pci's
nointxmask is restored.

nointxmask is a vfio-pci load parameter: cells are grouped by it, and unless told
to stay with the loaded value (in a lab VM the boot sets it) vfio-pci is reloaded
for each group and the card rebound, then the host's original setting restored.
Reloading is refused while any other device is bound to vfio-pci (a running VM's
passthrough device would be torn away) unless forced.
"""

import os
import sys
import time

from .. import verdict
from ..cardlock import card_lock
from ..engine import Run, RunConfig
from ..explain import Explainer
from ..intx import DeviceIrq
from ..errors import EXIT_INTERRUPTED, EXIT_REMOVED, PyvfioError, RefusedError, UsageError
from ..host import interrupts, pci, system, writes
from ..profiles import probe
from ..signals import held
from ..vfio import open_device
from ..vfio.request import DeviceRequest
from ..results import NA
from ..vocabulary import SWITCHED

VFIO_PCI = "sys/bus/pci/drivers/vfio-pci"


def masks_at_device(bdf, profile_name=None, access="mmap"):
    """Does vfio-pci (loaded with nointxmask=0) mask this card with DisINTx?  It
    decides with a write probe of its own (pci_intx_mask_supported), so ask the
    card: raise one interrupt and read the physical COMMAND register while the
    host holds it masked (DisINTx+ there means masking at the device).  None when
    nointxmask=1 is loaded (vfio then never masks at the device)."""
    if system.nointxmask():
        return None
    with open_device(bdf) as dev:
        profile = probe(dev, access, profile_name)
        DeviceIrq(dev).check_info()  # a card with no INTx pin or IRQ ends here, in one line
        with DeviceIrq(dev) as intx:
            profile.init()
            profile.raise_irq()
            got = intx.trigger.wait(1.0)
            disintx = dev.host_state()["disintx"]
            profile.ack()
            if got:
                intx.eoi()
        profile.quiesce()
    if not got:
        raise PyvfioError(f"{bdf}: no interrupt arrived in the masking probe",
                          "check the card with pyvfio run first")
    return bool(disintx)


class CellStopped(Exception):
    """The kernel asked for the card back during a cell (the run stopped as on a signal)."""


def run_cell(bdf, cell, plan, status=None):
    """One cell; returns Run.to_json() plus what ran it.  KeyboardInterrupt on a
    signal, CellStopped on a device request, each after the cell's teardown."""
    # a kvm cell: the vCPU is the engine, on the in-kernel IOAPIC (what a q35 VM
    # gives its passthrough INTx), with the cell's unmask as KVM's --unmask
    kvm = cell.guest == "kvm"
    cfg = RunConfig(loops=plan.loops, unmask="ioctl" if cell.unmask == NA else cell.unmask,
                    access=cell.access, engine="c" if kvm else cell.engine,
                    watchdog_ms=plan.run["watchdog_ms"], recover=plan.run["recover"], irq=cell.irq,
                    guest=cell.guest, irqchip="ioapic" if kvm else "pic")
    after_enable = None
    if cell.policy in SWITCHED:
        from ..host import policy_module
        after_enable = lambda run: policy_module.set_policy(bdf, cell.policy)  # noqa: E731
    try:
        with open_device(bdf) as dev:
            profile = probe(dev, cell.access, plan.run["profile"])
            # as in pyvfio run: the request ends the cell as a signal does, and the
            # device is closed so that its removal can finish
            with DeviceRequest(dev) as request:
                explain = Explainer(plan.run["threshold_p99_us"]) if plan.run["explain"] else None
                r = Run(dev, profile, cfg, after_enable=after_enable, status=status,
                        explain=explain).execute()
            out = r.to_json()
            out["card"] = profile.describe()
            chip = (r.host_before or {}).get("chip")
            out["chip"] = chip
            if request.requested:
                raise CellStopped(f"the kernel asked for {bdf} back (hot-unplug or a driver unbind)")
            if r.interrupted:
                raise KeyboardInterrupt
            return out
    except PyvfioError as exc:
        v = verdict.failed(exc)
        return {"verdict": v.text, "outcome": v.to_json(), "error": str(exc)}


def _bound_to_vfio(root="/"):
    try:
        return sorted(os.listdir(os.path.join(root, VFIO_PCI)))
    except FileNotFoundError:
        return []


def reload_vfio_pci(bdf, nointxmask, force=False, root="/"):
    """modprobe -r vfio-pci; modprobe vfio-pci nointxmask=N; rebind bdf and every
    other device that was bound to vfio-pci (with --force: the module's removal
    unbinds them; their driver_override still names vfio-pci).  A card removed
    meanwhile (hot-unplug) is not rebound; the module's parameter is set all the same."""
    others = [d for d in _bound_to_vfio(root) if pci.exists(d, root) and d != bdf]
    if others and not force:
        raise RefusedError(f"reloading vfio-pci would tear {', '.join(others)} away from it",
                           "stop what uses them (a VM?) or pass --force")
    present = pci.exists(bdf, root)
    if present:
        writes.write(os.path.join(root, VFIO_PCI, "unbind"), bdf)
    rebind = ([bdf] if present else []) + others
    for cmd in (["modprobe", "-r", "vfio_pci"], ["modprobe", "vfio_pci", f"nointxmask={nointxmask}"]):
        r = writes.run(cmd, "install kmod (Debian: apt-get install kmod)")
        if r.returncode:
            raise PyvfioError(f"{' '.join(cmd)} failed: {r.stderr.strip()}",
                              "run as root on a kernel with vfio-pci as a module")
    for d in rebind:
        writes.write(os.path.join(root, "sys/bus/pci/drivers_probe"), d)
    time.sleep(0.1)
    lost = [d for d in rebind if pci.device(d, root).driver != "vfio-pci"]
    if lost:
        raise PyvfioError(f"{', '.join(lost)} did not rebind to vfio-pci after the reload",
                          f"bind again: pyvfio bind {' '.join(lost)}")


def run_cells(bdf, plan, here=False, force=False, echo=print, vfio="shipped"):
    """Every cell of `plan` on `bdf` with the vfio-pci variant loaded (`vfio`, an
    axis value: only a lab boot can load another); returns (cells as dicts, machine
    facts; with "stopped" when a signal or a device request ended it early)."""
    sysfacts = system.probe()
    at_device = masks_at_device(bdf, plan.run["profile"])
    cells = [c for c in plan.cells(bool(at_device), x86=sysfacts.machine == "x86_64") if c.vfio == vfio]
    loaded = sysfacts.nointxmask
    if here:
        cells = [c for c in cells if c.nointxmask == int(bool(loaded))]
    if any(c.policy in SWITCHED for c in cells):
        from ..host import policy_module
        policy_module.ensure_module()
    line = interrupts.intx_line(bdf)
    machine = {"kernel": sysfacts.kernel, "machine": sysfacts.machine}
    threaded = sysfacts.irq_threads_forced
    results, stopped, cell = [], None, None
    original = loaded
    try:
        try:
            for nim in sorted({c.nointxmask for c in cells}):
                if not here and bool(nim) != bool(loaded):
                    echo(f"reloading vfio-pci with nointxmask={nim}")
                    with held() as late:   # not half-reloaded: the signal acts after it
                        reload_vfio_pci(bdf, nim, force)
                    loaded = bool(nim)
                    if late:
                        raise KeyboardInterrupt
                for cell in (c for c in cells if c.nointxmask == nim):
                    res = run_cell(bdf, cell, plan)
                    res["key"] = cell.key(**machine, **_where(sysfacts, res.get("chip") or (line and line.chip)))
                    results.append(res)
                    echo(f"{cell}: {res['verdict']}")
                cell = None
        except KeyboardInterrupt:
            stopped = {"why": "interrupted", "exit": EXIT_INTERRUPTED}
        except CellStopped as exc:
            stopped = {"why": str(exc), "exit": EXIT_REMOVED}
    finally:
        with held() as late:
            if not here and original is not None and bool(loaded) != bool(original):
                echo(f"reloading vfio-pci with nointxmask={int(original)} (as it was)")
                reload_vfio_pci(bdf, int(original), force=True)
    if late and stopped is None:   # after the last cell: every cell is kept
        stopped = {"why": "interrupted", "exit": EXIT_INTERRUPTED}
    return results, _facts(machine, at_device, threaded, line, stopped, cell, len(cells))


def _facts(machine, at_device, threaded, line, stopped, cell, planned):
    facts = {**machine, "masks_at_device": at_device, "threaded": threaded,
             "chip": line.chip if line else None}
    if stopped:
        facts["stopped"] = {**stopped, "during": str(cell) if cell is not None else None,
                            "planned": planned}
    return facts


def _where(sysfacts, chip):
    """What a scenario's `when` may name of this machine, as a lab cell's key has it:
    arch, and ic (the controller serving the card's line, from /proc/interrupts)."""
    from ..host.interrupts import controller_of

    ic = controller_of(chip)[0]
    return {"arch": sysfacts.machine, **({"ic": ic} if ic in ("ioapic", "xics", "xive") else {})}


def run_here(plan, bdf=None, here=False, force=False, vfio="shipped"):
    """pyvfio repro BDF (and --here in a lab guest): the plan's cells on this host's
    card.  Returns (cells, report fields)."""
    from ..lab import in_guest
    from ..unlazy_fix import detect

    facts = in_guest.facts()
    if bdf is None:
        # in a lab guest: the scenario's lab card, or the only card bound
        bound = facts["bound"] if facts else []
        bdf = in_guest.bdf_of(plan.lab_card, facts) if facts else None
        if bdf is None and len(bound) == 1:
            bdf = bound[0]["bdf"]
        if bdf is None:
            raise UsageError("no card named", "give a BDF (pyvfio repro BDF), or --lab ARCH, or --model")
    bdf = pci.require(bdf)
    blockers = system.vfio_blockers(system.probe(), pci.device(bdf))
    if blockers:
        raise PyvfioError(f"VFIO cannot drive {bdf} here: " + "; ".join(r for r, _ in blockers),
                          "; ".join(f for _, f in blockers) + " (pyvfio doctor explains)")
    with card_lock(bdf):
        cells, machine = run_cells(bdf, plan, here=here, force=force,
                                   echo=lambda s: print(s, file=sys.stderr), vfio=vfio)
    fix = facts.get("unlazy_fix") if facts else detect(machine["kernel"]).present
    module = dict(facts["vfio"]) if facts else {"variant": vfio}
    module["loaded"] = system.loaded_module()   # what /sys/module says of the one running
    for c in cells:
        c.update(masks_at_device=machine["masks_at_device"], chip=c.get("chip") or machine["chip"],
                 unlazy_fix=fix, kver=machine["kernel"], vfio=module, threaded=machine["threaded"])
    stopped = machine.pop("stopped", None)
    return cells, {"bdf": bdf, "machine": machine, "lab": facts, **({"stopped": stopped} if stopped else {})}
