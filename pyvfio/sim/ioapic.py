"""x86 IO-APIC, one level-triggered pin: QEMU's hw/intc/ioapic.c (irr, RTE mask,
Remote IRR) and Linux's ioapic_ir_chip (arch/x86/kernel/apic/io_apic.c,
"IR-IO-APIC", interrupt remapping) (docs/model.md, "IO-APIC").

Remote IRR is set when a level interrupt is delivered and cleared by the EOI; a
pin whose line is still high is re-delivered at once at the EOI, and at unmask.
"""

SUCCESSIVE_IRQ_MAX_COUNT = 10000    # QEMU: then defer the re-delivery 10 ms


class IoApic:
    __slots__ = ("irr", "masked", "remote_irr", "irq_eoi", "cpu", "deliver", "trace")

    def __init__(self, cpu, trace=None):
        self.irr = 0                # the line as the IO-APIC sees it
        self.masked = True          # RTE mask (reset state)
        self.remote_irr = False
        self.irq_eoi = 0            # successive re-deliveries at EOI
        self.cpu = cpu
        self.deliver = None
        self.trace = trace

    def set_irq(self, level):
        """ioapic_set_irq (level-triggered pin)."""
        if level:
            self.irr = 1
            if not self.remote_irr:
                self.service("line asserted")
        else:
            self.irr = 0

    def service(self, why):
        """ioapic_service: deliver a high, unmasked pin unless Remote IRR is set."""
        if self.irr and not self.masked and not self.remote_irr:
            self.remote_irr = True
            if self.trace is not None:
                self.trace("ioapic", f"{why}: deliver, Remote IRR=1")
            self.cpu.notify(self.deliver)

    def write_rte_mask(self, masked):
        """ioapic_mem_write to the RTE: then ioapic_service (unmasking a high
        line delivers at once); the successive-EOI count restarts."""
        self.masked = masked
        self.irq_eoi = 0
        if self.trace is not None:
            self.trace("ioapic", f"RTE {'masked' if masked else 'unmasked'}")
        self.service("RTE write")

    def eoi(self):
        """ioapic_eoi_broadcast (the EOI register, IO-APIC version 0x20)."""
        if not self.remote_irr:
            return
        self.remote_irr = False
        if self.trace is not None:
            self.trace("ioapic", "EOI: Remote IRR=0" + (", line still high" if self.irr else ""))
        if not self.masked and self.irr:
            self.irq_eoi += 1
            if self.irq_eoi >= SUCCESSIVE_IRQ_MAX_COUNT:
                # QEMU defers the re-delivery by 10 ms; the model runs it as deferred work.
                self.irq_eoi = 0
                if self.trace is not None:
                    self.trace("ioapic", "10000 successive re-deliveries: defer")
                self.cpu.schedule_work(lambda: self.service("deferred re-delivery"))
            else:
                self.service("EOI with line high: re-deliver")
        else:
            self.irq_eoi = 0


class IoApicIrChip:
    """Linux's ioapic_ir_chip.  No irq_disable/irq_enable/irq_shutdown."""

    name = "IR-IO-APIC"
    irq_disable = irq_enable = irq_shutdown = None

    def __init__(self, ioapic, trace=None):
        self.ioapic = ioapic
        self.desc = None
        self.trace = trace

    def irq_mask(self):
        """mask_ioapic_irq: RTE mask=1 (and a read back to sync)."""
        self.ioapic.write_rte_mask(True)

    def irq_unmask(self):
        """unmask_ioapic_irq: RTE mask=0."""
        self.ioapic.write_rte_mask(False)

    def irq_startup(self):
        """startup_ioapic_irq: unmask the pin."""
        self.ioapic.write_rte_mask(False)

    def irq_eoi(self):
        """ioapic_ir_ack_level: apic_ack_irq (LAPIC EOI), then eoi_ioapic_pin."""
        self.ioapic.eoi()

    def state(self):
        a = self.ioapic
        return {"irr": a.irr, "rte_masked": a.masked, "remote_irr": a.remote_irr}
