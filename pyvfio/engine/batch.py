"""What one engine batch reports back to the runner: a value (Batch), never a write
into the Run it serves."""

from dataclasses import asdict, dataclass

DONE, TIMEOUT, SIGNAL, ERROR = "done", "timeout", "signal", "error"


@dataclass(frozen=True)
class Batch:
    delivered: int = 0
    spurious: int = 0        # triggers that found nothing pending on the card
    extra_signals: int = 0   # trigger counts above 1 in one read
    raised: int = 0
    last_cause: int = 0
    reason: str = DONE
    items: int = 0           # external: items the ack_external program drained
    last_arrival_ns: int = 0  # external: the last trigger's time (monotonic ns); 0: none seen


@dataclass
class Tally:
    """A batch as the Python engine counts it, in place, so that a Ctrl-C keeps
    what it counted; `batch()` is its value."""
    delivered: int = 0
    spurious: int = 0
    extra_signals: int = 0
    raised: int = 0
    last_cause: int = 0
    reason: str = DONE
    items: int = 0
    last_arrival_ns: int = 0

    def batch(self):
        return Batch(**asdict(self))
