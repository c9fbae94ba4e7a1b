"""The toy guest: one level-triggered virtual interrupt line, a virtual interrupt
controller with guest EOI, and a handler that services the card through its
profile.

It follows what QEMU does for a passed-through INTx line (hw/vfio/pci.c): the
host's trigger eventfd asserts the guest's line; the guest's handler reads and
acknowledges the card's cause; the guest's EOI deasserts the line and is
forwarded to the host as the unmask, by ioctl or through the unmask (resample)
eventfd.  An MSI takes the same path with an EOI of no step (an edge: nothing on
the host to unmask).  The C engine (csrc/loop.c) is this handler, compiled.
"""


class VirtualIntc:
    """A virtual interrupt controller with one level line and guest EOI."""

    def __init__(self, handler, forward_eoi):
        self.handler = handler          # the guest's ISR: returns the cause it serviced
        self.forward_eoi = forward_eoi  # the EOI's way back to the host (unmask)
        self.level = False
        self.in_service = False
        self.delivered = 0

    def set_level(self, level):
        self.level = level
        if level and not self.in_service:
            return self._deliver()
        return None

    def _deliver(self):
        self.in_service = True
        self.delivered += 1
        cause = self.handler()
        self.eoi()
        return cause

    def eoi(self):
        """Guest EOI: end service, deassert the line, unmask the host line."""
        self.in_service = False
        self.level = False
        self.forward_eoi()


class Guest:
    """A guest owning one card's INTx line through `intx` (a pyvfio.intx.DeviceIrq)."""

    def __init__(self, intx, profile, eoi=None):
        """`eoi`: where the guest's EOI goes when not to `intx.eoi` (the model host's
        KVM resampler: the kernel unmasks, userspace does nothing)."""
        self.intx = intx
        self.profile = profile
        self.intc = VirtualIntc(profile.program("ack"), eoi or intx.eoi)

    def on_trigger(self):
        """The host signalled the trigger eventfd: assert the virtual line.
        Returns the cause the handler found on the card (0: spurious)."""
        return self.intc.set_level(True)
