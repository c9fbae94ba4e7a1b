"""Which interrupt controller serves the host's legacy lines (and a card's)."""

from .check import OK, WARN, Check


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


def host_check(lines):
    legacy = legacy_chip(lines)
    _family, name = controller_of(legacy)
    if not legacy:
        return Check("irq_controller", WARN, "no legacy (INTx) line in /proc/interrupts",
                     "every line listed is MSI/IPI, or /proc/interrupts is unreadable")
    return Check("irq_controller", OK, f"legacy interrupts are served by {name}",
                 f"/proc/interrupts chip {legacy!r} on the host's non-MSI lines")
