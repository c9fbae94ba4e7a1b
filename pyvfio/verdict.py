"""The verdict of a run, as data: one rule for every producer (the engine's Run, the
model host, a cell that could not run) and every reader (match, tables, pictures,
compare).

    ok                            every raise was delivered
    stall after N                 N delivered, then a raise whose trigger never came
                                  while the card had it pending
    stall after N, recovered Kx   the same, and every one of the K stalls was
                                  re-armed and the run went on
    lost N                        N raises with no trigger and nothing pending either
    profile: ...                  the card's profile (or the card) is wrong, not the
                                  kernel: FAULTS below, each named by what was seen
    error: ...                    the cell could not run

A profile fault is never ok and never a stall (the kernel's word).  "stall" needs a
cause the card showed pending while no trigger came; a raise whose cause never
showed (every raise lost, nothing delivered) is the profile's raise program or the
card, and so is a cause that was still set after the ack, and a run whose every
trigger found no cause (the ack reads the wrong register or bit).  pyvfio run exits
8 (pyvfio.errors.EXIT_PROFILE) for these and for any lost raise.

"Recovered" only when EVERY stall was recovered.  A run whose last stall was not
recovered ended on a dead line, exactly as if recovery had never been tried:
calling it recovered would hide the stall the user has to fix (and `pyvfio run`
exits 5 for it).  The rule that said "recovered" when any stall was differs only
when a re-arm failed, the case that must show.

A host that counts every controller delivery (the model) notes the spurious ones
per delivered interrupt: deliveries genirq took on its disabled path without
counting them in /proc/interrupts.  It is a measurement shown with an ok verdict
("ok, 1.00 spurious/irq"), never part of a match: a real kernel cannot see it.
"""

from dataclasses import asdict, dataclass, replace
from typing import Protocol

STATES = ("ok", "stall", "lost", "profile", "error")

# A profile fault: its key in the JSON ("fault") and the words every reader shows.
FAULTS = {
    "uncleared": "profile: cause not cleared by ack",
    "spurious": "profile: every trigger spurious (cause never read as set)",
    "unraised": "profile: raise never asserted the cause",
}

# What each verdict class looks like in every picture (the SVG, the HTML page): one
# palette, so a stall is the same red wherever a person sees it.  "unknown": a cell
# whose file holds nothing to judge it by.
COLOURS = {"ok": "#9ad0a0", "stall": "#e57373", "recovered": "#ffc870", "lost": "#c79bd6",
           "profile": "#64b5f6", "error": "#9e9e9e", "unknown": "#dddddd"}
MISMATCH = "#c2185b"     # the frame of a cell whose verdict is not the one expected
LEGEND = (("ok", "ok"), ("stall", "stall"), ("recovered", "stall, recovered"), ("lost", "lost"),
          ("profile", "profile at fault"), ("error", "could not run"))
OPTIONAL = ("lost", "profile", "error")   # legend entries shown only where present


@dataclass(frozen=True)
class Verdict:
    state: str                          # one of STATES
    stalled_after: int | None = None    # stall: interrupts delivered before the first
    stalls: int = 0
    recovered: int = 0                  # stalls re-armed, the run going on
    lost: int = 0
    error: str | None = None
    fault: str | None = None            # profile: a key of FAULTS
    spurious_per_irq: float | None = None   # a model host's count (see the module doc)

    @property
    def all_recovered(self):
        return self.stalls > 0 and self.recovered == self.stalls

    @property
    def cls(self):
        """ok, stall, recovered, lost or error: what colours and counts go by."""
        return "recovered" if self.state == "stall" and self.all_recovered else self.state

    @property
    def text(self):
        if self.state == "stall":
            t = f"stall after {self.stalled_after}"
            return t + (f", recovered {self.recovered}x" if self.all_recovered else "")
        if self.state == "lost":
            return f"lost {self.lost}"
        if self.state == "profile":
            return FAULTS.get(self.fault, "profile: at fault")
        if self.state == "error":
            return f"error: {self.error}" if self.error else "error"
        if self.spurious_per_irq:
            return f"ok, {self.spurious_per_irq:.2f} spurious/irq"
        return "ok"

    def essence(self):
        """What a real run can observe and a match is judged on: the state, and where
        the line stalled or how many were lost (recoveries and the spurious count are
        detail)."""
        if self.state == "stall":
            return ("stall", self.stalled_after)
        if self.state == "lost":
            return ("lost", self.lost)
        if self.state == "profile":
            return ("profile", self.fault)
        return (self.state,)

    def gate(self):
        """What two results of one cell are compared on (compare, report across
        machines and against a baseline): the essence, and for a stall whether every
        one was recovered.  A run that re-armed its line (run exits 0) and one left on
        a dead line (exit 5) are different results, though both match an expected
        "stall after N"."""
        return self.essence() + (("recovered",) if self.cls == "recovered" else ())

    def matches(self, expected):
        """True/False, or None when there is no expectation."""
        return None if expected is None else self.essence() == expected.essence()

    def with_spurious(self, per_irq):
        return replace(self, spurious_per_irq=per_irq)

    def to_json(self):
        return {"text": self.text, "class": self.cls, **asdict(self)}

    @classmethod
    def from_json(cls, d):
        return cls(**{k: d.get(k) for k in ("state", "stalled_after", "error", "fault",
                                            "spurious_per_irq")},
                   **{k: d.get(k) or 0 for k in ("stalls", "recovered", "lost")})


def judge(stalls, lost=0, raised=0, delivered=0, spurious=0, uncleared=False):
    """THE rule.  `stalls`: [(delivered before it, recovered)] in order; `lost`: raises
    with no trigger and nothing pending on the card; `raised`, `delivered`,
    `spurious` (triggers that found no cause): the run's counts; `uncleared`: the
    ack's cause read still set after a batch every raise of which was delivered, or
    after the ack at a stall.
    The profile's faults come first: what looks like a stall or a loss there is the
    profile's doing (see the module doc)."""
    if uncleared:
        return Verdict("profile", fault="uncleared", lost=lost)
    if raised and not delivered and not stalls:
        if spurious:
            return Verdict("profile", fault="spurious", lost=lost)
        if lost:
            return Verdict("profile", fault="unraised", lost=lost)
    if stalls:
        return Verdict("stall", stalled_after=stalls[0][0], stalls=len(stalls),
                       recovered=sum(1 for _, r in stalls if r), lost=lost)
    if lost:
        return Verdict("lost", lost=lost)
    return Verdict("ok")


NOTHING = "nothing measured: the run ended before its first raise"


class JudgedRun(Protocol):
    """What of_run reads of a run (pyvfio.engine.Run)."""
    counts: object        # raised, delivered, spurious, lost (engine.Counts)
    stalls: list          # each with after_delivered and recovered (engine.Stall)
    external: bool        # the interrupts came from outside (--source external)
    interrupted: bool     # a signal stopped the run
    uncleared: int        # a cause the ack left set (the profile's fault), or 0


def of_run(run: JudgedRun):
    """The verdict of an engine Run.  A run that raised nothing (a -D shorter than
    its set-up) measured nothing: an error, never ok (an external source's silence
    is only a quiet period, and a stopped run says so itself)."""
    c = run.counts
    if not c.raised and not run.stalls and not run.external and not run.interrupted:
        return failed(NOTHING)
    return judge([(s.after_delivered, s.recovered) for s in run.stalls], c.lost, c.raised,
                 c.delivered, c.spurious, run.uncleared)


def of_run_json(d):
    """The verdict of a Run.to_json() dict: its "outcome", or for a file written
    before verdicts were data, the same rule over the stalls and counts it carries.
    None when the dict has neither (nothing to judge)."""
    if isinstance(d.get("outcome"), dict):
        return Verdict.from_json(d["outcome"])
    if d.get("error"):
        return failed(d["error"])
    stalls, counts = d.get("stalls"), d.get("counts")
    if not isinstance(stalls, list) or not isinstance(counts, dict):
        return None
    return judge([(s.get("after_delivered"), bool(s.get("recovered"))) for s in stalls],
                 counts.get("lost") or 0, counts.get("raised") or 0, counts.get("delivered") or 0,
                 counts.get("spurious_triggers") or 0)


def failed(message):
    return Verdict("error", error=str(message))


def failure(v):
    """Is this verdict a failed run that is not the kernel's (a lost raise, a profile
    fault)?  pyvfio run's exit 8 (pyvfio.errors.EXIT_PROFILE)."""
    return v.state == "profile" or v.lost > 0


def expectation(text):
    """An expected verdict as a scenario file writes it: "ok", "stall after N",
    "lost N", "error" or one of the profile faults' texts (FAULTS).  ValueError for
    anything else."""
    for fault, words in FAULTS.items():
        if text == words:
            return Verdict("profile", fault=fault)
    words = text.split() if isinstance(text, str) else []
    if words == ["ok"]:
        return Verdict("ok")
    if words == ["error"]:
        return Verdict("error")
    if len(words) == 3 and words[:2] == ["stall", "after"] and words[2].isdigit():
        return Verdict("stall", stalled_after=int(words[2]), stalls=1)
    if len(words) == 2 and words[0] == "lost" and words[1].isdigit():
        return Verdict("lost", lost=int(words[1]))
    raise ValueError(f"{text!r} is not a verdict: use \"ok\", \"stall after N\", \"lost N\", \"error\" "
                     "or a profile fault (\"profile: cause not cleared by ack\", ...)")
