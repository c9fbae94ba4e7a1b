"""The INTx engine: `Run` (run.py) drives a card's interrupts through a host, real or
model, on the C loop (c_engine.py, csrc/loop.c) or the Python reference
(python_engine.py); `pin_and_prioritise` (sched.py) places the measuring thread."""

from .run import ENGINES, HISTOGRAMS, MAX_LOOPS, SOURCES, Counts, Run, RunConfig, Stall
from .sched import pin_and_prioritise

__all__ = ["ENGINES", "HISTOGRAMS", "MAX_LOOPS", "SOURCES", "Counts", "Run", "RunConfig", "Stall",
           "pin_and_prioritise"]
