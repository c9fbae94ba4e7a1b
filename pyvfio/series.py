"""Latency over time, decimated: one point per window of the run (a batch, ~0.2 s),
so a stall or a burst of outliers shows where it happened, not only in the
histogram.  At most MAX_POINTS points: past that, neighbours are merged two by
two (the later window's end, the counts summed, the higher max; the p50 of the
window that held more samples).  docs/results.md: `series`."""

MAX_POINTS = 512


class Series:
    def __init__(self):
        self.points = []

    def add(self, t_s, delivered, n, p50_ns, max_ns):
        """A window ending t_s seconds into the loop, `delivered` interrupts so far,
        n of its round trips with that p50 and max (ns)."""
        if n <= 0:
            return
        self.points.append({"t_s": round(t_s, 6), "delivered": delivered, "n": n,
                            "p50_us": p50_ns / 1e3, "max_us": max_ns / 1e3})
        if len(self.points) > MAX_POINTS:
            self.points = [merge(*self.points[i:i + 2]) for i in range(0, len(self.points), 2)]

    def to_json(self):
        return list(self.points)


def merge(a, b=None):
    if b is None:
        return a
    return {"t_s": b["t_s"], "delivered": b["delivered"], "n": a["n"] + b["n"],
            "p50_us": (a if a["n"] >= b["n"] else b)["p50_us"], "max_us": max(a["max_us"], b["max_us"])}
