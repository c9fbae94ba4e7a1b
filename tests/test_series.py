"""The latency series a run carries (pyvfio/series.py): one point per batch window,
decimated past MAX_POINTS, and what histogram.Window reads of a batch."""
from pyvfio.histogram import Histogram, Window
from pyvfio.series import MAX_POINTS, Series

from test_engine import run


def test_a_window_sees_only_what_its_batch_recorded():
    h = Histogram()
    for v in (1_000, 2_000, 3_000_000):          # before: a 3 ms outlier not in the window
        h.record(v)
    w = Window(h)
    for v in [5_000] * 9 + [900_000]:
        h.record(v)
    n, p50, top = w.close()
    assert n == 10 and 5_000 <= p50 <= 5_100 and 900_000 <= top <= 900_000 * 1.016   # bucket precision
    assert Window(h).close() == (0, None, None)


def test_a_long_run_is_decimated_and_keeps_its_outlier_and_its_count():
    s = Series()
    for i in range(3 * MAX_POINTS):
        s.add(i * 0.2, (i + 1) * 10, 10, 5_000, 5_000_000 if i == 700 else 9_000)
    pts = s.to_json()
    assert len(pts) <= MAX_POINTS
    assert sum(p["n"] for p in pts) == 30 * MAX_POINTS
    assert max(p["max_us"] for p in pts) == 5_000.0
    assert [p["t_s"] for p in pts] == sorted(p["t_s"] for p in pts)
    assert pts[-1]["delivered"] == 30 * MAX_POINTS


def test_a_run_carries_its_round_trip_series_and_a_stall_ends_it():
    _, r = run("ioapic", policy="unlazy", loops=300)
    pts = r.to_json()["series"]["round_trip"]
    assert pts and sum(p["n"] for p in pts) == 300 and pts[-1]["delivered"] == 300
    assert all(p["p50_us"] <= p["max_us"] for p in pts)
    _, r = run()                                           # xive lazy non-2.3: stall after 1
    assert sum(p["n"] for p in r.to_json()["series"]["round_trip"]) == 1
