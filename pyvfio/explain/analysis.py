"""The auto-analysis of one round trip, in rtla timerlat's manner: each segment in
microseconds and in % of the whole, the tasks that ran instead of the measuring
thread, the host IRQs that fired in between, and whose time the most of it was."""

from .segments import SEGMENT

RULE = "-" * 72


def analysis(kept, title):
    """The contract's <analysis> for one kept round trip (segments.Breakdown.kept)."""
    rtt, seq, seg, blocking, host_irqs = kept
    pct = {s: round(100.0 * ns / rtt, 2) if rtt else 0.0 for s, ns in seg.items()}
    blk = sorted(({"comm": c, "pid": p, "ns": ns} for (c, p), ns in blocking.items()),
                 key=lambda b: -b["ns"])
    irqs = sorted(({"irq": i, "name": n, "count": k} for (i, n), k in host_irqs.items()),
                  key=lambda h: (-h["count"], h["irq"] if h["irq"] is not None else -1))
    out = {"seq": seq, "round_trip_ns": rtt, "segments_ns": dict(seg), "percent": pct,
           "blocking": blk, "host_irqs": irqs}
    out["text"] = text(out, title)
    return out


def text(a, title):
    rtt = a["round_trip_ns"]
    lines = [f"## {title}: interrupt {a['seq']}, round trip {rtt / 1e3:.2f} us ##"]
    for s in a["segments_ns"]:        # in round-trip order
        label = f"{s} ({SEGMENT[s].span}):"
        lines.append(f"  {label:<48} {a['segments_ns'][s] / 1e3:10.2f} us ({a['percent'][s]:.2f} %)")
        if s == "wakeup" and a["blocking"]:
            lines.append("  Blocking thread(s):")
            lines += [f"  {'':8}{b['comm']}:{b['pid']:<28} {b['ns'] / 1e3:10.2f} us" for b in a["blocking"]]
    if a["host_irqs"]:
        lines.append("  Host IRQs in between:")
        lines += [f"  {'':8}{h['irq']} {h['name']:<30} {h['count']}x" for h in a["host_irqs"]]
    lines.append(RULE)
    lines.append(f"  {'round trip:':<48} {rtt / 1e3:10.2f} us (100 %)")
    top = max(a["segments_ns"], key=a["segments_ns"].get)
    lines.append(f"  most of it: {top}, {a['percent'][top]:.1f} %: {SEGMENT[top].owner}")
    return "\n".join(lines)
