"""The interrupt protocols, in one place (drivers/vfio/pci/vfio_pci_intrs.c is the
other end): INTx, and MSI/MSI-X beside it.

INTx:

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

MSI and MSI-X (vector 0; vfio_pci_set_msi_trigger):
- trigger: ACTION_TRIGGER|DATA_EVENTFD on the MSI or MSIX index enables the
  vectors (pci_alloc_irq_vectors) and requests vfio-msi[0](BDF) / vfio-msix[0](BDF);
- no unmask and no mask: a message is an edge, nothing stays asserted, so the
  per-interrupt EOI is no step at all (vfio-pci implements no ACTION_MASK/UNMASK
  for them: ENOTTY);
- loopback and disable as for INTx (DATA_NONE, count 1 and count 0);
- a message is a memory write by the card, which it makes only with Bus Master
  on: enable sets COMMAND.MASTER through vfio's config region (vfio-pci passes
  the bit through; a driver's pci_set_master), disable puts back what was there.
vfio-pci enables MSI only while INTx is off (and the reverse): one kind per DeviceIrq.

Every sequence is data: `DeviceIrq.seq` holds lists of steps, each a `SetIrqs` (one
VFIO_DEVICE_SET_IRQS) or an `EventfdWrite` (an 8-byte write of 1, eventfd_signal),
built once when INTx is first enabled.  The consumers replay the same steps:
- Python (`DeviceIrq.eoi()/rearm()/...`, the Python engine): `step.run(host)`, which
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
from .vocabulary import VFIO_UNMASK, Irq, words

INTX = uapi.VFIO_PCI_INTX_IRQ_INDEX
# --irq: the kind -> its VFIO_PCI_*_IRQ_INDEX
IRQ_KINDS = {Irq.INTX.value: INTX, Irq.MSI.value: uapi.VFIO_PCI_MSI_IRQ_INDEX,
             Irq.MSIX.value: uapi.VFIO_PCI_MSIX_IRQ_INDEX}
_KIND_NAMES = {"intx": "INTx", "msi": "MSI", "msix": "MSI-X"}
_TRIGGER_EVENTFD = uapi.VFIO_IRQ_SET_ACTION_TRIGGER | uapi.VFIO_IRQ_SET_DATA_EVENTFD
_TRIGGER_NONE = uapi.VFIO_IRQ_SET_ACTION_TRIGGER | uapi.VFIO_IRQ_SET_DATA_NONE
_UNMASK_NONE = uapi.VFIO_IRQ_SET_ACTION_UNMASK | uapi.VFIO_IRQ_SET_DATA_NONE
_UNMASK_EVENTFD = uapi.VFIO_IRQ_SET_ACTION_UNMASK | uapi.VFIO_IRQ_SET_DATA_EVENTFD
_MASK_NONE = uapi.VFIO_IRQ_SET_ACTION_MASK | uapi.VFIO_IRQ_SET_DATA_NONE

UNMASK_MODES = words(VFIO_UNMASK)


@dataclass(frozen=True, eq=False)
class SetIrqs:
    """VFIO_DEVICE_SET_IRQS on one IRQ index.  Decoded: flags, start, count, data
    (EventFd objects or -1, for DATA_EVENTFD), index.  Encoded (a real device only):
    the device fd, the request and `buf`, the struct vfio_irq_set with its data[]."""
    kind = "ioctl"
    what: str
    flags: int
    start: int
    count: int
    data: tuple | None
    fd: int = -1
    req: int = 0
    buf: bytearray | None = None
    index: int = INTX

    def run(self, host):
        host.set_irqs(self.index, self.flags, self.start, self.count, self.data)


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
    """Every SET_IRQS sequence of one DeviceIrq, for its eventfds."""
    enable: list
    disable: list
    eoi: list       # per interrupt: unmask by the chosen mode, or (--rearm-each) rearm; MSI: none
    rearm: list     # disable + enable: free_irq + request_irq on the host
    unmask: list | None   # None: MSI/MSI-X, which vfio-pci cannot mask or unmask
    mask: list | None
    loopback: list


def run_steps(host, steps):
    for step in steps:
        step.run(host)


class DeviceIrq:
    """A device's interrupt, driven from the guest side: its INTx line (`irq`
    "intx", the default), or vector 0 of its MSI or MSI-X ("msi", "msix").

    `unmask_mode` chooses how `eoi()` unmasks the host line: "ioctl" or "eventfd".
    With `rearm_each`, `eoi()` instead disables and re-enables INTx (the userspace
    workaround for a host whose lazy disable leaves the controller stuck).  Both
    are INTx's: an MSI has no line to unmask or re-arm, and its `eoi()` does nothing.
    Use as a context manager; leaving it disables the interrupt and closes the eventfds.
    """

    def __init__(self, host, unmask_mode="ioctl", rearm_each=False, irq="intx"):
        check_kind(irq, unmask_mode, rearm_each)
        self.host = host
        self.irq = irq
        self.index = IRQ_KINDS[irq]
        self.unmask_mode = unmask_mode
        self.rearm_each = rearm_each
        self.trigger = None
        self.unmask_efd = None
        self.seq = None
        self.enabled = False
        self.master_was = None    # COMMAND.MASTER before an MSI enable set it

    @property
    def name(self):
        return _KIND_NAMES[self.irq]

    def check_info(self):
        """INTx must exist (count 1) and be an eventfd, maskable, automasked line; an
        MSI or MSI-X must exist (count >= 1: the card has the capability) and take an eventfd."""
        info = self.host.irq_info(self.index)
        if self.irq != "intx":
            if info.count < 1:
                raise UsageError(f"{self.host.bdf} has no {self.name} (VFIO_DEVICE_GET_IRQ_INFO counts 0 "
                                 f"vectors: the card has no {self.name} capability)",
                                 f"use --irq intx (pyvfio info {self.host.bdf} lists the card's interrupts)")
            if not info.flags & uapi.VFIO_IRQ_INFO_EVENTFD:
                raise UsageError(f"{self.host.bdf}: {self.name} flags {info.flags:#x} lack EVENTFD",
                                 f"this host's vfio-pci does not signal {self.name} through an eventfd")
            return info
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
        # `what` names the step in errors: "VFIO_DEVICE_SET_IRQS (MSI TRIGGER|EVENTFD)";
        # INTx's go unnamed, as they always have
        what = f"VFIO_DEVICE_SET_IRQS ({'' if self.irq == 'intx' else self.name + ' '}{what})"
        # only a real device has fds and buffers to encode; the model host's steps
        # stay decoded (they run through its set_irqs)
        encode = self.host.encode_irq_set
        if encode is None:
            return SetIrqs(what, flags, 0, count, data, index=self.index)
        return SetIrqs(what, flags, 0, count, data, self.host.fd, uapi.VFIO_DEVICE_SET_IRQS,
                       encode(self.index, flags, 0, count, data), self.index)

    def _build(self):
        s = self._set_irqs
        enable = [s("TRIGGER|EVENTFD", _TRIGGER_EVENTFD, 1, (self.trigger,))]
        disable = [s("TRIGGER|NONE, count 0", _TRIGGER_NONE, 0)]
        loopback = [s("TRIGGER|NONE", _TRIGGER_NONE, 1)]
        if self.irq != "intx":  # an edge: no EOI, no mask
            return Sequences(enable, disable, [], disable + enable, None, None, loopback)
        eventfd = self.unmask_mode == "eventfd"
        if eventfd:
            enable.append(s("UNMASK|EVENTFD", _UNMASK_EVENTFD, 1, (self.unmask_efd,)))
            disable.insert(0, s("UNMASK|EVENTFD, fd -1", _UNMASK_EVENTFD, 1, (-1,)))
        unmask = [s("UNMASK|NONE", _UNMASK_NONE, 1)]
        rearm = disable + enable
        if self.rearm_each:
            eoi = rearm
        elif eventfd:
            eoi = [EventfdWrite("write unmask eventfd", self.unmask_efd)]
        else:
            eoi = unmask
        return Sequences(enable, disable, eoi, rearm, unmask,
                         [s("MASK|NONE", _MASK_NONE, 1)], loopback)

    # --- running them ------------------------------------------------------------------
    def enable(self):
        """Arm the trigger eventfd (and the unmask eventfd in eventfd mode)."""
        if self.seq is None:
            self.trigger = EventFd()
            if self.unmask_mode == "eventfd":
                self.unmask_efd = EventFd()
            self.seq = self._build()
        if self.irq != "intx" and self.master_was is None:
            self.master_was = bus_master(self.host, True)
        try:
            run_steps(self.host, self.seq.enable)
        except VfioError as exc:
            raise self._explained(exc) from None
        self.enabled = True

    def _explained(self, exc):
        """EBUSY from the trigger: vfio-pci asked for an exclusive line (it masks at
        the controller: DisINTx- or nointxmask=1) and request_irq found it shared.
        Name who holds it, as doctor predicts."""
        holders = self.host.line_holders
        if exc.errno != errno.EBUSY or holders is None or self.irq != "intx":
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
        run_steps(self.host, self._line_only(self.seq.unmask, "unmask"))

    def mask(self):
        run_steps(self.host, self._line_only(self.seq.mask, "mask"))

    def _line_only(self, steps, what):
        if steps is None:
            raise UsageError(f"{self.name} cannot {what}: vfio-pci masks only the INTx line",
                             "use --irq intx to mask and unmask")
        return steps

    def loopback(self):
        """Signal the trigger in software (no card involved)."""
        run_steps(self.host, self.seq.loopback)

    def disable(self):
        """Unregister the unmask eventfd, then disable the interrupt (the host frees
        its IRQ); after an MSI, Bus Master goes back to what it was."""
        if not self.enabled:
            return
        self.enabled = False
        try:
            run_steps(self.host, self.seq.disable)
        finally:
            if self.master_was is False:   # the card makes no memory writes once more
                bus_master(self.host, False)
            self.master_was = None

    def rearm(self):
        """Disable and re-enable the interrupt: free_irq + request_irq on the host,
        which re-arms an interrupt controller source left stuck by a lazy disable."""
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


def bus_master(host, on):
    """Set or clear the card's COMMAND.MASTER; returns whether it was set.  vfio-pci
    leaves it as found, and a card's MSI message and its DMA are both memory writes
    that go nowhere without it: the one home of that bit, for both."""
    config = host.region(uapi.VFIO_PCI_CONFIG_REGION_INDEX)
    command = config.read(uapi.PCI_COMMAND, 2)
    bit = uapi.PCI_COMMAND_MASTER
    config.write(uapi.PCI_COMMAND, 2, command | bit if on else command & ~bit)
    return bool(command & bit)


def check_kind(irq, unmask_mode="ioctl", rearm_each=False):
    """`irq` is a kind pyvfio drives, and the INTx-only modes are asked of INTx only."""
    if irq not in IRQ_KINDS:
        raise UsageError(f"unknown interrupt kind {irq!r}", f"use one of: {', '.join(IRQ_KINDS)}")
    if unmask_mode not in UNMASK_MODES:
        raise UsageError(f"unknown unmask mode {unmask_mode!r}",
                         f"use one of: {', '.join(UNMASK_MODES)}")
    if irq == "intx":
        return
    name = _KIND_NAMES[irq]
    if unmask_mode != "ioctl":
        raise UsageError(f"--unmask {unmask_mode} unmasks the INTx line; {name} is an edge with nothing "
                         "to unmask", "drop --unmask, or use --irq intx")
    if rearm_each:
        raise UsageError(f"--rearm-each re-arms the INTx line after every interrupt; {name} has no line",
                         "drop --rearm-each, or use --irq intx")
