"""Progress of work in parts (pyvfio/lab/progress.py Tracker): repro --lab's boots
and fleet run's places say what is done out of the total and the time left."""
from pyvfio.lab.progress import Tracker, duration


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_done_out_of_the_total_and_the_time_left_at_the_pace_so_far():
    clock, lines = Clock(), []
    t = Tracker("repro --lab ppc64le", 12, clock=clock, out=lines.append)
    clock.t += 60
    assert t.advance(4, note="boot 1 of 3 ended") == \
        "repro --lab ppc64le: 4/12 cell(s) done (boot 1 of 3 ended), 1m00s in; about 2m00s left"
    clock.t += 30
    t.advance(4)
    assert lines[-1] == "repro --lab ppc64le: 8/12 cell(s) done, 1m30s in; about 45s left"
    clock.t += 40
    assert t.advance(4) == "repro --lab ppc64le: 12/12 cell(s) done, 2m10s in"   # nothing left to say


def test_parts_at_once_and_a_known_deadline_shorten_the_estimate():
    clock = Clock()
    t = Tracker("fleet run", 4, unit="place(s)", parallel=2, clock=clock, out=lambda s: None)
    clock.t += 100
    assert t.advance(1).endswith("about 2m30s left")            # 100 s each, 3 left, 2 at once
    assert t.advance(1, bound=20).endswith("about 20s left")     # the deadline is nearer
    assert duration(59.6) == "1m00s" and duration(5) == "5s"
