"""The interrupt cycle the lab tests drive, and its loss detector.

One cycle: the card raises INTx, the trigger eventfd must fire within `timeout`,
the guest acknowledges the card, then unmasks the host line (unless told to skip
it: a deliberately broken guest).  A cycle whose eventfd never fires is a lost
interrupt; the loop stops there (the line is stuck) and reports how many got through.
"""
import dataclasses
import os

# Set to 1 to break every unmask of the round-trip tests: they must then fail.
BREAK_UNMASK = os.environ.get("PYVFIO_LAB_BREAK_UNMASK") == "1"


@dataclasses.dataclass
class Result:
    wanted: int
    delivered: int = 0
    causes: list = dataclasses.field(default_factory=list)

    @property
    def lost(self):
        return self.wanted - self.delivered

    def __str__(self):
        return f"{self.delivered} of {self.wanted} interrupts delivered, {self.lost} lost"


def run(profile, intx, n, timeout=1.0, unmask=True):
    res = Result(n)
    for _ in range(n):
        profile.raise_irq()
        if not intx.trigger.wait(timeout):
            profile.ack()  # leave the card quiet for whoever comes next
            break
        res.delivered += 1
        res.causes.append(profile.ack())
        if unmask and not BREAK_UNMASK:
            intx.eoi()
    return res
