"""/proc/interrupts: which controller serves a line, how often it fired, who holds it.

The kernel (kernel/irq/proc.c, show_interrupts) prints, per Linux IRQ:

    IRQ:  count-per-CPU...  chip  [hwirq][-handler]  [Level|Edge]  action, action...

x86:   ` 11:   12   0   IO-APIC  11-fasteoi   vfio-intx(0000:00:03.0)`
POWER: ` 23:   40   0  XIVE-IRQ 4101 Level     vfio-intx(0001:01:00.0)`
2.6:   ` 18:  227  IO-APIC-level  eth0, b1pci-9c00`

The hardware IRQ number and trigger are printed only where the kernel has them
(an IRQ domain; CONFIG_GENERIC_IRQ_SHOW_LEVEL on powerpc), so the parser takes
what is there.  vfio-pci names its INTx action `vfio-intx(BDF)`; the IRQ in config
0x3c or sysfs `irq` can be stale, that name cannot.  Its MSI and MSI-X vectors are
`vfio-msi[N](BDF)` and `vfio-msix[N](BDF)` (vfio_msi_set_vector_signal), one Linux
IRQ each (x86: ` 25:  10000  0  PCI-MSI 49152-edge  vfio-msi[0](0000:00:03.0)`).
"""

import re
from dataclasses import dataclass, field

from . import paths

_HWIRQ = re.compile(r"^(\d+)(?:-(\S+))?$")      # "11", "11-fasteoi", "4101"
_TRIGGERS = {"Level", "Edge"}


@dataclass
class IrqLine:
    """One numbered line of /proc/interrupts."""
    irq: int
    counts: list[int]
    chip: str | None           # "IO-APIC", "IR-IO-APIC", "XIVE-IRQ", "XICS", "PCI-MSI"...
    hwirq: int | None = None
    handler: str | None = None  # "fasteoi", "edge" (x86's flow-handler name)
    trigger: str | None = None  # "Level"/"Edge" (powerpc), else derived from x86's old chip name
    actions: list[str] = field(default_factory=list)

    @property
    def total(self):
        return sum(self.counts)

    def to_json(self):
        """Stable keys: irq, counts, total, chip, hwirq, handler, trigger, actions."""
        return {"irq": self.irq, "counts": self.counts, "total": self.total, "chip": self.chip,
                "hwirq": self.hwirq, "handler": self.handler, "trigger": self.trigger,
                "actions": self.actions}


def parse(text):
    """IRQ number -> IrqLine for every numbered line (NMI, LOC... are left out)."""
    lines = text.splitlines()
    if not lines:
        return {}
    ncpu = len(lines[0].split())        # the header: "CPU0 CPU1 ..."
    out = {}
    for line in lines[1:]:
        label, sep, rest = line.partition(":")
        if not sep or not label.strip().isdigit():
            continue
        tokens = rest.split()
        counts = []
        while tokens and len(counts) < ncpu and tokens[0].isdigit():
            counts.append(int(tokens.pop(0)))
        irq = IrqLine(int(label), counts, tokens.pop(0) if tokens else None)
        if tokens and _HWIRQ.match(tokens[0]):
            m = _HWIRQ.match(tokens.pop(0))
            irq.hwirq, irq.handler = int(m.group(1)), m.group(2)
        if tokens and tokens[0] in _TRIGGERS:
            irq.trigger = tokens.pop(0)
        if irq.trigger is None:
            irq.trigger = _trigger_from(irq)
        names = " ".join(tokens)
        irq.actions = [a.strip() for a in names.split(",") if a.strip()]
        out[irq.irq] = irq
    return out


def _trigger_from(irq):
    """x86 prints no trigger; its handler name (fasteoi is level on the IO-APIC) or an old
    chip name ("IO-APIC-level") says it."""
    chip = (irq.chip or "").lower()
    if chip.endswith("-level") or irq.handler == "fasteoi" and "apic" in chip:
        return "Level"
    if chip.endswith("-edge") or irq.handler == "edge":
        return "Edge"
    return None


def read(root="/"):
    """The parsed /proc/interrupts of the host under `root` ({} if unreadable)."""
    return parse(paths.read_text(paths.under(root, "proc/interrupts"), ""))


def vfio_intx_name(bdf):
    """The action name vfio-pci gives a device's INTx handler."""
    return f"vfio-intx({bdf})"


def vfio_msi_name(bdf, irq="msi", vector=0):
    """The action name vfio-pci gives a device's MSI (irq "msi") or MSI-X ("msix") vector."""
    return f"vfio-{irq}[{vector}]({bdf})"


def vfio_line(bdf, irq="intx", root="/"):
    """The line vfio holds for the device's INTx (intx_line) or its vector 0 of MSI
    or MSI-X (None until the trigger is set: vfio requests the IRQ then)."""
    if irq == "intx":
        return intx_line(bdf, root=root)
    return find(read(root), action=vfio_msi_name(bdf, irq))


def find(lines, irq=None, action=None):
    """The line with this IRQ number, or the one holding this action name."""
    if action is not None:
        for line in lines.values():
            if action in line.actions:
                return line
        return None
    return lines.get(irq)


def intx_line(bdf, irq=None, root="/", lines=None):
    """The device's INTx line: by vfio-pci's action name when vfio holds it, else by
    the IRQ number sysfs gives (None when neither is found)."""
    lines = read(root) if lines is None else lines
    return find(lines, action=vfio_intx_name(bdf)) or (find(lines, irq=irq) if irq else None)


def other_holders(line, bdf, own=()):
    """The actions sharing `line` besides this device's: its vfio handler and, while
    a host driver still has it, that driver's handlers (`own`: the names they go by,
    inuse.own_irq_names), which leave with the driver on bind.  vfio-pci asks for
    the line exclusively when it cannot mask at the device (DisINTx-, or
    nointxmask=1): request_irq then fails with EBUSY if any of these remain."""
    if line is None:
        return []
    mine = {vfio_intx_name(bdf)}
    return [a for a in line.actions if a not in mine
            and not any(a == n or a.startswith((n + ":", n + "[", n + "-")) for n in own)]


def controller_of(chip):
    """(family, display name) for a /proc/interrupts chip: xive, xics, ioapic, i8259."""
    c = (chip or "").upper()
    if c.startswith("XIVE"):
        return "xive", "XIVE"
    if c in ("XICS", "ICS") or c.startswith(("XICS", "ICS-")):
        return "xics", "XICS"
    if "IO-APIC" in c:
        return "ioapic", "IR-IO-APIC" if c.startswith("IR-") else "IO-APIC"
    if c.startswith("XT-PIC"):
        return "i8259", "XT-PIC (8259)"
    return None, chip or "unknown"


def legacy_chip(lines):
    """The chip serving the host's legacy (non-MSI, non-IPI) lines, level first."""
    seen = {}
    for line in lines.values():
        chip = line.chip or ""
        if not chip or "MSI" in chip.upper() or "IPI" in chip.upper():
            continue
        weight = 2 if line.trigger == "Level" else 1
        seen[chip] = seen.get(chip, 0) + weight
    return max(seen, key=seen.get) if seen else None
