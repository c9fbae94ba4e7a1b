"""POWER XIVE, an LSI source: QEMU's hw/intc/xive.c source model (the PQ bits)
and Linux's arch/powerpc/sysdev/xive/common.c irq chip (docs/model.md, "XIVE").

PQ: P (0x2) "an event was forwarded and not yet EOId", Q (0x1) "another event
came meanwhile" (LSIs never set Q).  00 reset, 10 pending, 01 off (masked).
An LSI fires only on the transition out of PQ=00; a source stuck at 10 is deaf.
"""

PQ_RESET, PQ_OFF, PQ_PENDING, PQ_QUEUED = 0b00, 0b01, 0b10, 0b11
ESB_P = 0x2

# ESB special loads (asm/xive-regs.h): LOAD_EOI 0x000, GET 0x800, SET_PQ_xx 0xc00..0xf00
XIVE_ESB_LOAD_EOI = 0x000
XIVE_ESB_GET = 0x800
XIVE_ESB_SET_PQ_00, XIVE_ESB_SET_PQ_01 = 0xC00, 0xD00
XIVE_ESB_SET_PQ_10, XIVE_ESB_SET_PQ_11 = 0xE00, 0xF00


def _pq(v):
    return format(v, "02b")


class XiveSource:
    """QEMU's XiveSource for one LSI: PQ state and XIVE_STATUS_ASSERTED."""

    __slots__ = ("pq", "asserted", "cpu", "deliver", "trace", "set_pq00_retriggers")

    def __init__(self, cpu, trace=None, set_pq00_retriggers=False):
        self.pq = PQ_OFF            # xive_irq_alloc_data: SET_PQ_01 ("ints off")
        self.asserted = False
        self.cpu = cpu
        self.deliver = None         # set by the host: the CPU's path into genirq
        self.trace = trace
        # Silicon question (docs/model.md, "XIVE": not verified): does SET_PQ_00 on an asserted LSI
        # trigger?  QEMU: no.
        self.set_pq00_retriggers = set_pq00_retriggers

    def _notify(self):
        """xive_source_notify: the event goes to the router -> presenter -> CPU."""
        if self.trace is not None:
            self.trace("xive", "notify: event routed to the CPU")
        self.cpu.notify(self.deliver)

    def _lsi_trigger(self):
        """xive_source_lsi_trigger: only PQ=00 -> 10 fires."""
        if self.pq == PQ_RESET:
            self.pq = PQ_PENDING
            if self.trace is not None:
                self.trace("xive", "LSI trigger: PQ 00->10")
            return True
        if self.trace is not None:
            self.trace("xive", f"LSI trigger ignored: PQ {_pq(self.pq)} (not 00)")
        return False

    def set_irq(self, level):
        """xive_source_set_irq (LSI): the line from the card."""
        if level:
            self.asserted = True
            if self._lsi_trigger():
                self._notify()
        else:
            self.asserted = False       # PQ unchanged

    def esb_load(self, offset):
        """xive_source_esb_read: the special loads the Linux driver issues."""
        old = self.pq
        if offset == XIVE_ESB_LOAD_EOI:
            # xive_source_esb_eoi -> xive_esb_eoi
            if old in (PQ_RESET, PQ_PENDING):
                self.pq, notify = PQ_RESET, False
            elif old == PQ_QUEUED:
                self.pq, notify = PQ_PENDING, True
            else:
                notify = False          # 01 stays 01
            if self.trace is not None:
                self.trace("xive", f"ESB LOAD_EOI: PQ {_pq(old)}->{_pq(self.pq)}"
                           + (", line still asserted: re-trigger" if self.asserted else ""))
            # "LSI sources do not set the Q bit but they can still be asserted,
            # in which case we should forward a new event notification"
            if self.asserted:
                notify = self._lsi_trigger()
            if notify:
                self._notify()
            return 1 if notify else 0
        if offset == XIVE_ESB_GET:
            return old
        if XIVE_ESB_SET_PQ_00 <= offset <= XIVE_ESB_SET_PQ_11:
            self.pq = (offset >> 8) & 0x3
            if self.trace is not None:
                self.trace("xive", f"ESB SET_PQ_{_pq(self.pq)}: PQ {_pq(old)}->{_pq(self.pq)}"
                           + (" (returns old PQ)"))
            if self.pq == PQ_RESET and self.asserted and self.set_pq00_retriggers:
                if self._lsi_trigger():     # knob: silicon that re-samples the line
                    self._notify()
            return old
        raise ValueError(f"ESB load at {offset:#x} is not modelled")


class XiveChip:
    """Linux's xive_irq_chip for an LSI (struct xive_irq_data: saved_p, stale_p).
    No irq_disable/irq_enable, no EOI_IF_HANDLED: docs/model.md, "Chip facts"."""

    name = "XIVE-IRQ"
    irq_disable = irq_enable = None

    def __init__(self, source, trace=None, eoi_skips_disabled=True):
        self.src = source
        self.desc = None            # the IrqDesc, for irqd_irq_disabled()
        self.saved_p = False
        self.stale_p = False
        self.trace = trace
        # The knob that removes the skip in xive_irq_eoi, to show it is the cause.
        self.eoi_skips_disabled = eoi_skips_disabled

    def xive_do_source_eoi(self):
        self.stale_p = False
        # "For LSIs, we use the 'EOI cycle' special load rather than PQ bits, as
        # they are automatically re-triggered in HW when still pending."
        self.src.esb_load(XIVE_ESB_LOAD_EOI)

    def irq_eoi(self):
        """xive_irq_eoi(): no source EOI while the IRQ is disabled."""
        if not (self.eoi_skips_disabled and self.desc.disabled):
            self.xive_do_source_eoi()
        else:
            self.stale_p = True
            if self.trace is not None:
                self.trace("xive", "xive_irq_eoi: irqd_irq_disabled -> source EOI skipped, "
                                   f"stale_p=1 (PQ stays {_pq(self.src.pq)})")
        self.saved_p = False
        # xive_do_queue_eoi: the CPU's queue is acknowledged (the model's Cpu drains)

    def xive_do_source_set_mask(self, mask):
        if mask:
            val = self.src.esb_load(XIVE_ESB_SET_PQ_01)
            if not self.stale_p and val & ESB_P:
                self.saved_p = True     # "it may be in a queue": restore P at unmask
            self.stale_p = False
        elif self.saved_p:
            self.src.esb_load(XIVE_ESB_SET_PQ_10)
            self.saved_p = False
        else:
            self.src.esb_load(XIVE_ESB_SET_PQ_00)
            self.stale_p = False

    def irq_mask(self):
        """xive_irq_mask()."""
        self.xive_do_source_set_mask(True)

    def irq_unmask(self):
        """xive_irq_unmask()."""
        self.xive_do_source_set_mask(False)

    def irq_startup(self):
        """xive_irq_startup(): forget saved/stale P, route, unmask (PQ_00)."""
        self.saved_p = self.stale_p = False
        self.xive_do_source_set_mask(False)

    def irq_shutdown(self):
        """xive_irq_shutdown(): mask at the source (PQ_01), route to prio 0xff."""
        self.xive_do_source_set_mask(True)

    def state(self):
        return {"pq": _pq(self.src.pq), "asserted": self.src.asserted,
                "saved_p": self.saved_p, "stale_p": self.stale_p}
