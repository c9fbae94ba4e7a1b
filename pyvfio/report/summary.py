"""The human-readable table of a repro report (or a run): one line per cell.

Columns: the key axes that vary between cells (the constant ones go in a header
line), verdict, expected and match (when the report has expectations),
delivered/raised, lost, p50 and p99 round trip in microseconds and throughput
(when measured: a model cell has none), /proc/interrupts and controller
deliveries (when a model host counted them), and the model host's prediction
(when the report has one).  Where the irq axis varies, lines follow that set each
MSI cell against the INTx cells of the same machine and axes (p50, p99, per s).
Under those, a cell run with --explain gets one line: its segments' p50 (or why
it has no breakdown).
"""

from ..results import axis
from . import cells as C
from . import explain as X


def _num(v, fmt="{:.1f}"):
    return "-" if v is None else fmt.format(v)


def rows(report):
    """(header, rows, constant axes) of the table, as strings."""
    cl = C.cells(report)
    varying, constant = C.axes_of(cl)
    has_expect = any(c.get("expected") is not None for c in cl)
    has_model = any(c.get("predicted") is not None for c in cl)
    has_timing = any(c.get("latency") or c.get("throughput_per_s") is not None for c in cl)
    has_counts = any(c.get("controller_deliveries") is not None for c in cl)   # a model host's
    header = list(varying) + ["verdict"] + (["expected", "match"] if has_expect else []) + [
        "delivered", "lost"] + (["p50 us", "p99 us", "per s"] if has_timing else []) + (
        ["/proc/interrupts", "controller deliveries"] if has_counts else []) + (
        ["model host"] if has_model else [])
    out = []
    for c in cl:
        m = C.metrics(c)
        key = c.get("key", {})
        row = [C.plain(key[a]) if a in key else "" for a in varying]
        row.append(m["verdict"] or "?")
        if has_expect:
            row.append(m["expected"] or "-")
            row.append({True: "yes", False: "NO"}.get(m["match"], "-"))
        raised = m["raised"]
        row.append(f"{_num(m['delivered'], '{}')}/{raised}" if raised is not None
                   else _num(m["delivered"], "{}"))
        row.append(_num(m["lost"], "{}"))
        if has_timing:
            row += [_num(m["p50_us"]), _num(m["p99_us"]), _num(m["throughput_per_s"], "{:.0f}")]
        if has_counts:
            row += [_num(c.get("host_interrupts"), "{}"), _num(c.get("controller_deliveries"), "{}")]
        if has_model:  # what the model host predicts for the same cell
            row.append(C.text(c.get("predicted")) or "-")
        out.append(row)
    return header, out, constant


def table(report):
    """The table as text, with a header line naming the host and the constant axes,
    and a closing line counting verdicts (and mismatches)."""
    header, body, constant = rows(report)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [C.host_line(report) + (f"; {report['backend']} backend" if report.get("backend") else "")]
    if constant:
        out.append("all cells: " + ", ".join(f"{a}={C.plain(v)}" for a, v in constant.items()))
    out += [line(header), line(["-" * w for w in widths])] + [line(r) for r in body]
    cl = C.cells(report)
    counts = {}
    for c in cl:
        k = C.verdict_class(c)
        counts[k] = counts.get(k, 0) + 1
    tail = ", ".join(f"{n} {k}" for k, n in counts.items())
    mism = sum(1 for c in cl if c.get("match") is False)
    if any(c.get("match") is not None for c in cl):
        tail += f"; {mism} not as expected" if mism else "; all as expected"
    out.append(f"{len(cl)} cell(s): {tail}")
    out += irq_differences(cl)
    out += breakdowns(cl)
    return "\n".join(out)


def breakdowns(cl):
    """"segments p50 us (LABEL): raise 3.0, hardirq 2.0, ..." per cell run with
    --explain; "no breakdown (LABEL): why" where it says missing."""
    varying, _ = C.axes_of(cl)
    out = []
    for c in cl:
        b = X.of(c)
        if b is None:
            continue
        label = C.key_label(c.get("key", {}), varying or None)
        if b.missing:
            out.append(f"no breakdown ({label}): {b.missing}")
            continue
        lost = f"; {b.unattributed} not attributed" if b.unattributed else ""
        out.append(f"segments p50 us ({label}): {X.p50_line(b)}{lost}")
    return out


# what an MSI cell leaves out of its key (it has no line to mask or unmask)
_INTX_ONLY = ("irq", "policy", "unmask")


def _change(a, b, fmt):
    if a is None or b is None:
        return "-"
    pct = f" ({(b - a) / a * 100:+.0f}%)" if a else ""
    return f"{fmt.format(a)} -> {fmt.format(b)}{pct}"


def irq_differences(cl):
    """"msi against intx" lines: every message cell against each INTx cell that
    differs from it only in the INTx axes (irq, policy, unmask)."""
    varying, _ = C.axes_of(cl)
    if "irq" not in varying:
        return []
    rest = [a for a in varying if a not in _INTX_ONLY]
    same = lambda c: tuple(C.plain(c["key"].get(a)) for a in rest)  # noqa: E731
    out = []
    for msg in (c for c in cl if axis(c["key"], "irq") != "intx"):
        m = C.metrics(msg)
        for line in (c for c in cl if axis(c["key"], "irq") == "intx" and same(c) == same(msg)):
            i = C.metrics(line)
            where = C.key_label(msg["key"], rest)
            how = C.key_label(line["key"], [a for a in ("policy", "unmask") if a in varying])
            out.append(f"{msg['key']['irq']} against intx{f' ({how})' if how != 'run' else ''}"
                       f"{f' on {where}' if where != 'run' else ''}: "
                       f"p50 {_change(i['p50_us'], m['p50_us'], '{:.1f}')} us, "
                       f"p99 {_change(i['p99_us'], m['p99_us'], '{:.1f}')} us, "
                       f"per s {_change(i['throughput_per_s'], m['throughput_per_s'], '{:.0f}')}")
    return out
