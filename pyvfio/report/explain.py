"""Reading a cell's `explain` section (`pyvfio run --explain`): where each round
trip's time went, segment by segment (docs/results.md).  Every report that shows
the breakdown (the summary table, compare, the HTML page, the CI formats) reads
it through here.

    of(cell) -> Breakdown | None     # None: the cell ran without --explain
    Breakdown.missing                # why there is no breakdown (then no segments), or None
    Breakdown.segments               # [(name, histogram dict)], in the round trip's order
    Breakdown.p50s() -> {name: us}
    Breakdown.bar() -> (stat, [(name, us, percent)])   # what a stacked bar draws
    moved(a, b) -> [change, ...]     # per segment p50/p99 before -> after, largest first
    order(breakdowns) -> [name]      # every segment named, in the round trip's order
    MEANING[name]                    # what a segment is, in docs/results.md's words

Tolerant by design: a section that says `missing`, a segment list shorter than
the seven (the kernel gave no event between two of them: folded into a
neighbour), a segment named in `segments` with no histogram (left out), and a
segment this pyvfio does not know (shown under its own name).
"""

from dataclasses import dataclass, field

from ..explain.segments import SEGMENT

# What each segment is, for people (a legend).  Their order is the result's own
# (`segments`, the round trip's order): no second list of them here.
MEANING = {name: s.meaning for name, s in SEGMENT.items()}


@dataclass
class Breakdown:
    missing: str | None = None
    segments: list = field(default_factory=list)   # [(name, histogram dict)]
    explained: int | None = None
    unattributed: int | None = None
    worst: dict | None = None
    breaches: list = field(default_factory=list)

    def stat(self, key):
        """{segment: value} of one histogram field (p50_us, p99_us, avg_us), where present."""
        return {n: h[key] for n, h in self.segments if isinstance(h.get(key), (int, float))}

    def p50s(self):
        return self.stat("p50_us")

    def bar(self):
        """(stat, [(segment, us, percent of the whole)]) for a stacked bar: the means
        when every segment has one (means add up: the bar is the mean round trip),
        else the p50s (then said so: p50s do not add up to the round trip's)."""
        for stat, key in (("mean", "avg_us"), ("p50", "p50_us")):
            vals = self.stat(key)
            if self.segments and len(vals) == len(self.segments):
                total = sum(vals.values())
                return stat, [(n, vals[n], vals[n] / total * 100.0 if total else 0.0)
                              for n, _ in self.segments]
        return None, []


def of(cell):
    """The cell's Breakdown, or None when it carries no `explain` section."""
    ex = cell.get("explain") if isinstance(cell, dict) else None
    if not isinstance(ex, dict):
        return None
    if ex.get("missing"):
        return Breakdown(missing=str(ex["missing"]))
    lat = ex.get("latency") if isinstance(ex.get("latency"), dict) else {}
    names = ex.get("segments") if isinstance(ex.get("segments"), list) else list(lat)
    segs = [(n, lat[n]) for n in names if isinstance(lat.get(n), dict) and lat[n].get("count")]
    if not segs:
        return Breakdown(missing="the result's explain section holds no segment with samples")
    worst = ex.get("worst") if isinstance(ex.get("worst"), dict) else None
    return Breakdown(segments=segs, explained=ex.get("explained"), unattributed=ex.get("unattributed"),
                     worst=worst, breaches=[b for b in ex.get("breaches") or () if isinstance(b, dict)])


def order(breakdowns):
    """Every segment the breakdowns name, in the round trip's order: each file's list
    is in that order, and a segment one of them folded goes in after the one before
    it in a list that has it."""
    out = []
    for b in breakdowns:
        names = [n for n, _ in b.segments]
        for i, n in enumerate(names):
            if n not in out:
                before = next((names[j] for j in range(i - 1, -1, -1) if names[j] in out), None)
                out.insert(out.index(before) + 1 if before else 0, n)
    return out


def p50_line(b):
    """"raise 3.1, hardirq 2.0, ..." (us): the segments' p50s in order."""
    return ", ".join(f"{n} {us:.1f}" for n, us in b.p50s().items())


def moved(a, b):
    """Per segment on both sides, p50 and p99 before -> after (us), the segment
    whose p50 changed most first: [{"segment", "p50": {"a", "b", "abs"}, "p99": ...}].
    Segments on one side only (folded on the other) are left out: no like for like."""
    sa, sb = dict(a.segments), dict(b.segments)
    out = []
    for name in [n for n, _ in a.segments if n in sb]:
        row = {"segment": name}
        for stat in ("p50", "p99"):
            x, y = sa[name].get(f"{stat}_us"), sb[name].get(f"{stat}_us")
            row[stat] = {"a": x, "b": y, "abs": (y - x) if x is not None and y is not None else None}
        out.append(row)
    out.sort(key=lambda r: -abs(r["p50"]["abs"] or 0.0))   # stable: the round trip's order on ties
    return out


def moved_words(changes):
    """"moved: handler +48.2 us (p50)": the segment whose p50 changed most."""
    top = next((c for c in changes if c["p50"]["abs"] is not None), None)
    if top is None:
        return "moved: nothing to compare (no segment has a p50 on both sides)"
    return f"moved: {top['segment']} {top['p50']['abs']:+.1f} us (p50)"
