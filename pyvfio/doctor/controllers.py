"""The check of which interrupt controller serves the host's legacy lines
(host/interrupts.py names it)."""

from ..host.interrupts import controller_of, legacy_chip
from .check import OK, WARN, Check


def host_check(lines):
    legacy = legacy_chip(lines)
    _family, name = controller_of(legacy)
    if not legacy:
        return Check("irq_controller", WARN, "no legacy (INTx) line in /proc/interrupts",
                     "every line listed is MSI/IPI, or /proc/interrupts is unreadable")
    return Check("irq_controller", OK, f"legacy interrupts are served by {name}",
                 f"/proc/interrupts chip {legacy!r} on the host's non-MSI lines")
