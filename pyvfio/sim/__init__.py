"""The model host: the host side of the INTx path, in software.

A legacy card (card.py) drives a level line into an interrupt controller
(xive.py, xics.py, ioapic.py: the hardware as QEMU models it, plus the Linux irq
chip driver that talks to it), whose notifications a CPU (cpu.py) hands to
genirq's handle_fasteoi_irq (genirq.py), which runs vfio-pci's INTx handler
(vfio_intx.py).  host.py wires one of each into a device that implements
`pyvfio.backend.IntxHost`, so the same guest and INTx engine that drive a real
/dev/vfio device drive this one.  The model is a host, not a runner: it imports
no engine (pyvfio.repro.matrix runs the scenario matrix on it).

Every step can be recorded (trace.py) as the kernel or hardware function it
mirrors; docs/model.md cites the sources.
"""

from .host import ModelHost, CONTROLLERS, CARDS, POLICIES

__all__ = ["ModelHost", "CONTROLLERS", "CARDS", "POLICIES"]
