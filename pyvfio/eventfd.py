"""eventfd(2) objects, the currency of VFIO's INTx protocol.

`EventFd` owns one kernel eventfd.  `waiters` mirrors the kernel's eventfd wait
queue: callbacks run, in the signaller's context, on every `signal()`.  The real
host never uses them (the kernel holds its own wait queue); the model host does,
for its virqfd (drivers/vfio/virqfd.c: virqfd_wakeup runs on eventfd_signal).
"""

import os
import select

from .fdowner import FdOwner


class EventFd(FdOwner):
    __slots__ = ("fd", "waiters", "_poll", "__weakref__")

    def __init__(self, initval=0):
        self.fd = os.eventfd(initval, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.waiters = []
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)

    def fileno(self):
        return self.fd

    def signal(self, n=1):
        """eventfd_signal(): add n to the counter and wake the waiters."""
        os.eventfd_write(self.fd, n)
        for wake in self.waiters:
            wake(self)

    def consume(self):
        """Read and reset the counter; 0 if it was not signalled (non-blocking)."""
        try:
            return os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0

    def wait(self, timeout):
        """Wait up to `timeout` seconds (None: forever) and consume; 0 on timeout."""
        try:  # the common case under load: already signalled, no poll needed
            return os.eventfd_read(self.fd)
        except BlockingIOError:
            pass
        if not self._poll.poll(-1 if timeout is None else max(0, int(timeout * 1000))):
            return 0
        return self.consume()

    def close(self):
        self.close_fd()
        self.waiters.clear()

    def __repr__(self):
        return f"<EventFd fd={self.fd}>"
