"""The human-readable table of a repro report (or a run): one line per cell.

Columns: the key axes that vary between cells (the constant ones go in a header
line), verdict, expected and match (when the report has expectations),
delivered/raised, lost, p50 and p99 round trip in microseconds and throughput
(when measured: a model cell has none), /proc/interrupts and controller
deliveries (when a model host counted them), and the model host's prediction
(when the report has one).
"""

from . import cells as C


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
    return "\n".join(out)
