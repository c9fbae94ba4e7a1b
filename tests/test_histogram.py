from pyvfio.histogram import Histogram, bucket_range


def test_percentiles_within_precision():
    h = Histogram()
    for v in range(1, 10001):
        h.record(v * 1000)  # 1 us .. 10 ms
    s = h.summary()
    assert s["count"] == 10000 and s["min_us"] == 1.0 and s["max_us"] == 10000.0
    assert abs(s["p50_us"] - 5000) / 5000 < 0.02
    assert abs(s["p99_us"] - 9900) / 9900 < 0.02
    assert abs(s["avg_us"] - 5000.5) < 1e-6


def test_every_value_lands_in_a_bucket_that_contains_it():
    for v in [0, 1, 127, 128, 129, 255, 256, 1000, 65535, 10**6, 123456789, 2**40 - 1]:
        h = Histogram()
        h.record(v)
        [(idx, n)] = h.buckets()
        lo, hi = bucket_range(idx)
        assert n == 1 and lo <= v <= hi
        assert hi - lo + 1 <= max(1, v // 64)  # 7 significant bits


def test_memory_is_fixed_and_merge_adds():
    a, b = Histogram(), Histogram()
    for v in (100, 200, 300):
        a.record(v)
    b.record(10**9)
    a.merge(b)
    assert a.count == 4 and a.c.max == 10**9 and a.percentile(100) == 10**9


def test_hgrm_format():
    h = Histogram()
    for v in (1000, 2000, 3000):
        h.record(v)
    text = h.hgrm()
    assert text.splitlines()[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    assert "#[Max     =        3.000, Total count    =            3]" in text


def _state(h):
    c = h.c
    return c.count, c.min, c.max, c.sum, c.overflow, h.buckets()


def test_recording_a_chunk_at_once_is_recording_each():
    """pyvfio_hist_record_n (the C loop bins its samples a chunk at a time) leaves a
    histogram exactly as one pyvfio_hist_record per value: onto an empty one and onto
    one that already holds values, overflow and zero included."""
    from pyvfio._binding import ffi, lib
    chunks = [[5_000, 0, 2**41, 127, 128, 7_000_000], [3, 9_999, 2**40 - 1, 2**40], []]
    one, many = Histogram(), Histogram()
    for chunk in chunks:
        for v in chunk:
            one.record(v)
        lib.pyvfio_hist_record_n(many.c, ffi.new("uint64_t[]", chunk or 1), len(chunk))
        assert _state(many) == _state(one)
    assert one.c.count == 10 and one.c.overflow == 2 and one.c.min == 0
    later = Histogram()
    lib.pyvfio_hist_record_n(later.c, ffi.new("uint64_t[]", [900, 800]), 2)
    assert (later.c.count, later.c.min, later.c.max, later.c.sum) == (2, 800, 900, 1700)
