"""The model device: card + controller + genirq + vfio-pci behind `IntxHost`.

    host = ModelHost(controller="xive", card="non-2.3", policy="lazy")

is a device the INTx engine drives exactly as it drives /dev/vfio: SET_IRQS,
IRQ info, a config-space region and BAR0 (an edu card).  Beyond what the real
host can report, `host_state()` returns what only a model can see: every
controller delivery (including the spurious ones genirq masks without counting
them in /proc/interrupts), genirq's and the controller's state.
"""

import errno

from .. import uapi
from ..errors import AccessError, UsageError, VfioError
from ..eventfd import EventFd
from ..vocabulary import SWITCHED, Access, CardKind, Controller, words
from . import card as card_mod
from .cpu import Cpu
from .genirq import IrqDesc
from .ioapic import IoApic, IoApicIrChip
from .kvm_irqfd import Resampler
from .trace import Trace
from .vfio_intx import (DATA_BOOL, DATA_EVENTFD, DATA_NONE, INTX, SetIrqsError, VfioPciIntx,
                         validate_set_irqs)
from .xics import VARIANTS as XICS_VARIANTS, Ics, IcsRtasChip
from .xive import XiveChip, XiveSource

CONTROLLERS = words(Controller)
CARDS = words(CardKind)
POLICIES = words(SWITCHED)   # the model's irq has one of the two; "kernel" is picked for it

_IRQ_BY_CONTROLLER = {"xive": 48, "xics": 4625, "ioapic": 11}   # plausible Linux IRQs
_R = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE


def _choice(kind, value, allowed):
    if value not in allowed:
        raise UsageError(f"unknown {kind} {value!r}", f"use one of: {', '.join(allowed)}")


_EDU_NAMES = {0x60: "raise (0x60)", 0x64: "acknowledge (0x64)", 0x24: "status (0x24)"}


class _ModelRegion:
    """A region of the model card.  `access` ("mmap" or "rw") is recorded but both
    behave alike: the model has no memory to map."""

    __slots__ = ("index", "size", "flags", "access", "_host", "_read", "_write", "_widths")

    def __init__(self, host, index, size, flags, read, write, widths, access="rw"):
        self.index, self.size, self.flags, self.access = index, size, flags, access
        self._host, self._read, self._write, self._widths = host, read, write, widths

    def _check(self, op, offset, width):
        if width not in self._widths:
            raise AccessError(op, f"region {self.index}: {width}-byte access refused",
                              f"use {' or '.join(map(str, self._widths))}-byte accesses")
        if offset < 0 or offset + width > self.size or offset % width:
            raise AccessError(op, f"region {self.index}: offset {offset:#x} width {width} "
                                  f"outside or misaligned (size {self.size:#x})")

    def read(self, offset, width):
        self._check("read", offset, width)
        cpu = self._host.cpu
        cpu.enter()
        try:
            value = self._read(offset, width)
        finally:
            cpu.leave()
        tr = self._host.trace
        if tr is not None and self.index == 0 and offset in _EDU_NAMES:
            tr.mark(f"user: BAR0 read {_EDU_NAMES[offset]} -> {value:#x}")
        return value

    def write(self, offset, width, value):
        self._check("write", offset, width)
        tr = self._host.trace
        if tr is not None:
            what = _EDU_NAMES.get(offset, hex(offset)) if self.index == 0 else f"config {offset:#x}"
            tr.mark(f"user: {'BAR0' if self.index == 0 else 'config'} write {what} = {value:#x}")
        cpu = self._host.cpu
        cpu.enter()
        try:
            self._write(offset, width, value)
        finally:
            cpu.leave()

    def accessor(self, offset, width, write):
        """The region's own checked access, bound to one register (backend.Region)."""
        call = self.write if write else self.read
        return lambda *value: call(offset, width, *value)


def _describe_set_irqs(index, flags, start, count, data):
    from . import vfio_intx as v
    action = {v.ACTION_MASK: "MASK", v.ACTION_UNMASK: "UNMASK",
              v.ACTION_TRIGGER: "TRIGGER"}.get(flags & v.ACTION_TYPE_MASK, f"{flags:#x}")
    dtype = {v.DATA_NONE: "NONE", v.DATA_BOOL: "BOOL",
             v.DATA_EVENTFD: "EVENTFD"}.get(flags & v.DATA_TYPE_MASK, "?")
    text = f"index {index} {action}|{dtype} start {start} count {count}"
    if dtype == "EVENTFD" and data is not None and count:
        text += " fd " + ("-1" if isinstance(data[0], int) else "set")
    return text


class ModelHost:
    """A model host for one legacy card.  See docs/model.md for each mechanism."""

    name = "model"
    bdf = "0000:00:04.0"
    # IntxHost's optional capabilities the model has not (guest_eoi: a property below)
    fd = encode_irq_set = line_holders = dma = None

    def __init__(self, controller="xive", card="non-2.3", policy="lazy", *,
                 nointxmask=False, xics_variant="qemu", xive_set_pq00_retriggers=False,
                 xive_eoi_skips_disabled=True, threaded=False, resampler=False, trace=None):
        _choice("controller", controller, CONTROLLERS)
        _choice("card", card, CARDS)
        _choice("policy", policy, POLICIES)
        _choice("XICS variant", xics_variant, XICS_VARIANTS)
        if trace is True:
            trace = Trace()
        self.trace = trace or None
        self.controller, self.policy = controller, policy
        tr = self.trace
        self.cpu = cpu = Cpu(tr)
        if controller == "xive":
            hw = XiveSource(cpu, tr, set_pq00_retriggers=xive_set_pq00_retriggers)
            chip = XiveChip(hw, tr, eoi_skips_disabled=xive_eoi_skips_disabled)
        elif controller == "xics":
            hw = Ics(cpu, tr, variant=xics_variant)
            chip = IcsRtasChip(hw, tr)
        else:
            hw = IoApic(cpu, tr)
            chip = IoApicIrChip(hw, tr)
        self.hw, self.chip = hw, chip
        # threaded: a PREEMPT_RT (or threadirqs) kernel, genirq's forced threading
        self.desc = desc = IrqDesc(_IRQ_BY_CONTROLLER[controller], chip, level=True, trace=tr,
                                   force_irqthreads=threaded)
        chip.desc = desc
        hw.deliver = self._deliver
        self.card = card_mod.LegacyCard(card == "2.3", hw.set_irq,
                                        irq_line=desc.irq & 0xFF, trace=tr)
        # policy "unlazy" is a kernel with 8b9f128947dd (or the policy module
        # setting IRQ_DISABLE_UNLAZY); "lazy" one without.  It matters only
        # when vfio masks at the controller (non-2.3 card, or nointxmask).
        self.vfio = VfioPciIntx(self.card, desc, cpu, nointxmask=nointxmask,
                                fix_unlazy=(policy == "unlazy"), trace=tr)
        # resampler: a KVM guest owns the line; its EOI unmasks through KVM (kvm_irqfd.py)
        self.resampler = Resampler(cpu, tr) if resampler else None
        self._regions = {
            uapi.VFIO_PCI_CONFIG_REGION_INDEX: _ModelRegion(
                self, uapi.VFIO_PCI_CONFIG_REGION_INDEX, card_mod.CONFIG_SIZE, _R,
                self._config_read, self._config_write, (1, 2, 4)),
            uapi.VFIO_PCI_BAR0_REGION_INDEX: _ModelRegion(
                self, uapi.VFIO_PCI_BAR0_REGION_INDEX, card_mod.EDU_BAR0_SIZE,
                _R | uapi.VFIO_REGION_INFO_FLAG_MMAP,
                self._bar0_read, self._bar0_write, (4,)),
        }

    def _deliver(self):
        """The CPU takes the interrupt: generic_handle_irq -> the flow handler, then
        (forced threading) the irq thread it woke."""
        self.desc.handle_fasteoi_irq()
        self.desc.irq_thread()

    @property
    def guest_eoi(self):
        """The guest's EOI when KVM's resampler serves it (None: the guest forwards
        its EOI from userspace, DeviceIrq.eoi)."""
        return self.resampler.irqfd_resampler_ack if self.resampler is not None else None

    # -- IntxHost -------------------------------------------------------------

    def irq_info(self, index):
        """VFIO_DEVICE_GET_IRQ_INFO (vfio_pci_ioctl_get_irq_info)."""
        from ..backend import IrqInfo
        if index >= uapi.VFIO_PCI_NUM_IRQS or index == uapi.VFIO_PCI_ERR_IRQ_INDEX:
            # ERR exists only on PCIe; this is a conventional PCI card
            raise VfioError("VFIO_DEVICE_GET_IRQ_INFO", errno.EINVAL)
        flags = uapi.VFIO_IRQ_INFO_EVENTFD
        if index == INTX:
            flags |= uapi.VFIO_IRQ_INFO_MASKABLE | uapi.VFIO_IRQ_INFO_AUTOMASKED
        else:
            flags |= uapi.VFIO_IRQ_INFO_NORESIZE
        return IrqInfo(index, flags, self._irq_count(index))

    def _irq_count(self, index):
        if index == INTX:
            return 1 if self.card.config[card_mod.PCI_INTERRUPT_PIN] else 0
        if index == uapi.VFIO_PCI_REQ_IRQ_INDEX:
            return 1
        return 0                # no MSI/MSI-X capability on the model card

    def set_irqs(self, index, flags, start=0, count=1, data=None):
        """VFIO_DEVICE_SET_IRQS with the kernel's checks and errnos."""
        cpu = self.cpu
        if self.trace is not None:
            self.trace.mark(f"user: SET_IRQS {_describe_set_irqs(index, flags, start, count, data)}")
        cpu.enter()
        try:
            num = self._irq_count(index) if 0 <= index < uapi.VFIO_PCI_NUM_IRQS else 0
            dtype = validate_set_irqs(flags, index, start, count, num)
            if index != INTX:
                raise SetIrqsError(errno.ENOTTY, "the model host implements only the INTx index")
            self.vfio.set_irqs(flags, start, count, self._payload(dtype, count, data))
            if self.resampler is not None:
                self.resampler.bind(self.vfio.unmask)
        except SetIrqsError as exc:
            raise VfioError("VFIO_DEVICE_SET_IRQS", exc.errno,
                            hint=f"model host: {exc.why}") from None
        finally:
            cpu.leave()

    @staticmethod
    def _payload(dtype, count, data):
        if dtype == DATA_NONE:
            return None
        if dtype == DATA_BOOL:
            if data is None or len(data) < count:
                raise SetIrqsError(errno.EINVAL, f"DATA_BOOL needs {count} byte(s)")
            return list(data[:count])
        if dtype == DATA_EVENTFD:
            if count == 0:
                return []
            if data is None or len(data) < count:
                raise SetIrqsError(errno.EINVAL, f"DATA_EVENTFD needs {count} fd(s)")
            out = []
            for fd in data[:count]:
                if isinstance(fd, int):
                    if fd >= 0:
                        raise SetIrqsError(errno.EBADF, "pass EventFd objects (or -1), "
                                                        "not raw file descriptors")
                    out.append(None)
                elif isinstance(fd, EventFd):
                    out.append(fd)
                else:
                    raise SetIrqsError(errno.EBADF, f"{fd!r} is not an eventfd")
            return out
        return None

    def region(self, index, access="rw"):
        if access not in words(Access):
            raise UsageError(f"unknown access mode {access!r}", "use mmap or rw")
        try:
            r = self._regions[index]
            return _ModelRegion(self, r.index, r.size, r.flags, r._read, r._write,
                                r._widths, access)
        except KeyError:
            raise VfioError("VFIO_DEVICE_GET_REGION_INFO", errno.EINVAL,
                            hint=f"the model card has no region {index} "
                                 "(BAR0 and config space only)") from None

    def host_state(self, irq="intx"):
        # only INTx: the model card has no MSI capability, so irq_info refuses the others
        d, v = self.desc, self.vfio
        state = {
            "irq": d.irq,
            "chip": self.chip.name,
            "irq_count": d.kstat,                       # /proc/interrupts
            "disintx": self.card.disintx,               # physical COMMAND bit
            # what only the model sees
            "controller_deliveries": d.deliveries,      # every controller delivery
            "spurious": d.deliveries - d.kstat,         # taken on the disabled path
            "depth": d.depth, "disabled": d.disabled, "masked": d.masked,
            "pending": d.pending, "unlazy": d.unlazy,
            "vfio_masked": v.masked, "pci_2_3": v.pci_2_3, "signals": v.signals,
            "line": self.card.pin,
        }
        if self.resampler is not None:
            state["resampler_acks"] = self.resampler.acks   # unmasks KVM signalled
        state.update(self.chip.state())
        return state

    # -- regions --------------------------------------------------------------

    def _bar0_read(self, offset, width):
        return self.card.mmio_read(offset)

    def _bar0_write(self, offset, width, value):
        self.card.mmio_write(offset, value & 0xFFFFFFFF)

    def _config_read(self, offset, width):
        """vfio_pci_config: the physical header, but COMMAND.INTX_DISABLE as the
        user last wrote it (virtualised)."""
        val = self.card.config_read(offset, width)
        lo, hi = offset, offset + width
        if lo <= card_mod.PCI_COMMAND + 1 < hi:         # the byte holding bit 10
            shift = 8 * (card_mod.PCI_COMMAND + 1 - lo)
            bit = 0x04 << shift
            val = (val & ~bit) | (bit if self.vfio.virq_disabled else 0)
        return val

    def _config_write(self, offset, width, value):
        """Only the virtual DisINTx is honoured (vfio_basic_config_write); the rest
        of the header is not the user's to change in the model."""
        lo, hi = offset, offset + width
        if lo <= card_mod.PCI_COMMAND + 1 < hi:
            shift = 8 * (card_mod.PCI_COMMAND + 1 - lo)
            self.vfio.write_virt_intx_disable(bool((value >> shift) & 0x04))
