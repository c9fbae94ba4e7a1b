"""The model host asked one question directly, without the engine: how many of a few
interrupts does a card's INTx deliver on this controller under this disable policy?
Doctor's stall prediction is this answer (doctor/stall.py keeps only the wording)."""

from ..intx import DeviceIrq
from .card import EDU_IRQ_ACK, EDU_IRQ_RAISE, EDU_IRQ_STATUS
from .host import CONTROLLERS, ModelHost

CYCLES = 3


def delivered(controller, policy, card="non-2.3", cycles=CYCLES, **knobs):
    """Interrupts delivered before the first that never comes (`cycles`: all came),
    each raised, taken, acknowledged and unmasked as pyvfio's toy guest does."""
    host = ModelHost(controller, card, policy, **knobs)
    bar = host.region(0)
    got = 0
    with DeviceIrq(host) as ix:
        for _ in range(cycles):
            bar.write(EDU_IRQ_RAISE, 4, 1)
            if not ix.trigger.consume():
                break
            got += 1
            bar.write(EDU_IRQ_ACK, 4, bar.read(EDU_IRQ_STATUS, 4))
            ix.eoi()
    return got


def stalls_after(controller, lazy, **knobs):
    """After how many interrupts INTx masked at the controller stalls (None: it does
    not, or the model has no such controller)."""
    if controller not in CONTROLLERS:
        return None
    n = delivered(controller, "lazy" if lazy else "unlazy", **knobs)
    return None if n == CYCLES else n
