"""What changed between two result files (two kernels, machines, policies): cell by
cell, matched by key.

`compare(a, b, a_name, b_name)` returns (JSON-ready):

    {"kind": "compare",
     "a": {"name", "kind", "host": str}, "b": {...},
     "host_changes": [{"field", "a", "b"}],           # kernel, machine, controller first;
                                                      # "cell AXIS" for a key axis that
                                                      # differs only between the sides
     "matched_without": [axis],                       # axes left out when matching
     "verdict_changes": [{"key", "label", "a", "b"}],
     "cells": [{"key", "label", "verdict_changed", "a": metrics, "b": metrics,
                "delta": {"delivered", "lost", "p50_us", "p99_us", "throughput_per_s":
                          {"abs", "pct"} or null},   # verdict changes first
                "explain": null | {"moved": segment, "words": "moved: handler +48.2 us (p50)",
                                   "segments": [{"segment", "p50": {"a", "b", "abs"},
                                                 "p99": {...}}],   # largest p50 change first
                                   "one_side_segments": ["reenable (A only)"]}  # folded
                         | {"one_side": "A" | "B", "words": why}}],
     "only_a": [{"key", "label", "verdict"}], "only_b": [...],
     "axis_hints": [{"axis", "pairs"}],               # only-A/only-B cells one axis apart
     "summary": {"matched", "unmatched", "changed"},  # cells: matched, on one side, verdict changed
     "empty": "A" | "B" | None,                       # a side with no cell while the other has some
     "changed": bool}                                 # the gate: see below

`explain` is there when a side ran with --explain (docs/results.md): with a
breakdown on both sides, each segment's p50 and p99 before -> after, the segment
whose p50 changed most named first; on one side only, one line saying so.  A
moved segment is information, never the gate: only verdicts and cells decide it.

Cells match when their keys are equal, leaving out the axes that are constant on
each side but differ between them (two lab reports of kernels 6.1 and 6.12 match
cell by cell, the kernel reported as a host change) and any axes the caller ignores.
A verdict change is judged on what a real run can observe (Verdict.gate: the
state and where it stalled; "ok, 1.00 spurious/irq" from the model is "ok"; a stall
every one of whose stalls was recovered is not the same as one left dead).  A cell
the other side has must be on each side once: two cells of its key in a file, or
made one key by the axes left out, are refused in one line (matching one of them
would hide the other).  `split` makes two sides of one report by an axis
(vfio=shipped,prefix).

As a gate (`changed`): a verdict change, a cell only on one side (unless
`allow_missing`: a narrower run against a full matrix), and an empty side against
a full one (always: nothing was compared) each fail.  Two unmatched cells whose
keys differ in one axis only are named with that axis (`axis_hints`), so the user
can match them with `--ignore AXIS`.
"""

from ..errors import UsageError
from . import cells as C
from . import explain as X

# Host facts that say what machine/kernel a run is; listed first when they differ.
PRIMARY = ("kernel", "machine", "controller", "intx_line.chip", "nointxmask")
# Facts that change every run and say nothing about the machine.
NOISY = ("counts", "total", "started", "irq_count", "hwirq", "actions")


def _flatten(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        path = f"{prefix}{k}"
        if any(part in NOISY for part in path.split(".")):
            continue
        if isinstance(v, dict):
            out.update(_flatten(v, path + "."))
        elif isinstance(v, list):
            if all(not isinstance(x, (dict, list)) for x in v):
                out[path] = ", ".join(map(str, v))
        else:
            out[path] = v
    return out


def host_changes(a, b):
    fa, fb = _flatten(C.host_facts(a)), _flatten(C.host_facts(b))
    keys = [k for k in PRIMARY if k in fa or k in fb]
    keys += sorted(k for k in set(fa) | set(fb) if k not in keys)
    return [{"field": k, "a": fa.get(k), "b": fb.get(k)} for k in keys if fa.get(k) != fb.get(k)]


def _delta(x, y):
    if x is None or y is None:
        return None
    return {"abs": y - x, "pct": (y - x) / x * 100.0 if x else None}


def side_axes(ca, cb):
    """Key axes that are constant within each side but differ between them (kernel
    6.1 in A, 6.12 in B): they name the two runs, not the cells, so cells are matched
    without them."""
    _, const_a = C.axes_of(ca)
    _, const_b = C.axes_of(cb)
    return [x for x in const_a if x in const_b and C.key_id({x: const_a[x]}) != C.key_id({x: const_b[x]})]


def _without(cell_list, axes):
    return [dict(c, key={k: v for k, v in c.get("key", {}).items() if k not in axes}) for c in cell_list]


def _essence(cell):
    v = C.verdict(cell)
    return v.gate() if v else ("unknown", C.metrics(cell)["verdict"])


def _key_words(key):
    return " ".join(f"{k}={C.plain(v)}" for k, v in key.items()) or "(no key)"


def _once(side, name, other, left_out):
    """UsageError when two cells of `side` (before and after leaving `left_out` out:
    [(original, matched)]) share a key that `other` has too: matching one of them
    would hide the other (keys on one side only are listed, each, as unmatched)."""
    first = {}
    for orig, c in side:
        k = C.key_id(c.get("key"))
        if k not in other:
            continue
        if k not in first:
            first[k] = orig
            continue
        if C.key_id(first[k].get("key")) == C.key_id(orig.get("key")):
            raise UsageError(f"{name} holds 2 cells of the key {_key_words(orig.get('key', {}))}",
                             "a result holds each cell once: is it two results joined?")
        raise UsageError(f"{name}: 2 cells have the key {_key_words(c['key'])} once "
                         f"{', '.join(left_out)} is left out",
                         "one of them would hide the other: --ignore fewer axes")


def split(report, axis, a_value, b_value):
    """One report as two sides: its cells whose key has axis=a_value, and those with
    b_value (shipped against prefix cells of the same kernel: --split vfio=shipped,prefix)."""
    sides = []
    for value in (a_value, b_value):
        picked = [c for c in C.cells(report) if C.plain(c.get("key", {}).get(axis)) == value]
        if not picked:
            raise UsageError(f"no cell of the report has {axis}={value}",
                             f"--split {axis}=A,B names two values of its {axis} axis")
        sides.append(dict(report, cells=picked))
    return sides


def axis_hints(only_a, only_b):
    """[{"axis", "pairs"}]: for each axis, how many (only-A, only-B) cell pairs have
    keys that differ in that axis alone, most first."""
    count = {}
    for x in only_a:
        for y in only_b:
            ka, kb = x["key"], y["key"]
            if set(ka) != set(kb):
                continue
            diff = [k for k in ka if C.key_id({k: ka[k]}) != C.key_id({k: kb[k]})]
            if len(diff) == 1:
                count[diff[0]] = count.get(diff[0], 0) + 1
    return [{"axis": k, "pairs": n} for k, n in sorted(count.items(), key=lambda kv: (-kv[1], kv[0]))]


def _why_none(b):
    return f"has none: {b.missing}" if b is not None else "ran without --explain"


def explain_change(ca, cb):
    """What moved between two cells' breakdowns (see the module doc), or None when
    neither side has an explain section."""
    ba, bb = X.of(ca), X.of(cb)
    has_a, has_b = ba is not None and not ba.missing, bb is not None and not bb.missing
    if ba is None and bb is None:
        return None
    if has_a and has_b:
        changes = X.moved(ba, bb)
        top = next((c["segment"] for c in changes if c["p50"]["abs"] is not None), None)
        # a segment one side folded into a neighbour: that neighbour is not like for like
        na, nb = [n for n, _ in ba.segments], [n for n, _ in bb.segments]
        folded = [f"{n} (A only)" for n in na if n not in nb] + [f"{n} (B only)" for n in nb if n not in na]
        words = X.moved_words(changes) + (f"; not on both sides: {', '.join(folded)}, folded into a "
                                          "neighbour on the other" if folded else "")
        return {"moved": top, "words": words, "segments": changes, "one_side_segments": folded}
    if not has_a and not has_b:
        return {"one_side": None, "words": f"no breakdown on either side (A {_why_none(ba)}; "
                                           f"B {_why_none(bb)})"}
    side, other, why = ("A", "B", _why_none(bb)) if has_a else ("B", "A", _why_none(ba))
    return {"one_side": side, "words": f"the breakdown is on {side} only ({other} {why})"}


def compare(a, b, a_name="A", b_name="B", ignore=(), allow_missing=False):
    """The comparison (see the module doc).  `ignore`: key axes to leave out when
    matching cells, on top of those that differ only between the sides;
    `allow_missing`: cells on one side only do not fail the gate."""
    if a.get("kind") != b.get("kind"):
        raise UsageError(f"cannot compare a {a.get('kind')} result ({a_name}) with a "
                         f"{b.get('kind')} result ({b_name})", "compare two runs or two repro reports")
    ca, cb = C.cells(a), C.cells(b)
    split = side_axes(ca, cb)
    _, const_a = C.axes_of(ca)
    _, const_b = C.axes_of(cb)
    axis_changes = [{"field": f"cell {x}", "a": const_a[x], "b": const_b[x]} for x in split]
    left_out = [x for x in dict.fromkeys([*split, *ignore]) if any(x in c.get("key", {}) for c in ca + cb)]
    pa, pb = list(zip(ca, _without(ca, left_out))), list(zip(cb, _without(cb, left_out)))
    ca, cb = [c for _, c in pa], [c for _, c in pb]
    _once(pa, a_name, {C.key_id(c.get("key")) for c in cb}, left_out)
    _once(pb, b_name, {C.key_id(c.get("key")) for c in ca}, left_out)
    varying, _ = C.axes_of(ca + cb)
    label = lambda key: C.key_label(key, varying or None)
    by_b = {C.key_id(c["key"]): c for c in cb}
    ids_a = {C.key_id(c["key"]) for c in ca}
    matched, only_a = [], []
    for c in ca:
        other = by_b.get(C.key_id(c["key"]))
        if other is None:
            only_a.append({"key": c["key"], "label": label(c["key"]), "verdict": c.get("verdict")})
            continue
        ma, mb = C.metrics(c), C.metrics(other)
        changed = _essence(c) != _essence(other)
        matched.append({
            "key": c["key"], "label": label(c["key"]), "verdict_changed": changed,
            "a": ma, "b": mb,
            "delta": {f: _delta(ma[f], mb[f])
                      for f in ("delivered", "lost", "p50_us", "p99_us", "throughput_per_s")},
            "explain": explain_change(c, other)})
    only_b = [{"key": c["key"], "label": label(c["key"]), "verdict": c.get("verdict")}
              for c in cb if C.key_id(c["key"]) not in ids_a]
    matched.sort(key=lambda r: not r["verdict_changed"])     # stable: A's order otherwise
    vchanges = [{"key": r["key"], "label": r["label"], "a": r["a"]["verdict"], "b": r["b"]["verdict"]}
                for r in matched if r["verdict_changed"]]
    empty = "A" if cb and not ca else "B" if ca and not cb else None
    unmatched = len(only_a) + len(only_b)
    return {"kind": "compare",
            "a": {"name": a_name, "kind": a.get("kind"), "host": C.host_line(a)},
            "b": {"name": b_name, "kind": b.get("kind"), "host": C.host_line(b)},
            "host_changes": axis_changes + host_changes(a, b), "matched_without": split + list(ignore),
            "verdict_changes": vchanges,
            "cells": matched, "only_a": only_a, "only_b": only_b,
            "axis_hints": axis_hints(only_a, only_b),
            "summary": {"matched": len(matched), "unmatched": unmatched, "changed": len(vchanges)},
            "empty": empty, "allow_missing": bool(allow_missing),
            "changed": bool(vchanges or empty or (unmatched and not allow_missing))}


def _fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


def _dfmt(d, spec="{:+.1f}"):
    if d is None:
        return ""
    pct = f" ({d['pct']:+.0f}%)" if d.get("pct") is not None else ""
    return spec.format(d["abs"]) + pct


def render(result):
    """The comparison as text: hosts, host facts that differ, verdict changes, then a
    table of every matched cell (A -> B with deltas), then cells on one side only."""
    a, b = result["a"], result["b"]
    out = [f"A: {a['name']} ({a['kind']}, {a['host']})", f"B: {b['name']} ({b['kind']}, {b['host']})"]
    if result["host_changes"]:
        out.append("host facts that differ:")
        for h in result["host_changes"]:
            out.append(f"  {h['field']}: {h['a']} -> {h['b']}")
    if result.get("matched_without"):
        out.append("cells matched without: " + ", ".join(result["matched_without"]))
    vc = result["verdict_changes"]
    out.append(f"verdict changes: {len(vc)}" if vc else "verdict changes: none")
    for v in vc:
        out.append(f"  {v['label']}: {v['a']} -> {v['b']}")
    if result["cells"]:
        header = ["cell", "verdict A -> B", "delivered", "lost", "p50 us A -> B", "p50 delta",
                  "p99 us A -> B", "p99 delta", "per s delta"]
        body = []
        for r in result["cells"]:
            ma, mb, d = r["a"], r["b"], r["delta"]
            verdict = ma["verdict"] if not r["verdict_changed"] else f"{ma['verdict']} -> {mb['verdict']}"
            body.append([
                r["label"], ("* " if r["verdict_changed"] else "") + (verdict or "?"),
                f"{_fmt(ma['delivered'], '{}')} -> {_fmt(mb['delivered'], '{}')}",
                f"{_fmt(ma['lost'], '{}')} -> {_fmt(mb['lost'], '{}')}",
                f"{_fmt(ma['p50_us'])} -> {_fmt(mb['p50_us'])}", _dfmt(d["p50_us"]),
                f"{_fmt(ma['p99_us'])} -> {_fmt(mb['p99_us'])}", _dfmt(d["p99_us"]),
                _dfmt(d["throughput_per_s"], "{:+.0f}")])
        widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)]
        line = lambda cs: "  ".join(c.ljust(w) for c, w in zip(cs, widths)).rstrip()
        out += ["cells:", line(header), line(["-" * w for w in widths])] + [line(r) for r in body]
    out += _segment_lines(result["cells"])
    for side, items in (("A", result["only_a"]), ("B", result["only_b"])):
        if items:
            out.append(f"only in {side}: " + "; ".join(f"{i['label']} ({i['verdict']})" for i in items))
    for h in result.get("axis_hints", ()):
        out.append(f"{h['pairs']} cell(s) only in A and only in B differ only by {h['axis']}: "
                   f"to match them, --ignore {h['axis']}")
    out.append(summary_line(result))
    return "\n".join(out)


def _arrow(d):
    if d["a"] is None or d["b"] is None:
        return f"{_fmt(d['a'])} -> {_fmt(d['b'])}"
    return f"{_fmt(d['a'])} -> {_fmt(d['b'])} ({d['abs']:+.1f})"


def _segment_lines(matched):
    """Per cell run with --explain: the segment that moved, then each segment's p50
    and p99 (us, A -> B) in order of change; or why there is nothing to compare."""
    rows = [r for r in matched if r.get("explain")]
    if not rows:
        return []
    out = ["where the time went (segments, us, A -> B; the largest p50 change first):"]
    for r in rows:
        ex = r["explain"]
        out.append(f"  {r['label']}: {ex['words']}")
        table = [[s["segment"], f"p50 {_arrow(s['p50'])}", f"p99 {_arrow(s['p99'])}"]
                 for s in ex.get("segments") or ()]
        widths = [max((len(t[i]) for t in table), default=0) for i in range(3)]
        out += ["    " + "  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip() for t in table]
    return out


def summary_line(result):
    """One line: the counts, and why the gate failed (or that it passed)."""
    n = result["summary"]
    why = []
    if result.get("empty"):
        other = "B" if result["empty"] == "A" else "A"
        why.append(f"{result['empty']} has no cell, {other} has some")
    if n["changed"]:
        why.append(f"{n['changed']} verdict(s) changed")
    if n["unmatched"] and not result.get("allow_missing"):
        why.append(f"{n['unmatched']} cell(s) on one side only (--allow-missing to accept)")
    return (f"summary: {n['matched']} matched, {n['unmatched']} unmatched, {n['changed']} changed: "
            + ("DIFFERENT (" + "; ".join(why) + ")" if why else "same"))
