"""genirq for one interrupt line (kernel/irq/{chip,manage,resend,handle}.c).

State per IRQ as the kernel keeps it: depth, IRQD_IRQ_DISABLED (`disabled`),
IRQD_IRQ_MASKED (`masked`), IRQD_IRQ_STARTED (`started`), IRQS_PENDING
(`pending`), IRQ_LEVEL (`level`), IRQ_DISABLE_UNLAZY (`unlazy`), and kstat (the
/proc/interrupts count).  vfio-pci passes no IRQF_ONESHOT; with forced threading
(PREEMPT_RT, threadirqs: `force_irqthreads`) irq_setup_forced_threading() adds it and
moves vfio's handler into a thread (IRQS_ONESHOT, `oneshot`): handle_fasteoi_irq
then masks the line at the controller before the EOI, the hard handler only wakes
the thread (`threads_oneshot`), and irq_finalize_oneshot() unmasks after it unless
the handler disabled the IRQ.  The thread runs right after the hard interrupt.

`chip` is the Linux irq_chip driver of the controller: it must have irq_mask,
irq_unmask and irq_eoi, and may have irq_startup, irq_shutdown, irq_enable,
irq_disable (None when absent).  None of the chips modelled here has
irq_disable/irq_enable or IRQCHIP_EOI_IF_HANDLED (docs/model.md, "Chip facts"), so
lazy disable never touches the controller and the disabled path always EOIs.
"""

IRQ_NONE, IRQ_HANDLED = 0, 1


class IrqDesc:
    __slots__ = ("irq", "chip", "depth", "disabled", "masked", "started", "pending",
                 "level", "unlazy", "action", "kstat", "deliveries", "unhandled",
                 "force_irqthreads", "oneshot", "threads_oneshot", "trace")

    def __init__(self, irq, chip, level=True, trace=None, force_irqthreads=False):
        self.irq = irq
        self.chip = chip
        # desc_set_defaults(): a fresh descriptor is disabled and masked, depth 1.
        self.depth = 1
        self.disabled = True
        self.masked = True
        self.started = False
        self.pending = False
        self.level = level          # IRQ_LEVEL: set for level lines (mp_register_handler, ...)
        self.unlazy = False         # IRQ_DISABLE_UNLAZY
        self.action = None          # the one irqaction: handler(irq) -> IRQ_NONE/IRQ_HANDLED
        self.kstat = 0              # kstat_irqs: what /proc/interrupts shows
        self.deliveries = 0         # model only: every handle_fasteoi_irq entry
        self.unhandled = 0          # note_interrupt's irqs_unhandled
        self.force_irqthreads = force_irqthreads
        self.oneshot = False        # IRQS_ONESHOT
        self.threads_oneshot = False  # desc->threads_oneshot: the thread is woken, not done
        self.trace = trace

    # -- irq_settings (irq_set_status_flags / irq_clear_status_flags) ---------

    def set_disable_unlazy(self, on):
        self.unlazy = bool(on)
        if self.trace is not None:
            self.trace("genirq", f"irq_{'set' if on else 'clear'}_status_flags(IRQ_DISABLE_UNLAZY)")

    # -- chip.c: mask/unmask, disable/enable, startup/shutdown -----------------

    def mask_irq(self):
        """mask_irq(): only if not already masked; sets IRQD_IRQ_MASKED."""
        if self.masked:
            return
        self.chip.irq_mask()
        self.masked = True

    def unmask_irq(self):
        """unmask_irq(): only if masked.  A line that was never masked is not
        touched: this is where a lazy disable leaves the controller alone."""
        if not self.masked:
            if self.trace is not None:
                self.trace("genirq", "unmask_irq: not masked, controller untouched")
            return
        self.chip.irq_unmask()
        self.masked = False

    def __irq_disable(self, mask):
        """__irq_disable(desc, mask)."""
        if self.disabled:
            if mask:
                self.mask_irq()
        else:
            self.disabled = True
            if self.chip.irq_disable is not None:
                self.chip.irq_disable()
                self.masked = True
            elif mask:
                self.mask_irq()

    def irq_disable(self):
        """irq_disable(): lazy unless IRQ_DISABLE_UNLAZY ("mask at the controller now")."""
        if self.trace is not None:
            self.trace("genirq", "irq_disable: " + ("unlazy, mask now" if self.unlazy
                                                   else "lazy, IRQD_IRQ_DISABLED only"))
        self.__irq_disable(self.unlazy)

    def irq_enable(self):
        """irq_enable()."""
        if not self.disabled:
            self.unmask_irq()
        else:
            self.disabled = False
            if self.chip.irq_enable is not None:
                self.chip.irq_enable()
                self.masked = False
            else:
                self.unmask_irq()

    def __irq_startup(self):
        if self.chip.irq_startup is not None:
            self.chip.irq_startup()
            self.disabled = self.masked = False
        else:
            self.irq_enable()
        self.started = True

    def irq_startup(self, resend):
        """irq_startup(desc, resend, force)."""
        self.depth = 0
        if self.started:
            self.irq_enable()
        else:
            self.__irq_startup()
        if resend:
            self.check_irq_resend()

    def irq_shutdown(self):
        """irq_shutdown(): depth 1, chip shutdown (or mask), not started."""
        if self.started:
            self.pending = False                # clear_irq_resend
            self.depth = 1
            if self.chip.irq_shutdown is not None:
                self.chip.irq_shutdown()
                self.disabled = self.masked = True
            else:
                self.__irq_disable(True)
            self.started = False

    def check_irq_resend(self):
        """check_irq_resend() (resend.c): "Level type interrupts are resent by
        hardware when they are still active.  Clear the pending bit so suspend/
        resume does not get confused": nothing is replayed in software."""
        if self.level:
            if self.trace is not None:
                self.trace("genirq", "check_irq_resend: level interrupt, no software resend")
            self.pending = False
            return
        # Edge lines are never modelled here (INTx is level).
        raise NotImplementedError("edge resend")

    # -- manage.c: disable_irq_nosync / enable_irq ------------------------------

    def disable_irq_nosync(self):
        """disable_irq_nosync() -> __disable_irq_nosync -> __disable_irq."""
        if self.depth == 0:
            self.irq_disable()
        self.depth += 1
        if self.trace is not None:
            self.trace("genirq", f"disable_irq_nosync: depth {self.depth}")

    def enable_irq(self):
        """enable_irq() -> __enable_irq."""
        if self.depth == 0:
            if self.trace is not None:
                self.trace("genirq", "WARN: Unbalanced enable for IRQ")
            return
        if self.depth == 1:
            if self.trace is not None:
                self.trace("genirq", "enable_irq: depth 1 -> irq_startup(IRQ_RESEND)")
            self.irq_startup(resend=True)
        else:
            self.depth -= 1

    def request_irq(self, handler, no_autoen=False):
        """request_irq() -> __setup_irq: IRQF_NO_AUTOEN only sets depth 1."""
        self.action = handler
        self.pending = False
        # irq_setup_forced_threading: vfio passes no IRQF_NO_THREAD/ONESHOT
        self.oneshot = self.force_irqthreads
        if self.trace is not None:
            self.trace("genirq", "request_irq" + (" (IRQF_NO_AUTOEN)" if no_autoen else "")
                       + (": forced threading, IRQF_ONESHOT" if self.oneshot else ""))
        if no_autoen:
            self.depth = 1
        else:
            self.irq_startup(resend=True)

    def free_irq(self):
        """free_irq() -> __free_irq: the last action gone, clear
        IRQ_DISABLE_UNLAZY and shut the line down."""
        self.action = None
        if self.trace is not None:
            self.trace("genirq", "free_irq: clear IRQ_DISABLE_UNLAZY, irq_shutdown")
        self.unlazy = False
        self.oneshot = self.threads_oneshot = False
        self.irq_shutdown()

    # -- chip.c: the flow handler -----------------------------------------------

    def handle_fasteoi_irq(self):
        """handle_fasteoi_irq().  A delivery while disabled (or with no action)
        takes the IRQS_PENDING path: mask at the controller, EOI, and return
        without counting it in kstat."""
        self.deliveries += 1
        chip = self.chip
        tr = self.trace
        if self.action is None or self.disabled:       # irq_can_handle_actions()
            self.pending = True
            if tr is not None:
                tr("genirq", "handle_fasteoi_irq: IRQD_IRQ_DISABLED -> IRQS_PENDING, "
                             "mask_irq, eoi (not counted in /proc/interrupts)")
            self.mask_irq()
            chip.irq_eoi()                              # cond_eoi_irq: no EOI_IF_HANDLED
            return
        self.kstat += 1                                 # kstat_incr_irqs_this_cpu
        self.pending = False                            # handle_irq_event
        if self.oneshot:
            if tr is not None:
                tr("genirq", f"handle_fasteoi_irq: kstat {self.kstat}, IRQS_ONESHOT: mask_irq, "
                             "wake the irq thread")
            self.mask_irq()
            self.threads_oneshot = True                 # irq_default_primary_handler: IRQ_WAKE_THREAD
            chip.irq_eoi()    # cond_unmask_eoi_irq: thread pending, no chip has EOI_THREADED
            return
        if tr is not None:
            tr("genirq", f"handle_fasteoi_irq: kstat {self.kstat}, run handler")
        if self.action(self.irq) == IRQ_NONE:           # note_interrupt
            self.unhandled += 1
        chip.irq_eoi()                                  # cond_unmask_eoi_irq

    def irq_thread(self):
        """The irq thread, if woken: irq_forced_thread_fn runs the handler, then
        irq_finalize_oneshot unmasks the line unless the handler disabled it."""
        if not self.threads_oneshot:
            return
        if self.trace is not None:
            self.trace("genirq", "irq_thread: run the handler (forced thread)")
        if self.action is not None and self.action(self.irq) == IRQ_NONE:
            self.unhandled += 1
        self.threads_oneshot = False
        if not self.disabled and self.masked:
            if self.trace is not None:
                self.trace("genirq", "irq_finalize_oneshot: unmask_threaded_irq")
            self.unmask_irq()                           # unmask_threaded_irq
        elif self.trace is not None:
            self.trace("genirq", "irq_finalize_oneshot: IRQ disabled (or unmasked): leave it")
