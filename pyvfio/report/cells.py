"""Result files as cells: loading, checking and reading the fields reports use.

The schemas read here (written by `pyvfio run --json` and `pyvfio repro --json`):

    run:    envelope("run", bdf, host, card, modes, **Run.to_json())
    repro:  envelope("repro", backend ("vfio", "lab" or "model"), scenario, loops,
                     cells [cell, ...], machine | boots, failures | trace)
    cell:   {"key": {axis: value, ...},        # arch, kernel, ic, card, nointxmask,
                                               # policy, unmask, engine, access...
             "verdict": "stall after 1",       # the verdict's text, for people
             "outcome": Verdict.to_json(),     # the verdict as data (pyvfio.verdict)
             "expected", "predicted": Verdict.to_json() | null, "match": bool | null,
             **Run.to_json()}                  # counts {raised, delivered, stalled,
                                               # recovered, polled, lost, ...},
                                               # throughput_per_s, latency {wakeup,
                                               # service, round_trip: {count, p50_us,
                                               # p99_us, ..., buckets {index: count}}}

Every field but `key` and `verdict` is optional (a model cell has no latency).  The
envelope is {"tool": "pyvfio", "version", "kind", "command", "started"}.

Files from before verdicts were data have no "outcome": their verdict is judged
again, by the same rule, from the stalls and counts they carry, and their expected
and predicted verdicts are shown as the text they hold.  The first model reports
(`scenarios` instead of `cells`) are refused in one line: re-run them.  Cells from
before the irq axis name no irq: they are INTx cells, and read as irq=intx; cells
from before the guest axis ran pyvfio's toy guest, and read as guest=toy.
"""

import json

from .. import verdict as V
from ..errors import UsageError

KINDS = ("run", "repro")


def load(path):
    """A pyvfio run or repro result from `path`; UsageError in one line otherwise."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not JSON ({exc})",
                         "give a file written by pyvfio run --json or pyvfio repro --json") from None
    return check(data, path)


def check(data, name="input"):
    if not isinstance(data, dict) or data.get("tool") != "pyvfio":
        raise UsageError(f"{name} is not a pyvfio result (no \"tool\": \"pyvfio\")",
                         "give a file written by pyvfio run --json or pyvfio repro --json")
    kind = data.get("kind")
    if kind not in KINDS:
        raise UsageError(f"{name} is a pyvfio {kind!r} file, not a run or repro result",
                         "give files written by pyvfio run --json or pyvfio repro --json")
    if kind == "repro" and "cells" not in data and "scenarios" in data:
        raise UsageError(f"{name} is a model report of the first format (scenarios, no cells), "
                         "which this pyvfio no longer reads", "re-run it: pyvfio repro --model --json FILE")
    if kind == "repro" and not isinstance(data.get("cells"), list):
        raise UsageError(f"{name}: repro report without a cells list", "was the run interrupted?")
    return data


def cells(report):
    """The report's cells, each with at least `key` (dict) and `verdict`."""
    if report.get("kind") == "run":
        cell = {k: v for k, v in report.items()
                if k not in ("tool", "version", "kind", "command", "started", "host")}
        cell["key"] = {}
        return [cell]
    out = [c for c in report["cells"] if isinstance(c, dict) and "verdict" in c]
    for c in out:
        # reports from before the vfio, irq and guest axes ran the distribution's
        # vfio-pci, on INTx, with the toy guest
        if "nointxmask" in c.get("key", {}) and "vfio" not in c["key"]:
            c["key"] = {**c["key"], "vfio": "shipped"}
        if c.get("key") and "irq" not in c["key"]:
            c["key"] = {**c["key"], "irq": "intx"}
        if c.get("key") and "guest" not in c["key"]:
            c["key"] = {**c["key"], "guest": "toy"}
    return out


def key_id(key):
    """A hashable identity for a cell key (values compared as text)."""
    return tuple(sorted((str(k), _text(v)) for k, v in (key or {}).items()))


def _text(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    return "-" if v is None else str(v)


def plain(value):
    """An axis value as text: booleans as 0/1, None as -."""
    return _text(value)


def value_label(axis, value):
    """An axis value that must read on its own (a cell label, a grid header): numbers,
    booleans and "-" get their axis name ("nointxmask=1", "policy=-"); names do not."""
    if isinstance(value, (bool, int, float)) or value is None or str(value) in ("-", ""):
        return f"{axis}={_text(value)}"
    return str(value)


def key_label(key, axes=None, sep=" / "):
    """"xive / non-2.3 / lazy / ioctl" (only `axes` when given); "run" for an empty key."""
    axes = list(key) if axes is None else axes
    parts = [value_label(a, key.get(a)) for a in axes if a in key]
    return sep.join(parts) or "run"


def axes_of(cell_list):
    """(varying, constant): axis names in first-seen order; constant ones with their value."""
    order, values = [], {}
    for c in cell_list:
        for a, v in c.get("key", {}).items():
            if a not in values:
                order.append(a)
                values[a] = []
            if _text(v) not in values[a]:
                values[a].append(_text(v))
    varying = [a for a in order if len(values[a]) > 1 or any(a not in c.get("key", {}) for c in cell_list)]
    constant = {a: next(c["key"][a] for c in cell_list if a in c.get("key", {}))
                for a in order if a not in varying}
    return varying, constant


# -- metrics ----------------------------------------------------------------------------

def _get(d, *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def metrics(cell):
    """The numbers reports show: verdict, raised, delivered, lost, p50_us, p99_us,
    max_us, throughput_per_s (None where the cell has no such field)."""
    rt = _get(cell, "latency", "round_trip") or {}
    return {"verdict": cell.get("verdict"), "expected": text(cell.get("expected")),
            "match": cell.get("match"),
            "raised": _get(cell, "counts", "raised"),
            "delivered": _get(cell, "counts", "delivered"),
            "lost": _get(cell, "counts", "lost"),
            "p50_us": rt.get("p50_us") if rt.get("count") != 0 else None,
            "p99_us": rt.get("p99_us") if rt.get("count") != 0 else None,
            "max_us": rt.get("max_us") if rt.get("count") != 0 else None,
            "throughput_per_s": cell.get("throughput_per_s")}


def verdict(cell):
    """The cell's Verdict (pyvfio.verdict), or None when the file holds nothing to
    judge it by."""
    return V.of_run_json(cell)


def verdict_class(cell):
    """ok, stall, recovered, lost, error or unknown: for colours and counts."""
    v = verdict(cell)
    return v.cls if v else "unknown"


def text(v):
    """A verdict field as text: a Verdict.to_json() dict's, or an older file's string."""
    return v.get("text") if isinstance(v, dict) else v


def round_trip(cell):
    """The round-trip histogram dict of a cell, or None when it has none (or no samples)."""
    rt = _get(cell, "latency", "round_trip")
    if not isinstance(rt, dict) or not rt.get("buckets"):
        return None
    return rt


def host_facts(report):
    """The report's host facts: `host` (run, model repro) or `machine` (repro on a card);
    a lab repro's machines are in its cells' keys (arch, kernel, ic)."""
    h = report.get("host") or report.get("machine")
    return h if isinstance(h, dict) else {}


def host_line(report):
    """"Linux 6.12.95+deb12-amd64 x86_64" from a report's host facts, or for a lab or
    model report the kernels and architectures its cells ran on (or stand for)."""
    h = host_facts(report)
    parts = [f"Linux {h['kernel']}" if h.get("kernel") else None,
             h.get("machine") if isinstance(h.get("machine"), str) else None,
             h.get("controller") or h.get("chip")]
    line = " ".join(p for p in parts if p)
    if line:
        return line
    cl = cells(report) if report.get("kind") in KINDS else []
    seen = []
    for c in cl:
        k = c.get("key", {})
        desc = " ".join(str(k[a]) for a in ("arch", "kernel") if k.get(a) is not None)
        if desc and desc not in seen:
            seen.append(desc)
    if report.get("backend") == "model":
        return "model host" + (" running the lab's " + ", ".join(seen) if seen else "")
    return ("lab: " + ", ".join(seen)) if seen else "host unknown"
