"""The INTx protocol, in one place (drivers/vfio/pci/vfio_pci_intrs.c is the other end).

- trigger: SET_IRQS ACTION_TRIGGER|DATA_EVENTFD; the host masks the line and
  signals the eventfd on each interrupt (VFIO_IRQ_INFO_AUTOMASKED);
- unmask: ACTION_UNMASK|DATA_NONE (an ioctl per interrupt: QEMU without a KVM
  resampler, POWER9+), or ACTION_UNMASK|DATA_EVENTFD registered once and written
  per interrupt (KVM's irqfd resampler);
- mask: ACTION_MASK|DATA_NONE (ACTION_MASK|DATA_EVENTFD is not implemented);
- loopback: ACTION_TRIGGER|DATA_NONE signals the trigger in software;
- disable: ACTION_TRIGGER|DATA_NONE with count 0 (free_irq on the host).
Service the card before unmasking: on a PCI 2.3 device an unmask while the card
still asserts its line re-signals the trigger at once.
"""

from . import uapi
from .errors import UsageError
from .eventfd import EventFd

INTX = uapi.VFIO_PCI_INTX_IRQ_INDEX
_TRIGGER_EVENTFD = uapi.VFIO_IRQ_SET_ACTION_TRIGGER | uapi.VFIO_IRQ_SET_DATA_EVENTFD
_TRIGGER_NONE = uapi.VFIO_IRQ_SET_ACTION_TRIGGER | uapi.VFIO_IRQ_SET_DATA_NONE
_UNMASK_NONE = uapi.VFIO_IRQ_SET_ACTION_UNMASK | uapi.VFIO_IRQ_SET_DATA_NONE
_UNMASK_EVENTFD = uapi.VFIO_IRQ_SET_ACTION_UNMASK | uapi.VFIO_IRQ_SET_DATA_EVENTFD
_MASK_NONE = uapi.VFIO_IRQ_SET_ACTION_MASK | uapi.VFIO_IRQ_SET_DATA_NONE

UNMASK_MODES = ("ioctl", "eventfd")


class Intx:
    """A device's INTx line, driven from the guest side.

    `unmask_mode` chooses how `eoi()` unmasks the host line: "ioctl" or "eventfd".
    With `rearm_each`, `eoi()` instead disables and re-enables INTx (the userspace
    workaround for a host whose lazy disable leaves the controller stuck).
    Use as a context manager; leaving it disables INTx and closes the eventfds.
    """

    def __init__(self, host, unmask_mode="ioctl", rearm_each=False):
        if unmask_mode not in UNMASK_MODES:
            raise UsageError(f"unknown unmask mode {unmask_mode!r}",
                             f"use one of: {', '.join(UNMASK_MODES)}")
        self.host = host
        self.unmask_mode = unmask_mode
        self.rearm_each = rearm_each
        self.trigger = None
        self.unmask_efd = None
        self.enabled = False

    def check_info(self):
        """INTx must exist (count 1) and be an eventfd, maskable, automasked line."""
        info = self.host.irq_info(INTX)
        want = uapi.VFIO_IRQ_INFO_EVENTFD | uapi.VFIO_IRQ_INFO_MASKABLE | uapi.VFIO_IRQ_INFO_AUTOMASKED
        if info.count < 1:
            raise UsageError(f"{self.host.bdf} has no INTx interrupt (no pin or no IRQ routed)",
                             "choose a card whose config space shows an interrupt pin")
        if info.flags & want != want:
            raise UsageError(f"{self.host.bdf}: INTx flags {info.flags:#x} lack EVENTFD|MASKABLE|AUTOMASKED",
                             "this host's vfio-pci does not offer the INTx protocol pyvfio drives")
        return info

    def enable(self):
        """Arm the trigger eventfd (and the unmask eventfd in eventfd mode)."""
        if self.trigger is None:
            self.trigger = EventFd()
        self.host.set_irqs(INTX, _TRIGGER_EVENTFD, 0, 1, [self.trigger])
        self.enabled = True
        if self.unmask_mode == "eventfd":
            if self.unmask_efd is None:
                self.unmask_efd = EventFd()
            self.host.set_irqs(INTX, _UNMASK_EVENTFD, 0, 1, [self.unmask_efd])

    def unmask(self):
        """ACTION_UNMASK by ioctl."""
        self.host.set_irqs(INTX, _UNMASK_NONE, 0, 1)

    def eoi(self):
        """The guest's EOI reaches the host: unmask by the chosen mode."""
        if self.rearm_each:
            self.rearm()
        elif self.unmask_efd is not None:
            self.unmask_efd.signal()
        else:
            self.host.set_irqs(INTX, _UNMASK_NONE, 0, 1)

    def mask(self):
        self.host.set_irqs(INTX, _MASK_NONE, 0, 1)

    def loopback(self):
        """Signal the trigger in software (no card involved)."""
        self.host.set_irqs(INTX, _TRIGGER_NONE, 0, 1)

    def disable(self):
        """Unregister the unmask eventfd, then disable INTx (the host frees its IRQ)."""
        if not self.enabled:
            return
        self.enabled = False
        if self.unmask_efd is not None:
            self.host.set_irqs(INTX, _UNMASK_EVENTFD, 0, 1, [-1])
        self.host.set_irqs(INTX, _TRIGGER_NONE, 0, 0)

    def rearm(self):
        """Disable and re-enable INTx: free_irq + request_irq on the host, which
        re-arms an interrupt controller source left stuck by a lazy disable."""
        self.disable()
        self.enable()

    def close(self):
        try:
            self.disable()
        finally:
            for efd in (self.trigger, self.unmask_efd):
                if efd is not None:
                    efd.close()
            self.trigger = self.unmask_efd = None

    def __enter__(self):
        self.enable()
        return self

    def __exit__(self, *exc):
        self.close()
