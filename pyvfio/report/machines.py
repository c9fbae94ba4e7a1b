"""Result files seen machine by machine: what the HTML page and `pyvfio fleet` show
across machines and against a baseline.

A machine is where a set of cells ran: a place of a fleet (one result file each),
or one of the machines a lab or model report holds (its cells' arch, kernel and ic).

    split(report, name=None) -> [MachineReport]      # one report, its machines
    facts(machine) -> dict                     # kernel, arch, controller, fix, nointxmask
    cell_id(cell) -> key without machine axes  # what names "the same cell" on two machines
    across(machines) -> [{cell, label, verdicts {machine: text}}]   # cells whose verdict differs
    combined(machines) -> {"cells", "matched", "mismatched", "unjudged", "ok"}
    against(machine, baseline, name) -> compare.compare() of the baseline's same machine
    missing(machines, baseline) -> [MachineReport]   # the baseline's machines no result has

Machine axes: a lab or model report names its machine in each cell's key (arch,
kernel as a lab series "6.12", ic); a card report (`pyvfio repro BDF`) names the
kernel's release and "machine" (uname -m).  Both are read as arch, kernel series and
controller, so a card's cells compare with the model's or the lab's same machine.
"""

from dataclasses import dataclass, field

from ..host.interrupts import controller_of
from . import cells as C
from . import compare

MACHINE_AXES = ("arch", "machine", "kernel", "ic")


@dataclass
class MachineReport:
    name: str
    report: dict                        # a repro report holding only this machine's cells
    extra: dict = field(default_factory=dict)   # what a fleet knows of it (tags, card, exit)

    @property
    def cells(self):
        return C.cells(self.report)


def series(kernel):
    """"6.12.57+deb12-amd64" -> "6.12" (a lab series such as "6.12-rt" stays itself)."""
    if not kernel:
        return None
    k = str(kernel)
    head = k.split("+")[0].split("-")[0]
    parts = head.split(".")
    if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]):
        rest = k[len(head):]
        # a lab series ("6.12-rt", "6.12-64k") keeps its flavour; a release's "-amd64" does not
        return ".".join(parts[:2]) + (rest if rest in ("-rt", "-64k") else "")
    return k


def ident(cell):
    """(arch, kernel series, ic) of the machine a cell ran on (None where unknown)."""
    k = cell.get("key", {})
    return (k.get("arch") or k.get("machine"), series(k.get("kernel") or cell.get("kver")),
            k.get("ic") or controller_of(cell.get("chip"))[0])


def cell_id(cell):
    """The cell's key without the machine's axes: the same cell on another machine."""
    return {a: v for a, v in cell.get("key", {}).items() if a not in MACHINE_AXES}


def _label(ident_):
    return " ".join(str(x) for x in ident_ if x) or "machine"


def split(report, name=None):
    """The machines of one report, in the order their first cells appear.  A report
    of one machine is named `name` (a place) when given."""
    groups = {}
    for c in C.cells(report):
        groups.setdefault(ident(c), []).append(c)
    if not groups:
        return [MachineReport(name or "machine", dict(report, cells=[]))]
    out = []
    for i, cl in groups.items():
        label = name if name and len(groups) == 1 else (f"{name}: {_label(i)}" if name else _label(i))
        out.append(MachineReport(label, dict(report, cells=cl)))
    return out


def facts(m):
    """What a person asks of a machine before trusting its cells."""
    cl = m.cells
    host = C.host_facts(m.report)
    arch, kern, ic = ident(cl[0]) if cl else (None, None, None)
    first = lambda f: next((c.get(f) for c in cl if c.get(f) is not None), None)  # noqa: E731
    nims = sorted({int(bool(c["key"]["nointxmask"])) for c in cl if "nointxmask" in c.get("key", {})})
    release = host.get("kernel") or first("kver") or (cl[0]["key"].get("kernel") if cl else None)
    return {"arch": arch or host.get("machine"), "kernel": release, "series": kern,
            "controller": first("chip") or ic, "ic": ic, "unlazy_fix": first("unlazy_fix"),
            "masks_at_device": first("masks_at_device"), "nointxmask": nims,
            "backend": m.report.get("backend"), "cells": len(cl)}


def across(machines):
    """Cells (by cell_id) that ran on more than one machine with different verdicts
    (Verdict.gate: what a real run can observe, and whether its stalls were recovered)."""
    seen, order = {}, []
    for m in machines:
        for c in m.cells:
            cid = C.key_id(cell_id(c))
            if cid not in seen:
                seen[cid] = (cell_id(c), {})
                order.append(cid)
            v = C.verdict(c)
            seen[cid][1][m.name] = (v.gate() if v else ("unknown",), c.get("verdict"))
    varying, _ = C.axes_of([{"key": seen[cid][0]} for cid in order])
    out = []
    for cid in order:
        key, by = seen[cid]
        if len(by) > 1 and len({e for e, _ in by.values()}) > 1:
            out.append({"cell": key, "label": C.key_label(key, varying or None),
                        "verdicts": {name: text for name, (_, text) in by.items()}})
    return out


def combined(machines):
    """The verdict of everything together: every cell everywhere as expected?"""
    cl = [c for m in machines for c in m.cells]
    matched = sum(1 for c in cl if c.get("match") is True)
    mismatched = sum(1 for c in cl if c.get("match") is False)
    return {"cells": len(cl), "matched": matched, "mismatched": mismatched,
            "unjudged": len(cl) - matched - mismatched, "ok": bool(cl) and mismatched == 0}


def baseline_part(machine, baseline):
    """The baseline's cells of the same machine (arch, kernel series, controller where
    both name it); all of them when the baseline names no machine."""
    mine = {ident(c) for c in machine.cells}
    fits = lambda b, x: all(p is None or q is None or p == q for p, q in zip(b, x))  # noqa: E731
    out = [c for c in C.cells(baseline) if any(fits(ident(c), x) for x in mine)]
    return dict(baseline, cells=out)


def missing(machines, baseline):
    """The baseline's machines (split) none of whose cells any of `machines` is
    compared with: a machine no result has, which against() never sees."""
    mark = lambda c: (ident(c), C.key_id(c.get("key")))   # noqa: E731
    covered = {mark(c) for m in machines for c in C.cells(baseline_part(m, baseline))}
    return [b for b in split(baseline) if b.cells and not any(mark(c) in covered for c in b.cells)]


def against(machine, baseline, baseline_name="baseline", allow_missing=False):
    """compare.compare(baseline's same machine, this machine's cells), matching cells
    by cell_id; None when the baseline has no cell of this machine."""
    part = baseline_part(machine, baseline)
    if not C.cells(part):
        return None
    return compare.compare(part, machine.report, baseline_name, machine.name, ignore=MACHINE_AXES,
                           allow_missing=allow_missing)
