"""What the host says about PCI devices, their interrupts and their drivers.

Everything here reads sysfs/procfs under a root directory (`root="/"` by default)
so that tests can run on fabricated trees.  Only `bind` (to the files the kernel
documents for driver binding: driver_override, unbind, drivers_probe, bind) and
`policy_module` (the masking-policy module's knob, and its build) ever write.
Nothing here opens a device or writes its config space: the probes that ask the
kernel what sysfs cannot say (pyvfio.vfio.intx_probe, pyvfio.vfio.disintx_probe)
open vfio, a layer up.
"""
