"""What the host says about PCI devices, their interrupts and their drivers.

Everything here reads sysfs/procfs under a root directory (`root="/"` by default)
so that tests can run on fabricated trees; only `bind` ever writes, and only to
the files the kernel documents for driver binding (driver_override, unbind,
drivers_probe, bind).  Nothing here writes to a device's config space; only
`intx_probe` opens a device (an idle vfio-pci card the user named), to ask the
kernel what sysfs cannot say.
"""
