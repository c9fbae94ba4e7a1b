"""Latency histograms: the fixed-size log-bucketed layout of csrc/hist.h (7
significant bits, ~1.6% precision, 1 ns to 2^40 ns, 18 KiB each whatever the
number of samples), percentiles, and HdrHistogram's .hgrm text format."""

import math

from ._binding import ffi, lib

SUB_BITS = lib.PYVFIO_HIST_SUB_BITS
HALF = 1 << (SUB_BITS - 1)
PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99)


def bucket_range(idx):
    """[low, high] of the values recorded at bucket index `idx`."""
    if idx < 2 * HALF:
        return idx, idx
    b = idx // HALF - 1
    sub = idx - HALF * b
    return sub << b, ((sub + 1) << b) - 1


class Histogram:
    def __init__(self):
        self.c = ffi.new("struct pyvfio_hist *")

    def record(self, ns):
        lib.pyvfio_hist_record(self.c, ns)

    @property
    def count(self):
        return self.c.count

    def buckets(self):
        b = self.c.buckets
        return [(i, b[i]) for i in range(lib.PYVFIO_HIST_LEN) if b[i]]

    def merge(self, other):
        a, o = self.c, other.c
        if o.count == 0:
            return
        for i, n in other.buckets():
            a.buckets[i] += n
        a.min = o.min if a.count == 0 else min(a.min, o.min)
        a.max = max(a.max, o.max)
        a.count += o.count
        a.sum += o.sum
        a.overflow += o.overflow

    def percentile(self, p):
        """The highest value equivalent to the p-th percentile (HdrHistogram's rule),
        capped at the recorded maximum; None when empty."""
        if self.c.count == 0:
            return None
        want = max(1, math.ceil(self.c.count * p / 100.0))
        seen = 0
        for i, n in self.buckets():
            seen += n
            if seen >= want:
                return min(bucket_range(i)[1], self.c.max)
        return self.c.max

    def summary(self):
        """min/avg/percentiles/max in microseconds (None when empty)."""
        c = self.c
        if c.count == 0:
            return {"count": 0}
        out = {"count": c.count, "min_us": c.min / 1e3, "avg_us": c.sum / c.count / 1e3}
        for p in PERCENTILES:
            out[f"p{p:g}_us"] = self.percentile(p) / 1e3
        out["max_us"] = c.max / 1e3
        if c.overflow:
            out["overflow"] = c.overflow
        return out

    def to_json(self):
        return {**self.summary(), "layout": f"log2 buckets, {SUB_BITS} significant bits, ns",
                "buckets": {str(i): n for i, n in self.buckets()}}

    def hgrm(self, unit_ns=1000.0):
        """HdrHistogram's percentile-distribution text (values in microseconds)."""
        lines = [f"{'Value':>12} {'Percentile':>14} {'TotalCount':>10} {'1/(1-Percentile)':>14}", ""]
        total, seen = self.c.count, 0
        for i, n in self.buckets():
            seen += n
            frac = seen / total
            inv = "inf" if frac >= 1 else f"{1 / (1 - frac):14.2f}"
            lines.append(f"{min(bucket_range(i)[1], self.c.max) / unit_ns:12.3f} {frac:14.12f} {seen:10d} {inv:>14}")
        if total:
            mean = self.c.sum / total / unit_ns
            var = sum(n * ((sum(bucket_range(i)) / 2 / unit_ns) - mean) ** 2 for i, n in self.buckets()) / total
            lines.append(f"#[Mean    = {mean:12.3f}, StdDeviation   = {math.sqrt(var):12.3f}]")
            lines.append(f"#[Max     = {self.c.max / unit_ns:12.3f}, Total count    = {total:12d}]")
            lines.append(f"#[Buckets = {lib.PYVFIO_HIST_LEN // HALF:12d}, SubBuckets     = {2 * HALF:12d}]")
        return "\n".join(lines) + "\n"


class Window:
    """What one histogram gained between two moments (a batch): its sample count,
    p50 and max in ns, at bucket precision.  A copy of the bucket array (a memcpy)
    at the start; the difference, read once, at the end (csrc/hist.h
    pyvfio_hist_gain: in C, as it runs between every two batches of a run)."""

    def __init__(self, hist):
        self.hist = hist
        self.before = bytes(ffi.buffer(hist.c.buckets))
        self.count0 = hist.c.count

    def close(self):
        """(n, p50_ns, max_ns), or (0, None, None) when nothing was recorded."""
        n = self.hist.c.count - self.count0
        if n <= 0:
            return 0, None, None
        got = ffi.new("int[2]")
        lib.pyvfio_hist_gain(self.hist.c, ffi.from_buffer("uint64_t[]", self.before), max(1, math.ceil(n / 2)),
                             got, got + 1)
        p50, top = got[0], got[1]
        cap = self.hist.c.max
        return n, min(bucket_range(p50)[1], cap), min(bucket_range(top)[1], cap)
