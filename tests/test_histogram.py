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
