"""pyvfio repro --lab ARCH: the scenario's cells in lab VMs.

One boot per machine of the scenario's [lab] table, per nointxmask value (the
parameter is read when vfio-pci loads, so it is set at boot) and per vfio-pci
variant (the modules the boot loads: --vfio).  Inside, `pyvfio
repro --here` runs that boot's cells on the lab card and writes their JSON into
the checkout, which the guest shares read-write.
"""

import json
import os
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from ..checkout import CHECKOUT
from ..errors import EXIT_INTERRUPTED, PyvfioError, UsageError
from ..lab import progress, session
from ..lab.config import LabConfig
from ..lab.errors import LabError
from ..vocabulary import SWITCHED, Policy


def boots(plan, arch, kernel=None):
    """(machine, nointxmask, vfio, policy module?) per boot: the scenario's [lab]
    machines (machines.py), each on `kernel` when given (the same machines on
    another lab kernel: --kernel 6.12-64k), one boot per load-time setting their
    cells have."""
    machines = plan.lab.get(arch)
    if not machines:
        raise UsageError(f"the scenario {plan.path} has no [lab] {arch} machines",
                         f"use --scenario seed, or add e.g. {arch} = [{{ kernel = \"6.12\" }}] under [lab]")
    if kernel is not None:
        from .machines import lab_machine
        machines = list(dict.fromkeys(lab_machine(arch, kernel, m.ic, plan.lab_card) for m in machines))
    for m in machines:
        cells = plan.cells(m.masks_at_device, m.unlazy_fix, m.x86)
        for nim, vfio in dict.fromkeys((c.nointxmask, c.vfio) for c in cells):
            module = any(c.policy in SWITCHED for c in cells
                         if (c.nointxmask, c.vfio) == (nim, vfio))
            yield m, nim, vfio, module


def run_lab(plan, arch, timeout=900, echo=print, kernel=None):
    """All boots; returns (cells, per-boot facts, failures, stopped).  Ctrl-C or
    SIGTERM ends the running boots (QEMU ended) and starts no other: the cells of
    the boots that had finished are returned with `stopped` (why, the boots cut
    short, how many cells were planned: as a card's run_cells), else None."""
    planned = list(boots(plan, arch, kernel))  # a scenario without [lab] machines stops here
    # in the checkout, which every guest shares read-write (a PYVFIO_CACHE elsewhere is not)
    work = CHECKOUT / ".cache" / "repro" / uuid.uuid4().hex[:10]
    work.mkdir(parents=True)
    scenario = work / "scenario.toml"
    shutil.copyfile(plan.path, scenario)
    stop = threading.Event()
    # cells done out of the total, said as each boot returns its cells
    sizes = [sum(1 for c in plan.cells(m.masks_at_device, m.unlazy_fix, m.x86) if (c.nointxmask, c.vfio) == (nim, vfio))
             for m, nim, vfio, _ in planned]
    tracker = progress.Tracker(f"repro --lab {arch}", sum(sizes), parallel=min(session.vm_slots(), len(planned)))
    progress.say(f"repro --lab {arch}: {sum(sizes)} cell(s) in {len(planned)} boot(s)")

    def boot(n, m, nim, vfio, module):
        try:
            return _boot(n, m, nim, vfio, module)
        finally:
            tracker.advance(sizes[n], note=f"boot {n + 1} of {len(planned)} ended")

    def _boot(n, m, nim, vfio, module):
        out = work / f"boot{n}.json"
        cfg = LabConfig(arch=arch, kernel=m.kernel, ic=m.ic, cards=(plan.lab_card,),
                        nointxmask=nim, policy=Policy.LAZY if module else Policy.KERNEL,
                        vfio=plan.vfio_specs[vfio], timeout=timeout,
                        command=("python", "-m", "pyvfio", "repro", "--here", "--scenario", str(scenario),
                                 "--vfio", vfio, "--json", str(out)))
        label = f"{arch} {cfg.kernel} {cfg.ic} nointxmask={nim} vfio={vfio}"
        try:
            # two boots may run at once: each guest line says whose it is
            status, _ = session.run(cfg, stop=stop, echo=lambda line: echo(f"[{label}] {line}"))
        except LabError as exc:
            echo(f"{label}: boot failed: {exc}")
            return {"boot": label, "error": str(exc)}, None
        if not out.exists():
            return {"boot": label, "error": f"the guest wrote no results (exit {status})"}, None
        data = json.loads(out.read_text())
        lab_facts = data.get("lab") or {}
        for c in data["cells"]:
            axes = {k: v for k, v in c["key"].items() if k not in ("kernel", "machine", "arch", "ic")}
            c["key"] = {**m.key, **axes}   # the machine's key, as the model names its cells
            c["kver"] = lab_facts.get("kver")
            c["unlazy_fix"] = lab_facts.get("unlazy_fix")
        return None, (data["cells"], {"boot": label, "kver": lab_facts.get("kver"),
                                      "unlazy_fix": lab_facts.get("unlazy_fix"), "vfio": lab_facts.get("vfio"),
                                      "status": status})

    # as many boots at once as the machine's lab VM slots allow (PYVFIO_LAB_VMS)
    pool = ThreadPoolExecutor(max_workers=session.vm_slots())
    stopped = None
    futures = []
    try:
        futures = [pool.submit(boot, n, *b) for n, b in enumerate(planned)]
        results = [f.result() for f in futures]
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: end the running boots, start no other
        stop.set()
        pool.shutdown(cancel_futures=True)   # the running ones end with their QEMU
        finished = [f for f in futures if f.done() and not f.cancelled() and f.exception() is None]
        results = [f.result() for f in finished]
        cut = [r[0]["boot"] for r in results if r[0]]
        results = [r for r in results if not r[0]]     # a boot the stop cut short is no failure
        stopped = {"why": "interrupted", "exit": EXIT_INTERRUPTED, "during": ", ".join(cut) or None,
                   "planned": sum(len(plan.cells(m.masks_at_device, m.unlazy_fix, m.x86))
                                  for m in plan.lab.get(arch) or ())}
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
        if os.environ.get("PYVFIO_LAB_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    failures = [failure for failure, _ in results if failure]
    cells = [c for _, done in results if done for c in done[0]]
    boots_done = [done[1] for _, done in results if done]
    if not cells and failures:
        raise PyvfioError(f"no lab boot produced results ({failures[0]['boot']}: {failures[0]['error']})")
    return cells, boots_done, failures, stopped
