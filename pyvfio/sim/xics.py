"""POWER XICS: QEMU's hw/intc/xics.c and xics_spapr.c (ICS source + ICP
presenter) for one LSI, and Linux's ics-rtas irq chip with icp-hv EOI
(docs/model.md, "XICS").

QEMU re-presents an LSI that is still asserted whenever its "sent" flag is
clear: at EOI (ics_eoi + icp_resend) and at unmask (rtas_int_on/set-xive).
The optional `seed-hypothesis` variant is the behaviour the seed thread claims
for real POWER (unverified): an LSI is raised once per assertion, re-raised only
after an EOI while deasserted, or after a disable/enable (int-off, int-on) cycle.
"""

DEFAULT_PRIORITY = 5            # arch/powerpc/sysdev/xics: "want a priority other than 0"
PRIO_MASKED = 0xFF
VARIANTS = ("qemu", "seed-hypothesis")


class Ics:
    """The ICS source state and the one ICP (single CPU) it presents to."""

    __slots__ = ("priority", "saved_priority", "asserted", "sent", "armed", "variant",
                 "cppr", "xisr", "pending_priority", "cpu", "deliver", "trace")

    def __init__(self, cpu, trace=None, variant="qemu"):
        if variant not in VARIANTS:
            raise ValueError(f"unknown XICS variant {variant!r}")
        self.variant = variant
        self.priority = PRIO_MASKED     # ics_reset
        self.saved_priority = PRIO_MASKED
        self.asserted = False           # XICS_STATUS_ASSERTED
        self.sent = False               # XICS_STATUS_SENT
        self.armed = True               # seed-hypothesis only: may raise again
        self.cppr = PRIO_MASKED         # the ICP
        self.xisr = 0
        self.pending_priority = PRIO_MASKED
        self.cpu = cpu
        self.deliver = None
        self.trace = trace

    # -- ICS ----------------------------------------------------------------

    def resend_lsi(self, why):
        """ics_resend_lsi: present if unmasked, asserted and not already sent."""
        if self.priority != PRIO_MASKED and self.asserted and not self.sent:
            if self.variant == "seed-hypothesis":
                if not self.armed:
                    if self.trace is not None:
                        self.trace("xics", f"{why}: line asserted but not re-armed "
                                           "(seed hypothesis: needs an EOI while deasserted)")
                    return
                self.armed = False
            self.sent = True
            if self.trace is not None:
                self.trace("xics", f"{why}: LSI asserted, not sent -> present (icp_irq)")
            self.icp_irq()

    def set_irq(self, level):
        """ics_set_irq_lsi: the line from the card."""
        self.asserted = bool(level)
        if level:
            self.resend_lsi("ics_set_irq_lsi")

    def write_xive(self, priority, saved_priority, why):
        """ics_write_xive: the RTAS calls below all end here, then resend."""
        self.priority, self.saved_priority = priority, saved_priority
        if self.trace is not None:
            self.trace("xics", f"{why}: priority {priority:#x}")
        self.resend_lsi(why)

    def rtas_set_xive(self, priority):
        self.write_xive(priority, priority, f"ibm,set-xive({priority:#x})")

    def rtas_int_off(self):
        self.write_xive(PRIO_MASKED, self.priority, "ibm,int-off")

    def rtas_int_on(self):
        if self.variant == "seed-hypothesis":
            self.armed = True           # "a disable/enable cycle re-raises it"
        self.write_xive(self.saved_priority, self.saved_priority, "ibm,int-on")

    # -- ICP ----------------------------------------------------------------

    def icp_irq(self):
        """icp_irq: take it unless the CPPR (or a pending one) is as favoured."""
        if self.priority >= self.cppr or (self.xisr and self.priority >= self.pending_priority):
            self.sent = False           # ics_reject (LSI)
            return
        self.xisr = 1
        self.pending_priority = self.priority
        self.cpu.notify(self.accept)

    def accept(self):
        """H_XIRR -> icp_accept: the CPU takes the interrupt, CPPR rises."""
        self.cppr = self.pending_priority
        self.xisr = 0
        if self.trace is not None:
            self.trace("xics", f"H_XIRR: accept, CPPR {self.cppr:#x}")
        self.deliver()

    def h_eoi(self):
        """H_EOI -> icp_eoi: CPPR back (Linux pops to 0xff), ics_eoi clears
        "sent", and with XISR empty icp_resend re-presents asserted LSIs."""
        self.cppr = PRIO_MASKED
        self.sent = False               # ics_eoi
        if self.variant == "seed-hypothesis" and not self.asserted:
            self.armed = True
        if self.trace is not None:
            self.trace("xics", "H_EOI: sent cleared" + (", line still asserted" if self.asserted else ""))
        if not self.xisr:
            self.resend_lsi("icp_resend at EOI")


class IcsRtasChip:
    """Linux's ics_rtas_irq_chip (arch/powerpc/sysdev/xics/ics-rtas.c), with
    icp_hv_eoi as irq_eoi.  No irq_shutdown: irq_shutdown masks instead."""

    name = "XICS"
    irq_disable = irq_enable = irq_shutdown = None

    def __init__(self, ics, trace=None):
        self.ics = ics
        self.desc = None
        self.trace = trace

    def irq_mask(self):
        """ics_rtas_mask_irq: int-off, then set-xive(0xff) "to be able to remove a slot"."""
        self.ics.rtas_int_off()
        self.ics.rtas_set_xive(PRIO_MASKED)

    def irq_unmask(self):
        """ics_rtas_unmask_irq: set-xive(DEFAULT_PRIORITY), then int-on."""
        self.ics.rtas_set_xive(DEFAULT_PRIORITY)
        self.ics.rtas_int_on()

    def irq_startup(self):
        """ics_rtas_startup: unmask."""
        self.irq_unmask()

    def irq_eoi(self):
        """icp_hv_eoi: H_EOI((popped CPPR << 24) | hwirq)."""
        self.ics.h_eoi()

    def state(self):
        i = self.ics
        return {"priority": i.priority, "asserted": i.asserted, "sent": i.sent, "variant": i.variant}
