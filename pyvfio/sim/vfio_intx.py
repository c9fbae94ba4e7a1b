"""vfio-pci's INTx path: drivers/vfio/pci/vfio_pci_intrs.c and the virqfd of
drivers/vfio/virqfd.c (docs/model.md, "vfio-pci INTx"), on the model card and genirq descriptor.

`fix_unlazy` says whether this "kernel" has 8b9f128947dd ("vfio/pci: Fix INTx
handling on legacy non-PCI 2.3 devices"): vfio_intx_enable then sets
IRQ_DISABLE_UNLAZY for a non-2.3 device.  Without it genirq's disable is lazy:
the policy axis of the matrix.
"""

import errno
import select

from .. import uapi
from . import pci
from .genirq import IRQ_HANDLED, IRQ_NONE

VFIO_PCI_NUM_IRQS = uapi.VFIO_PCI_NUM_IRQS
INTX = uapi.VFIO_PCI_INTX_IRQ_INDEX
DATA_NONE = uapi.VFIO_IRQ_SET_DATA_NONE
DATA_BOOL = uapi.VFIO_IRQ_SET_DATA_BOOL
DATA_EVENTFD = uapi.VFIO_IRQ_SET_DATA_EVENTFD
ACTION_MASK = uapi.VFIO_IRQ_SET_ACTION_MASK
ACTION_UNMASK = uapi.VFIO_IRQ_SET_ACTION_UNMASK
ACTION_TRIGGER = uapi.VFIO_IRQ_SET_ACTION_TRIGGER
DATA_TYPE_MASK = DATA_NONE | DATA_BOOL | DATA_EVENTFD
ACTION_TYPE_MASK = ACTION_MASK | ACTION_UNMASK | ACTION_TRIGGER
U32_MAX = 0xFFFFFFFF


class SetIrqsError(Exception):
    """A SET_IRQS failure with the kernel's errno (the host turns it into VfioError)."""

    def __init__(self, err, why):
        super().__init__(why)
        self.errno = err
        self.why = why


class Virqfd:
    """struct virqfd: an eventfd whose signal runs `handler` in the writer's
    context (virqfd_wakeup from the eventfd's wait queue) and, if it returns
    non-zero, schedules `thread` on the workqueue (virqfd->inject)."""

    __slots__ = ("eventfd", "handler", "thread", "cpu", "trace", "signaller")

    def __init__(self, eventfd, handler, thread, cpu, trace=None):
        self.eventfd, self.handler, self.thread = eventfd, handler, thread
        self.cpu, self.trace = cpu, trace
        self.signaller = "user: write 1 to the unmask eventfd"   # KVM's resampler: kvm_irqfd.py

    def wakeup(self, efd):
        """virqfd_wakeup (EPOLLIN): eventfd_ctx_do_read, then the handler."""
        if self.trace is not None:
            self.trace.mark(self.signaller)
        self.cpu.enter()
        try:
            efd.consume()
            if self.trace is not None:
                self.trace("virqfd", "virqfd_wakeup: unmask eventfd read -> handler")
            if self.handler() and self.thread is not None:
                self.cpu.schedule_work(self.thread)     # schedule_work(&virqfd->inject)
        finally:
            self.cpu.leave()        # the writer's syscall returns: irqs, kworker

    def disable(self):
        """vfio_virqfd_disable: off the wait queue, flush pending work."""
        try:
            self.eventfd.waiters.remove(self.wakeup)
        except ValueError:
            pass


class VfioPciIntx:
    """vdev + its INTx ctx for one device."""

    def __init__(self, card, desc, cpu, nointxmask=False, fix_unlazy=True, trace=None):
        self.card = card
        self.desc = desc            # pdev->irq's descriptor
        self.cpu = cpu
        self.trace = trace
        self.fix_unlazy = fix_unlazy
        self.nointxmask = nointxmask
        # vfio_pci_core_enable: pci_2_3 = pci_intx_mask_supported() unless nointxmask
        self.pci_2_3 = False if nointxmask else pci.pci_intx_mask_supported(card)
        if trace is not None:
            trace("vfio", "vfio_pci_core_enable: " + (
                "nointxmask=1, pci_2_3=0 (mask at the controller)" if nointxmask else
                f"pci_intx_mask_supported -> pci_2_3={int(self.pci_2_3)}"))
        self.virq_disabled = False
        self.irq_type = VFIO_PCI_NUM_IRQS       # none
        self.masked = False                     # ctx->masked
        self.trigger = None                     # ctx->trigger
        self.unmask = None                      # ctx->unmask (Virqfd)
        self.signals = 0                        # model: trigger signals sent

    def is_intx(self):
        return self.irq_type == INTX

    # -- the hard interrupt handler -----------------------------------------

    def vfio_intx_handler(self, irq):
        """vfio_intx_handler(): non-2.3 disables the host IRQ unconditionally;
        2.3 masks with DisINTx only if the card says the interrupt is its own."""
        tr = self.trace
        if not self.pci_2_3:
            if tr is not None:
                tr("vfio", "vfio_intx_handler: non-2.3 -> disable_irq_nosync")
            self.desc.disable_irq_nosync()
            self.masked = True
            ret = IRQ_HANDLED
        elif not self.masked and pci.pci_check_and_mask_intx(self.card):
            self.masked = True
            ret = IRQ_HANDLED
            if tr is not None:
                tr("vfio", "vfio_intx_handler: pci_check_and_mask_intx -> DisINTx=1")
        else:
            ret = IRQ_NONE
            if tr is not None:
                tr("vfio", "vfio_intx_handler: not ours (IRQ_NONE)")
        if ret == IRQ_HANDLED:
            self.vfio_send_intx_eventfd()
        return ret

    def vfio_send_intx_eventfd(self):
        if self.is_intx() and not self.virq_disabled:
            trigger = self.trigger
            if trigger is not None:
                self.signals += 1
                if self.trace is not None:
                    self.trace("vfio", "eventfd_signal(trigger)")
                trigger.signal()

    # -- mask / unmask ------------------------------------------------------

    def vfio_pci_intx_mask(self):
        """__vfio_pci_intx_mask(): always mask (not check-and-mask)."""
        if not self.is_intx():
            if self.pci_2_3:
                pci.pci_intx(self.card, False)
            return False
        if not self.masked:
            if self.pci_2_3:
                pci.pci_intx(self.card, False)
            else:
                self.desc.disable_irq_nosync()
            self.masked = True
            return True
        return False

    def vfio_pci_intx_unmask_handler(self):
        """vfio_pci_intx_unmask_handler() -> 1 if the interrupt is still
        pending (2.3: the card still asserts), so the caller re-signals."""
        ret = 0
        if not self.is_intx():
            if self.pci_2_3:
                pci.pci_intx(self.card, True)
            return 0
        if self.masked and not self.virq_disabled:
            if self.pci_2_3:
                if not pci.pci_check_and_unmask_intx(self.card):
                    ret = 1
                    if self.trace is not None:
                        self.trace("vfio", "unmask: STATUS.INTERRUPT still set, stays masked "
                                           "-> re-signal")
                elif self.trace is not None:
                    self.trace("vfio", "unmask: pci_check_and_unmask_intx -> DisINTx=0")
            else:
                if self.trace is not None:
                    self.trace("vfio", "unmask: enable_irq")
                self.desc.enable_irq()
            self.masked = ret > 0
        elif self.trace is not None:
            self.trace("vfio", "unmask: ctx not masked, nothing to do")
        return ret

    def vfio_pci_intx_unmask(self):
        if self.vfio_pci_intx_unmask_handler() > 0:
            self.vfio_send_intx_eventfd()

    # -- enable / disable ---------------------------------------------------

    def vfio_intx_enable(self, trigger):
        if self.irq_type != VFIO_PCI_NUM_IRQS:
            raise SetIrqsError(errno.EINVAL, "an interrupt type is already enabled")
        self.trigger = trigger
        self.masked = self.virq_disabled
        no_autoen = False
        if self.pci_2_3:
            pci.pci_intx(self.card, not self.masked)    # IRQF_SHARED
        else:
            no_autoen = self.masked
            if self.fix_unlazy:                         # 8b9f128947dd
                self.desc.set_disable_unlazy(True)
        self.irq_type = INTX
        self.desc.request_irq(self.vfio_intx_handler, no_autoen=no_autoen)

    def vfio_intx_set_signal(self, trigger):
        """Swap the trigger eventfd (None: stop signalling)."""
        self.trigger = trigger

    def vfio_intx_disable(self):
        if self.unmask is not None:
            self.unmask.disable()
            self.unmask = None
        self.desc.free_irq()
        self.trigger = None
        self.irq_type = VFIO_PCI_NUM_IRQS
        if not self.pci_2_3:
            self.desc.set_disable_unlazy(False)

    # -- VFIO_DEVICE_SET_IRQS for the INTx index ----------------------------

    def set_intx_mask(self, start, count, flags, data):
        if not self.is_intx() or start != 0 or count != 1:
            raise SetIrqsError(errno.EINVAL, "MASK needs INTx enabled, start 0, count 1")
        if flags & DATA_NONE:
            self.vfio_pci_intx_mask()
        elif flags & DATA_BOOL:
            if data[0]:
                self.vfio_pci_intx_mask()
        elif flags & DATA_EVENTFD:
            raise SetIrqsError(errno.ENOTTY, "ACTION_MASK|DATA_EVENTFD is not implemented "
                                             "by the kernel (XXX implement me)")

    def set_intx_unmask(self, start, count, flags, data):
        if not self.is_intx() or start != 0 or count != 1:
            raise SetIrqsError(errno.EINVAL, "UNMASK needs INTx enabled, start 0, count 1")
        if flags & DATA_NONE:
            self.vfio_pci_intx_unmask()
        elif flags & DATA_BOOL:
            if data[0]:
                self.vfio_pci_intx_unmask()
        elif flags & DATA_EVENTFD:
            efd = data[0]
            if efd is not None:
                if self.unmask is not None:
                    raise SetIrqsError(errno.EBUSY, "an unmask eventfd is already registered")
                self.vfio_virqfd_enable(efd)
            elif self.unmask is not None:
                self.unmask.disable()
                self.unmask = None

    def vfio_virqfd_enable(self, efd):
        v = Virqfd(efd, self.vfio_pci_intx_unmask_handler, self.vfio_send_intx_eventfd,
                   self.cpu, self.trace)
        self.unmask = v
        efd.waiters.append(v.wakeup)
        # "Check if there was an event already pending on the eventfd before we
        # registered and trigger it as if we didn't miss it." (vfs_poll: the
        # count is not consumed here; the next wakeup reads it.)
        if _readable(efd):
            if self.vfio_pci_intx_unmask_handler():
                self.cpu.schedule_work(self.vfio_send_intx_eventfd)

    def set_intx_trigger(self, start, count, flags, data):
        if self.is_intx() and count == 0 and flags & DATA_NONE:
            self.vfio_intx_disable()
            return
        if not (self.is_intx() or self.irq_type == VFIO_PCI_NUM_IRQS) or start != 0 or count != 1:
            raise SetIrqsError(errno.EINVAL, "TRIGGER needs start 0, count 1 (count 0 with "
                                             "DATA_NONE disables)")
        if flags & DATA_EVENTFD:
            if self.is_intx():
                self.vfio_intx_set_signal(data[0])
            else:
                self.vfio_intx_enable(data[0])
            return
        if not self.is_intx():
            raise SetIrqsError(errno.EINVAL, "loopback trigger needs INTx enabled")
        if flags & DATA_NONE or data[0]:
            if self.trace is not None:
                self.trace("vfio", "loopback trigger")
            self.vfio_send_intx_eventfd()

    def set_irqs(self, flags, start, count, data):
        """vfio_pci_set_irqs_ioctl, INTx index (arguments already validated)."""
        action = flags & ACTION_TYPE_MASK
        if action == ACTION_MASK:
            self.set_intx_mask(start, count, flags, data)
        elif action == ACTION_UNMASK:
            self.set_intx_unmask(start, count, flags, data)
        elif action == ACTION_TRIGGER:
            self.set_intx_trigger(start, count, flags, data)
        else:
            raise SetIrqsError(errno.ENOTTY, "no single action flag")

    # -- config space: the virtual COMMAND.INTX_DISABLE ----------------------

    def write_virt_intx_disable(self, disable):
        """vfio_basic_config_write: the guest's DisINTx drives virq_disabled."""
        if disable != self.virq_disabled:
            self.virq_disabled = disable
            if disable:
                self.vfio_pci_intx_mask()
            else:
                self.vfio_pci_intx_unmask()


def _readable(efd):
    p = select.poll()
    p.register(efd.fileno(), select.POLLIN)
    return bool(p.poll(0))


def validate_set_irqs(flags, index, start, count, num_irqs):
    """vfio_set_irqs_validate_and_prepare(): the checks before any action."""
    if index >= VFIO_PCI_NUM_IRQS or count >= U32_MAX - start \
            or flags & ~(DATA_TYPE_MASK | ACTION_TYPE_MASK):
        raise SetIrqsError(errno.EINVAL, "bad index, count or flags")
    if start >= num_irqs or start + count > num_irqs:
        raise SetIrqsError(errno.EINVAL, f"start {start} count {count} beyond the "
                                         f"{num_irqs} interrupt(s) of index {index}")
    dtype = flags & DATA_TYPE_MASK
    if dtype not in (DATA_NONE, DATA_BOOL, DATA_EVENTFD):
        raise SetIrqsError(errno.EINVAL, "exactly one DATA_ type is required")
    return dtype
