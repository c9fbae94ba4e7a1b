"""pyvfio: a userspace VFIO INTx passthrough mini-hypervisor for legacy PCI cards."""

__version__ = "0.1.0"
