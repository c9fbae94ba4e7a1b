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
                                               # p99_us, ..., buckets {index: count}}},
                                               # explain (run --explain: where the time
                                               # went, by segment; report/explain.py)

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
from ..inputs import read_bytes
from ..results import KEY_DEFAULTS, NA

KINDS = ("run", "repro")
MAX_DEPTH = 32        # pyvfio writes 5 levels; deeper is not a result (and would recurse)
_GIVE = "give a file written by pyvfio run --json or pyvfio repro --json"

# -- the format, as data: the one validator below and docs/result.schema.json (made
# by schema(); tests/test_results_schema.py keeps the file equal to it) ------------------
# A spec is a type name, ("list", spec), ("map", spec): a table of any keys,
# ("null", spec): spec or null, ("any", spec, spec...): one of them, or a dict of
# fields (all optional; unknown fields are kept: newer pyvfio may add some).
COUNT = "count"       # a whole number, 0 or more
SCALAR = "scalar"     # a string, number, boolean or null: a cell key's value
VERDICT = {"text": "str", "class": "str", "state": "str", "stalled_after": ("null", COUNT),
           "stalls": COUNT, "recovered": COUNT, "lost": COUNT, "error": ("null", "str"),
           "spurious_per_irq": ("null", "number")}
HISTOGRAM = {"count": COUNT, "min_us": ("null", "number"), "avg_us": ("null", "number"),
             "p50_us": ("null", "number"), "p99_us": ("null", "number"), "p99.9_us": ("null", "number"),
             "max_us": ("null", "number"), "buckets": ("map", COUNT)}
# a point of a latency series (pyvfio/series.py): one window of the run
WINDOW = {"t_s": "number", "delivered": COUNT, "n": COUNT, "p50_us": "number", "max_us": "number"}
# the `explain` section (pyvfio run --explain): where each round trip's time went
ANALYSIS = {"seq": COUNT, "round_trip_ns": "number", "segments_ns": ("map", "number"),
            "percent": ("map", "number"),
            "blocking": ("list", {"comm": "str", "pid": "int", "ns": "number"}),
            "host_irqs": ("list", {"irq": SCALAR, "name": ("null", "str"), "count": COUNT}),
            "text": "str"}
EXPLAIN = {"missing": ("null", "str"), "traced": ("list", "str"), "segments": ("list", "str"),
           "explained": COUNT, "unattributed": COUNT, "latency": ("map", HISTOGRAM),
           "worst": ("null", ANALYSIS), "breaches": ("list", ANALYSIS)}
STALL = {"after_delivered": ("null", COUNT), "recovered": "bool", "card_pending": "bool",
         "host_state": ("null", "object")}
CELL = {"key": ("map", SCALAR), "verdict": "str", "outcome": ("null", VERDICT),
        "expected": ("any", "null", "str", VERDICT), "predicted": ("any", "null", "str", VERDICT),
        "match": ("null", "bool"), "error": ("null", "str"), "interrupted": "bool",
        "source": "str", "irq": "str", "counts": ("map", COUNT), "host_interrupts": ("null", COUNT),
        "host_per_delivered": ("null", "number"), "throughput_per_s": ("null", "number"),
        "latency": ("map", HISTOGRAM), "series": ("map", ("list", WINDOW)), "stalls": ("list", STALL),
        "card": ("null", "object"), "host_state": ("null", "object"), "explain": ("null", EXPLAIN)}
ENVELOPE = {"tool": "str", "version": "str", "kind": "str", "command": ("list", "str"), "started": "str"}
RUN = {**ENVELOPE, **CELL, "bdf": "str", "host": ("null", "object"), "modes": ("null", "object")}
REPRO = {**ENVELOPE, "backend": "str", "scenario": "str", "loops": COUNT,
         "cells": ("list", CELL), "machine": ("null", "object"),
         "boots": ("list", "object"), "failures": ("list", "object"), "trace": ("list", SCALAR)}
FLEET_PLACE = {"result": ("null", "str"), "exit": ("null", "int"), "error": ("null", "str"),
               "tags": ("null", ("map", SCALAR)), "card": ("null", "object"), "kernel": ("null", "str"),
               "user": ("null", "str")}
FLEET = {"kind": "str", "scenario": ("null", "str"), "baseline": ("null", "str"),
         "places": ("map", FLEET_PLACE)}
REQUIRED = {"run": ("tool", "kind", "verdict"), "repro": ("tool", "kind", "cells"), "fleet": ("kind", "places")}
_WORDS = {"str": "a string", "bool": "true or false", "int": "a whole number", COUNT: "a whole number, 0 or more",
          "number": "a finite number", SCALAR: "a string, number, boolean or null", "object": "a table",
          "null": "null"}


class Invalid(Exception):
    def __init__(self, where, value, want):
        super().__init__(where, value, want)
        self.where, self.value, self.want = where, value, want


def _words(spec):
    if isinstance(spec, str):
        return _WORDS[spec]
    if isinstance(spec, dict):
        return "a table"
    if spec[0] == "list":
        return "a list"
    if spec[0] == "map":
        return "a table"
    return " or ".join(_words(s) for s in spec[1:]) if spec[0] == "any" else f"{_words(spec[1])} or null"


def _ok(value, name):
    if name == "str":
        return isinstance(value, str)
    if name == "bool":
        return isinstance(value, bool)
    if name in ("int", COUNT):
        return isinstance(value, int) and not isinstance(value, bool) and (name == "int" or value >= 0)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
            and value not in (float("inf"), float("-inf"))
    if name == SCALAR:
        return value is None or (isinstance(value, (str, bool, int)) or _ok(value, "number"))
    if name == "object":
        return isinstance(value, dict)
    return value is None   # "null"


def _check(value, spec, where):
    if isinstance(spec, str):
        if not _ok(value, spec):
            raise Invalid(where, value, _words(spec))
    elif isinstance(spec, dict):
        if not isinstance(value, dict):
            raise Invalid(where, value, "a table")
        for k, sub in spec.items():
            if k in value:
                _check(value[k], sub, f"{where}.{k}" if where else k)
    elif spec[0] in ("list", "map"):
        if not isinstance(value, list if spec[0] == "list" else dict):
            raise Invalid(where, value, _words(spec))
        items = enumerate(value) if spec[0] == "list" else value.items()
        for k, v in items:
            _check(v, spec[1], f"{where}[{k}]" if spec[0] == "list" else f"{where}.{k}")
    elif spec[0] == "null":
        if value is not None:
            try:
                _check(value, spec[1], where)
            except Invalid as exc:
                raise Invalid(exc.where, exc.value, exc.want + (" or null" if exc.where == where else "")) from None
    else:  # "any"
        for sub in spec[1:]:
            try:
                return _check(value, sub, where)
            except Invalid:
                pass
        raise Invalid(where, value, _words(spec))


def _depth(data):
    """How deeply `data` nests (iteratively: a deep file must not recurse)."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, d = todo.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, d)
            if deepest > MAX_DEPTH:
                return deepest
            todo.extend((v, d + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _short(value):
    text = json.dumps(value) if not isinstance(value, (dict, list)) else ("a table" if isinstance(value, dict)
                                                                            else "a list")
    return text if len(text) <= 40 else text[:37] + "..."


def load_json(path, what="result file"):
    """The JSON document in the regular file `path`, at most MAX_DEPTH deep;
    UsageError in one line otherwise."""
    raw = read_bytes(path, what)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:   # JSONDecodeError, UnicodeDecodeError are ValueErrors
        why = "nested too deeply" if isinstance(exc, RecursionError) else " ".join(str(exc).split())
        raise UsageError(f"{path} is not JSON ({why})", _GIVE if what == "result file" else
                         f"is it the {what} pyvfio wrote?") from None
    if _depth(data) > MAX_DEPTH:
        raise UsageError(f"{path} nests deeper than {MAX_DEPTH} levels: not a pyvfio {what}", _GIVE)
    return data


def load(path):
    """A pyvfio run or repro result from `path`; UsageError in one line otherwise."""
    return check(load_json(path), path)


def validate(data, name, kind_spec):
    """UsageError naming the file and the field when `data` does not fit."""
    try:
        _check(data, kind_spec, "")
    except Invalid as exc:
        raise UsageError(f"{name}: {exc.where or 'the document'} is {_short(exc.value)}, not {exc.want}",
                         _GIVE if kind_spec is not FLEET else "is it what pyvfio fleet run wrote?") from None
    return data


def check(data, name="input"):
    """`data` if it is a pyvfio run or repro result whose every field reports read
    has its type (docs/results.md); UsageError in one line naming the field otherwise."""
    if _depth(data) > MAX_DEPTH:
        raise UsageError(f"{name} nests deeper than {MAX_DEPTH} levels: not a pyvfio result", _GIVE)
    if not isinstance(data, dict) or data.get("tool") != "pyvfio":
        raise UsageError(f"{name} is not a pyvfio result (no \"tool\": \"pyvfio\")", _GIVE)
    kind = data.get("kind")
    if kind not in KINDS:
        raise UsageError(f"{name} is a pyvfio {kind!r:.40} file, not a run or repro result", _GIVE)
    if kind == "repro" and "cells" not in data and "scenarios" in data:
        raise UsageError(f"{name} is a model report of the first format (scenarios, no cells), "
                         "which this pyvfio no longer reads", "re-run it: pyvfio repro --model --json FILE")
    if kind == "repro" and not isinstance(data.get("cells"), list):
        raise UsageError(f"{name}: repro report without a cells list", "was the run interrupted?")
    validate(data, name, RUN if kind == "run" else REPRO)
    missing = [k for k in REQUIRED[kind] if k not in data]
    if missing:
        raise UsageError(f"{name}: a {kind} result without {missing[0]}", _GIVE)
    for i, c in enumerate(data.get("cells", [])):
        if not isinstance(c, dict) or "verdict" not in c:
            raise UsageError(f"{name}: cells[{i}] has no verdict", _GIVE)
    return data


def load_fleet(path):
    """The fleet.json `pyvfio fleet run` wrote in its --out folder, checked."""
    data = load_json(path, "fleet file")
    if not isinstance(data, dict) or data.get("kind") != "fleet":
        raise UsageError(f"{path} is not a pyvfio fleet file", "give the --out folder of pyvfio fleet run")
    return validate(data, path, FLEET)


def schema():
    """The result format as JSON Schema (docs/result.schema.json is this, written out)."""
    defs = {}

    def conv(spec):
        if isinstance(spec, str):
            return {"str": {"type": "string"}, "bool": {"type": "boolean"}, "int": {"type": "integer"},
                    COUNT: {"type": "integer", "minimum": 0}, "number": {"type": "number"},
                    SCALAR: {"type": ["string", "number", "boolean", "null"]}, "object": {"type": "object"},
                    "null": {"type": "null"}}[spec]
        if isinstance(spec, dict):
            for name, known in (("verdict", VERDICT), ("histogram", HISTOGRAM), ("stall", STALL),
                                ("analysis", ANALYSIS), ("explain", EXPLAIN), ("cell", CELL)):
                if spec is known:
                    defs.setdefault(name, None)
                    if defs[name] is None:
                        defs[name] = {"type": "object", "properties": {k: conv(v) for k, v in spec.items()}}
                    return {"$ref": f"#/$defs/{name}"}
            return {"type": "object", "properties": {k: conv(v) for k, v in spec.items()}}
        if spec[0] == "list":
            return {"type": "array", "items": conv(spec[1])}
        if spec[0] == "map":
            return {"type": "object", "additionalProperties": conv(spec[1])}
        if spec[0] == "null":
            return {"anyOf": [{"type": "null"}, conv(spec[1])]}
        return {"anyOf": [conv(s) for s in spec[1:]]}

    def kind(spec, name):
        out = conv(spec)
        out["properties"]["kind"] = {"const": name}
        out["required"] = list(REQUIRED[name])
        if name != "fleet":
            out["properties"]["tool"] = {"const": "pyvfio"}
        return out

    body = {"oneOf": [kind(RUN, "run"), kind(REPRO, "repro")]}
    fleet = kind(FLEET, "fleet")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "pyvfio result file (run --json, repro --json) and fleet.json",
            "description": "docs/results.md describes the fields; fields not named here may "
                           "appear and are ignored by readers",
            **body, "$defs": {**defs, "fleet": fleet}}


def cells(report):
    """The report's cells, each with at least `key` (dict) and `verdict`."""
    if report.get("kind") == "run":
        cell = {k: v for k, v in report.items()
                if k not in ("tool", "version", "kind", "command", "started", "host")}
        cell["key"] = {}
        return [cell]
    out = [c for c in report["cells"] if isinstance(c, dict) and "verdict" in c]
    for c in out:
        # reports from before the vfio, irq and guest axes (vfio: a repro cell's only)
        key = c.get("key")
        if key:
            c["key"] = {**key, **{a: v for a, v in KEY_DEFAULTS.items()
                                  if a not in key and (a != "vfio" or "nointxmask" in key)}}
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
    if isinstance(value, (bool, int, float)) or value is None or str(value) in (NA, ""):
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


def series(cell):
    """The round trip window by window (a list of WINDOW points), or None."""
    pts = _get(cell, "series", "round_trip")
    return pts if isinstance(pts, list) and pts else None


def spurious(cell):
    """An ok that came with spurious interrupts: triggers whose ack found no cause (a
    card), or controller deliveries beyond the interrupts (the model's count)."""
    if verdict_class(cell) != "ok":
        return False
    per_irq = _get(cell, "outcome", "spurious_per_irq")
    return bool(per_irq) or bool(_get(cell, "counts", "spurious_triggers"))


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
