"""Ctrl-C and SIGTERM held off while pyvfio puts the host back or saves what it
measured (vfio-pci's parameter reloaded, a scenario's results written): a signal
then is remembered and acted on after, instead of leaving the module half-reloaded
or the cells unsaved.  Everywhere else they raise KeyboardInterrupt (cli/__init__.py)."""
import contextlib
import signal

HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def held():
    """Yields a list that collects the signals that came meanwhile.  Main thread only."""
    got = []
    old = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in HELD}
    try:
        yield got
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
