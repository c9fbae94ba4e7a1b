"""The device request IRQ (VFIO_PCI_REQ_IRQ_INDEX): vfio-pci signals it when the
kernel wants the device back (hot-unplug, a driver unbind) and then waits, asking
again every 10 s, until userspace closes the device.  Without it a run holds a
card that is being removed until its loop count or duration ends.

`DeviceRequest(dev, on_request)` arms it with an eventfd and watches it from a
thread; `on_request()` is called once, from that thread, on the first request.  By
default it sends this process SIGTERM: the run then ends as on a signal (teardown,
partial results) and closes the device, so that the removal can finish."""
import os
import select
import signal
import threading

from .. import uapi
from ..eventfd import EventFd
from ..errors import PyvfioError, VfioError

_ARM = uapi.VFIO_IRQ_SET_DATA_EVENTFD | uapi.VFIO_IRQ_SET_ACTION_TRIGGER
_DISARM = uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_ACTION_TRIGGER


class DeviceRequest:
    def __init__(self, dev, on_request=None):
        self.dev = dev
        self.on_request = on_request or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self.requested = False
        self.efd = None
        self._thread = None
        self._stop_r = self._stop_w = None

    def __enter__(self):
        try:
            info = self.dev.irq_info(uapi.VFIO_PCI_REQ_IRQ_INDEX)
        except (PyvfioError, AttributeError):   # no such index (the model host): nothing to watch
            return self
        if not info.count:
            return self
        self.efd = EventFd()
        self.dev.set_irqs(uapi.VFIO_PCI_REQ_IRQ_INDEX, _ARM, 0, 1, [self.efd])
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._watch, name="vfio-device-request", daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        p = select.poll()
        p.register(self.efd.fileno(), select.POLLIN)
        p.register(self._stop_r, select.POLLIN)
        while True:
            fds = {fd for fd, _ev in p.poll()}
            if self._stop_r in fds:
                return
            if self.efd.consume() and not self.requested:
                self.requested = True
                self.on_request()

    def __exit__(self, *exc):
        if self.efd is None:
            return False
        os.write(self._stop_w, b"x")
        self._thread.join()
        try:
            self.dev.set_irqs(uapi.VFIO_PCI_REQ_IRQ_INDEX, _DISARM, 0, 0)
        except VfioError:
            pass   # the device is going away
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        os.close(self.efd.fileno())
        return False
