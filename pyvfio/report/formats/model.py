"""The one result model the formats write: machines, each with its cases (cells).

Built only from what pyvfio/report/cells.py loads and checks (the cells, their
verdicts and metrics) and from report/machines.py's split of a report into
machines, so KTAP, JUnit, KCIDB and LAVA say the same thing as the table and the
HTML page.

    Results(source, kind, backend, version, started, machines, digest)
    MachineResult(name, facts, cases, error)   # facts: arch, kernel, series, ic, controller,
                                         #        unlazy_fix, backend; status: a machine
                                         #        with no cells is an error (a failed
                                         #        boot or place) or a skip (none in the file)
    Case(name, key, status, verdict, why, figures, vfio, segments)
                                         # segments: each segment's p50 (us) of a cell
                                         # run with --explain (report/explain.py)

A case's status, the same in every format (docs/formats.md):

    pass    the verdict is ok: every raise was delivered
    fail    a stall (recovered or not; the kernel is at fault), raises lost (nothing
            was pending: the card, or its profile's raise program), a profile fault
            (pyvfio.verdict.FAULTS: the profile or the card), or a p99 over the
            scenario's threshold
    error   the cell could not run
    skip    the file holds nothing to judge the cell by

The name is a dotted path: irq, card, controller, policy, unmask (the issue's
`pyvfio.intx.<card>.<ic>.<policy>.<unmask>` without its "pyvfio." root), then
each other axis that varies between the machine's cells as AXIS_VALUE.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass, field

from ...host.interrupts import controller_of
from ...results import NA, axis
from .. import cells as C
from .. import explain as X
from .. import machines as M

STATUSES = ("pass", "fail", "error", "skip")
FIXED = ("irq", "card", "ic", "policy", "unmask")
FIGURES = ("p50_us", "p99_us", "max_us", "throughput_per_s", "raised", "delivered", "lost")


@dataclass
class Case:
    name: str
    key: dict
    status: str                 # one of STATUSES
    verdict: str                # the verdict's text ("stall after 1")
    why: str | None             # for fail, error and skip: what happened and who is at fault
    figures: dict               # FIGURES that the cell has (the rest absent)
    vfio: dict = field(default_factory=dict)   # variant, srcversion, source (lab / card)
    expected: str | None = None
    match: bool | None = None
    segments: dict = field(default_factory=dict)   # {segment: p50 us}, in the round trip's order


@dataclass
class MachineResult:
    name: str
    facts: dict
    cases: list
    error: str | None = None    # a lab boot or a fleet place that gave no cells, or a run
                                # stopped before its first; no cells and no error: skipped

    @property
    def status(self):
        """The machine's own result when it has no cells: error or skip (None: it has)."""
        return None if self.cases else ("error" if self.error else "skip")


@dataclass
class Results:
    source: str
    kind: str
    backend: str | None
    version: str | None
    started: str | None
    machines: list
    digest: str = ""            # of the result's content: KCIDB's ids (the same file, the same ids)

    @property
    def cases(self):
        return [c for m in self.machines for c in m.cases]


def _component(value):
    """One path component: [A-Za-z0-9_-]+ (KCIDB's test path), "na" for no value."""
    text = C.plain(value)
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")
    return "na" if text in ("", NA) else text


def status_of(cell):
    """(status, why) of one cell, by the verdict rule of pyvfio.verdict."""
    v = C.verdict(cell)
    if v is None:
        return "skip", "no verdict: the result holds neither an outcome nor the stalls and counts to judge"
    if v.state == "error":
        return "error", v.text
    if v.state == "stall":
        st = (cell.get("stalls") or [{}])[0]
        pending = " with the card's INTx pending" if st.get("card_pending") else ""
        return "fail", (f"{v.text}: the kernel's INTx path stalled{pending} after "
                        f"{v.stalled_after} delivered (no trigger came)"
                        + ("; re-armed by --recover" if v.all_recovered else ""))
    if v.state == "lost":
        return "fail", (f"{v.text}: raises with no trigger and nothing pending on the card "
                        "(the card, or its profile's raise program)")
    if v.state == "profile":
        return "fail", f"{v.text}: the card's profile (or the card) is at fault, not the kernel"
    if cell.get("threshold_exceeded"):
        p99 = C.metrics(cell)["p99_us"]
        return "fail", f"p99 {p99} us is over the scenario's threshold (the host's latency)"
    return "pass", None


def loaded_variant(loaded):
    """"rebuilt" or "shipped": the vfio-pci /sys/module shows (a rebuilt module has a
    srcversion or taint O, pyvfio/unlazy_fix.py; the distribution's has neither)."""
    return "rebuilt" if loaded.get("srcversion") or "O" in (loaded.get("taint") or "") else "shipped"


def _figures(cell):
    m = C.metrics(cell)
    return {f: m[f] for f in FIGURES if m.get(f) is not None}


def _run_key(report):
    """A run result's key, from what it records: its profile, controller and modes."""
    modes = report.get("modes") or {}
    chip = (report.get("host") or {}).get("intx_line") or {}
    ic = controller_of(chip.get("chip") if isinstance(chip, dict) else None)[0]
    return {"irq": axis(modes, "irq"), "card": (report.get("card") or {}).get("profile"),
            "ic": ic, "policy": modes.get("policy"), "unmask": modes.get("unmask"),
            "engine": modes.get("engine")}


def _case(cell, key, extra_axes):
    card_info = cell.get("card") if isinstance(cell.get("card"), dict) else {}
    card = key.get("card") or card_info.get("profile")
    ic = key.get("ic") or controller_of(cell.get("chip"))[0]
    intx = axis(key, "irq") == "intx"
    parts = [axis(key, "irq"), card, ic, key.get("policy") if intx else None, key.get("unmask") if intx else None]
    name = ".".join([_component(p) for p in parts] +
                    [f"{_component(a)}_{_component(key[a])}" for a in extra_axes if a in key])
    status, why = status_of(cell)
    vfio = cell.get("vfio") if isinstance(cell.get("vfio"), dict) else {}
    if "vfio" in key and not vfio.get("variant"):
        vfio = {**vfio, "variant": key["vfio"]}
    bd = X.of(cell)
    return Case(name=name, key=dict(key), status=status, verdict=cell.get("verdict") or "?", why=why,
                figures=_figures(cell), vfio=vfio, expected=C.metrics(cell)["expected"],
                match=cell.get("match"), segments=bd.p50s() if bd and not bd.missing else {})


def _machine(m, key_of=None):
    extra_axes = _extra_axes([m])   # what tells this machine's cells apart
    cases = [_case(c, key_of or c.get("key", {}), extra_axes) for c in m.cells]
    seen = {}
    for c in cases:   # two cells of one name (an axis constant here): number the later ones
        n = seen.get(c.name, 0)
        seen[c.name] = n + 1
        if n:
            c.name += f".{n + 1}"
    facts = M.facts(m)
    error = None
    if not cases:
        stopped = m.report.get("stopped")
        error = (m.extra or {}).get("error") or (
            f"{stopped.get('why') or 'stopped'} before its first cell" if isinstance(stopped, dict) else None)
    return MachineResult(name=m.name, facts=facts, cases=cases, error=error)


def _extra_axes(machines):
    varying, _ = C.axes_of([c for m in machines for c in m.cells])
    return [a for a in varying if a not in FIXED and a not in M.MACHINE_AXES]


def _digest(reports):
    text = json.dumps(list(reports), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def from_report(report, source="input"):
    """Results of one checked report (cells.check / cells.load)."""
    ms = M.split(report)
    key_of = _run_key(report) if report.get("kind") == "run" else None
    out = [_machine(m, key_of) for m in ms]
    if key_of is not None:   # a run's one machine is the host it ran on
        out[0].name = C.host_line(report)
        loaded = C.host_facts(report).get("vfio_pci_core")
        for c in out[0].cases if isinstance(loaded, dict) and loaded else ():
            c.vfio = {"variant": loaded_variant(loaded), "loaded": loaded}
    if report.get("failures") and not out[0].cases:
        out = []             # every boot failed: the failures are the machines, not an empty one
    for f in report.get("failures") or ():   # a lab boot that gave no cells
        out.append(MachineResult(name=f.get("boot", "boot"), facts={}, cases=[], error=f.get("error") or "failed"))
    return Results(source=source, kind=report.get("kind"), backend=report.get("backend"),
                   version=report.get("version"), started=report.get("started"), machines=out,
                   digest=_digest([report]))


def from_path(path):
    """Results of a result FILE, or of a DIR (a fleet's --out or a folder of results)."""
    if not os.path.isdir(path):
        return from_report(C.load(path), os.path.basename(path))
    from ..html import load   # the one loader of a folder of results
    ms, _, _, _ = load(path)
    first = next((m.report for m in ms if m.cells), {})
    return Results(source=os.path.basename(os.path.normpath(path)), kind="repro",
                   backend=first.get("backend"), version=first.get("version"),
                   started=first.get("started"), machines=[_machine(m) for m in ms],
                   digest=_digest([m.name, m.report, m.extra] for m in ms))
