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

Every sequence is data: `Intx.seq` holds lists of steps, each a `SetIrqs` (one
VFIO_DEVICE_SET_IRQS) or an `EventfdWrite` (an 8-byte write of 1, eventfd_signal),
built once when INTx is first enabled.  The consumers replay the same steps:
- Python (`Intx.eoi()/rearm()/...`, the Python engine): `step.run(host)`, which
  goes through `host.set_irqs` with the step's decoded form, on any host;
- the C loop (engine/c_engine.py, csrc/loop.c): the step's encoded form
  (`kind`, `fd`, `req`, `buf`: a ready `struct vfio_irq_set`), which exists only
  on a real vfio device (it encodes with `Device.encode_irq_set`);
- a KVM guest: `seq.enable` as is, then KVM_IRQFD with the trigger eventfd and,
  in eventfd mode, the unmask eventfd as its resamplefd; KVM then does the
  per-interrupt EOI (`seq.eoi` is what it replaces).
"""

from dataclasses import dataclass

import errno

from . import uapi
from .errors import UsageError, VfioError
from .eventfd import EventFd

INTX = uapi.VFIO_PCI_INTX_IRQ_INDEX
_TRIGGER_EVENTFD = uapi.VFIO_IRQ_SET_ACTION_TRIGGER | uapi.VFIO_IRQ_SET_DATA_EVENTFD
_TRIGGER_NONE = uapi.VFIO_IRQ_SET_ACTION_TRIGGER | uapi.VFIO_IRQ_SET_DATA_NONE
_UNMASK_NONE = uapi.VFIO_IRQ_SET_ACTION_UNMASK | uapi.VFIO_IRQ_SET_DATA_NONE
_UNMASK_EVENTFD = uapi.VFIO_IRQ_SET_ACTION_UNMASK | uapi.VFIO_IRQ_SET_DATA_EVENTFD
_MASK_NONE = uapi.VFIO_IRQ_SET_ACTION_MASK | uapi.VFIO_IRQ_SET_DATA_NONE

UNMASK_MODES = ("ioctl", "eventfd")


@dataclass(frozen=True, eq=False)
class SetIrqs:
    """VFIO_DEVICE_SET_IRQS on INTx.  Decoded: flags, start, count, data (EventFd
    objects or -1, for DATA_EVENTFD).  Encoded (a real device only): the device
    fd, the request and `buf`, the struct vfio_irq_set with its data[]."""
    kind = "ioctl"
    what: str
    flags: int
    start: int
    count: int
    data: tuple | None
    fd: int = -1
    req: int = 0
    buf: bytearray | None = None

    def run(self, host):
        host.set_irqs(INTX, self.flags, self.start, self.count, self.data)


@dataclass(frozen=True, eq=False)
class EventfdWrite:
    """An 8-byte write of 1 to an eventfd (the unmask eventfd: eventfd_signal)."""
    kind = "write"
    what: str
    efd: EventFd
    req = 0
    buf = None

    @property
    def fd(self):
        return self.efd.fileno()

    def run(self, host):
        self.efd.signal()


@dataclass(frozen=True)
class Sequences:
    """Every SET_IRQS sequence of one Intx, for its eventfds."""
    enable: list
    disable: list
    eoi: list       # per interrupt: unmask by the chosen mode, or (--rearm-each) rearm
    rearm: list     # disable + enable: free_irq + request_irq on the host
    unmask: list
    mask: list
    loopback: list


def run_steps(host, steps):
    for step in steps:
        step.run(host)


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
        self.seq = None
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

    # --- the sequences ---------------------------------------------------------------
    def _set_irqs(self, what, flags, count, data=None):
        # only a real device has fds and buffers to encode; the model host's steps
        # stay decoded (they run through its set_irqs)
        encode = getattr(self.host, "encode_irq_set", None)
        if encode is None:
            return SetIrqs(what, flags, 0, count, data)
        return SetIrqs(what, flags, 0, count, data, self.host.fd, uapi.VFIO_DEVICE_SET_IRQS,
                       encode(INTX, flags, 0, count, data))

    def _build(self):
        s = self._set_irqs
        eventfd = self.unmask_mode == "eventfd"
        enable = [s("VFIO_DEVICE_SET_IRQS (TRIGGER|EVENTFD)", _TRIGGER_EVENTFD, 1, (self.trigger,))]
        disable = [s("VFIO_DEVICE_SET_IRQS (TRIGGER|NONE, count 0)", _TRIGGER_NONE, 0)]
        if eventfd:
            enable.append(s("VFIO_DEVICE_SET_IRQS (UNMASK|EVENTFD)", _UNMASK_EVENTFD, 1, (self.unmask_efd,)))
            disable.insert(0, s("VFIO_DEVICE_SET_IRQS (UNMASK|EVENTFD, fd -1)", _UNMASK_EVENTFD, 1, (-1,)))
        unmask = [s("VFIO_DEVICE_SET_IRQS (UNMASK|NONE)", _UNMASK_NONE, 1)]
        rearm = disable + enable
        if self.rearm_each:
            eoi = rearm
        elif eventfd:
            eoi = [EventfdWrite("write unmask eventfd", self.unmask_efd)]
        else:
            eoi = unmask
        return Sequences(enable, disable, eoi, rearm, unmask,
                         [s("VFIO_DEVICE_SET_IRQS (MASK|NONE)", _MASK_NONE, 1)],
                         [s("VFIO_DEVICE_SET_IRQS (TRIGGER|NONE)", _TRIGGER_NONE, 1)])

    # --- running them ------------------------------------------------------------------
    def enable(self):
        """Arm the trigger eventfd (and the unmask eventfd in eventfd mode)."""
        if self.seq is None:
            self.trigger = EventFd()
            if self.unmask_mode == "eventfd":
                self.unmask_efd = EventFd()
            self.seq = self._build()
        try:
            run_steps(self.host, self.seq.enable)
        except VfioError as exc:
            raise self._explained(exc) from None
        self.enabled = True

    def _explained(self, exc):
        """EBUSY from the trigger: vfio-pci asked for an exclusive line (it masks at
        the controller: DisINTx- or nointxmask=1) and request_irq found it shared.
        Name who holds it, as doctor predicts."""
        holders = getattr(self.host, "line_holders", None)
        if exc.errno != errno.EBUSY or holders is None:
            return exc
        irq, others = holders()
        if not others:
            return exc
        return VfioError(exc.op, exc.errno,
                         f"{exc.message}: IRQ {irq} is shared with {', '.join(others)} and vfio-pci "
                         "requests it exclusively when it masks at the controller (DisINTx- or "
                         "nointxmask=1)",
                         "stop the other holder (its driver or interface), or load vfio-pci with "
                         "nointxmask=0 for a card with DisINTx")

    def eoi(self):
        """The guest's EOI reaches the host: unmask by the chosen mode (or rearm)."""
        run_steps(self.host, self.seq.eoi)

    def unmask(self):
        run_steps(self.host, self.seq.unmask)

    def mask(self):
        run_steps(self.host, self.seq.mask)

    def loopback(self):
        """Signal the trigger in software (no card involved)."""
        run_steps(self.host, self.seq.loopback)

    def disable(self):
        """Unregister the unmask eventfd, then disable INTx (the host frees its IRQ)."""
        if not self.enabled:
            return
        self.enabled = False
        run_steps(self.host, self.seq.disable)

    def rearm(self):
        """Disable and re-enable INTx: free_irq + request_irq on the host, which
        re-arms an interrupt controller source left stuck by a lazy disable."""
        self.enabled = False
        run_steps(self.host, self.seq.rearm)
        self.enabled = True

    def close(self):
        try:
            self.disable()
        finally:
            for efd in (self.trigger, self.unmask_efd):
                if efd is not None:
                    efd.close()
            self.trigger = self.unmask_efd = self.seq = None

    def __enter__(self):
        self.enable()
        return self

    def __exit__(self, *exc):
        self.close()
