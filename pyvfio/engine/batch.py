"""What one engine batch reports back to the runner."""

from dataclasses import dataclass

DONE, TIMEOUT, SIGNAL, ERROR = "done", "timeout", "signal", "error"


@dataclass
class Batch:
    delivered: int = 0
    spurious: int = 0        # triggers that found nothing pending on the card
    extra_signals: int = 0   # trigger counts above 1 in one read
    raised: int = 0
    last_cause: int = 0
    reason: str = DONE
    items: int = 0           # external: items the ack_external program drained
