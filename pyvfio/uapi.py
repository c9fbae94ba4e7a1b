"""The kernel interface: <linux/vfio.h> constants (from the compiled extension, so
the C compiler read them from the kernel's own header) and ioctl request numbers
(computed here with ioctl-opt, then encoded for the running architecture).

ioctl-opt implements asm-generic/ioctl.h.  powerpc (and mips, sparc, alpha) use
another layout: 3 direction bits at bit 29, 13 size bits, and _IOC_NONE = 1, so
_IO(';', 100 + 14) is 0x20003b6e on ppc64le but 0x3b6e on x86_64.  `ioc_for_arch`
re-encodes an asm-generic number for such an architecture.
"""

import platform

import ioctl_opt

from ._binding import ffi, lib

# asm-generic direction values (ioctl_opt.IOC_*) -> powerpc's arch/powerpc/include/uapi/asm/ioctl.h
_POWERPC_DIR = {ioctl_opt.IOC_NONE: 1, ioctl_opt.IOC_READ: 2, ioctl_opt.IOC_WRITE: 4,
                ioctl_opt.IOC_READ | ioctl_opt.IOC_WRITE: 6}
_POWERPC_SIZEBITS = 13
_POWERPC_DIRSHIFT = 29
_POWERPC_MACHINES = ("ppc", "ppc64", "ppc64le", "powerpc")


def ioc_for_arch(generic, machine=None):
    """Re-encode an asm-generic ioctl number for `machine` (default: this one)."""
    machine = machine or platform.machine()
    if machine not in _POWERPC_MACHINES:
        return generic
    g = ioctl_opt
    direction = (generic >> g._IOC_DIRSHIFT) & g._IOC_DIRMASK
    size = (generic >> g._IOC_SIZESHIFT) & g._IOC_SIZEMASK
    if size >> _POWERPC_SIZEBITS:
        raise ValueError(f"ioctl size {size} does not fit powerpc's 13-bit field")
    low = generic & ((1 << g._IOC_SIZESHIFT) - 1)  # type and nr are the same everywhere
    return (_POWERPC_DIR[direction] << _POWERPC_DIRSHIFT) | (size << 16) | low


VFIO_TYPE = ord(";")
VFIO_BASE = 100


def _vfio_io(n, machine=None):
    """_IO(VFIO_TYPE, VFIO_BASE + n): every VFIO ioctl is argument-size-free."""
    return ioc_for_arch(ioctl_opt.IO(VFIO_TYPE, VFIO_BASE + n), machine)


# Request numbers by their offset from VFIO_BASE (linux/vfio.h).
IOCTL_NR = {
    "VFIO_GET_API_VERSION": 0,
    "VFIO_CHECK_EXTENSION": 1,
    "VFIO_SET_IOMMU": 2,
    "VFIO_GROUP_GET_STATUS": 3,
    "VFIO_GROUP_SET_CONTAINER": 4,
    "VFIO_GROUP_UNSET_CONTAINER": 5,
    "VFIO_GROUP_GET_DEVICE_FD": 6,
    "VFIO_DEVICE_GET_INFO": 7,
    "VFIO_DEVICE_GET_REGION_INFO": 8,
    "VFIO_DEVICE_GET_IRQ_INFO": 9,
    "VFIO_DEVICE_SET_IRQS": 10,
    "VFIO_DEVICE_RESET": 11,
    "VFIO_IOMMU_GET_INFO": 12,
    "VFIO_IOMMU_SPAPR_TCE_GET_INFO": 12,
    "VFIO_IOMMU_ENABLE": 15,
    "VFIO_IOMMU_MAP_DMA": 13,
    "VFIO_IOMMU_UNMAP_DMA": 14,
    "VFIO_IOMMU_SPAPR_REGISTER_MEMORY": 17,
    "VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY": 18,
    "VFIO_IOMMU_SPAPR_TCE_CREATE": 19,
    "VFIO_IOMMU_SPAPR_TCE_REMOVE": 20,
    # on a device cdev fd (Linux 6.6), the same numbers as the sPAPR ones above
    "VFIO_DEVICE_BIND_IOMMUFD": 18,
    "VFIO_DEVICE_ATTACH_IOMMUFD_PT": 19,
    "VFIO_DEVICE_DETACH_IOMMUFD_PT": 20,
}

# <linux/iommufd.h>: _IO(IOMMUFD_TYPE, IOMMUFD_CMD_*), IOMMUFD_TYPE is VFIO's ';'.
IOMMUFD_CMD = {
    "IOMMU_DESTROY": 0x80,
    "IOMMU_IOAS_ALLOC": 0x81,
    "IOMMU_IOAS_IOVA_RANGES": 0x84,
    "IOMMU_IOAS_MAP": 0x85,
    "IOMMU_IOAS_UNMAP": 0x86,
}


def ioctl_numbers(machine=None):
    out = {name: _vfio_io(n, machine) for name, n in IOCTL_NR.items()}
    out.update({name: ioc_for_arch(ioctl_opt.IO(VFIO_TYPE, n), machine)
                for name, n in IOMMUFD_CMD.items()})
    return out


globals().update(ioctl_numbers())



# Whether the extension was compiled against headers with iommufd (csrc/uapi_decls.py).
IOMMUFD_UAPI = bool(lib.PYVFIO_UAPI_IOMMUFD)


def header_ioctls():
    """The request numbers as the kernel headers compute them (for the cross-check):
    every one pyvfio computes, less the iommufd ones when the headers lack them."""
    return {name: int(getattr(lib, name)) for name in ioctl_numbers() if hasattr(lib, name)}


# Constants straight from the headers (<linux/vfio.h>, <linux/pci_regs.h>,
# <linux/iommufd.h>), through the extension.
for _name in dir(lib):
    if _name.startswith(("VFIO_", "PCI_", "IOMMU_")) and _name not in ioctl_numbers():
        globals()[_name] = getattr(lib, _name)
del _name

DEVICE_NAME = "/dev/vfio/vfio"
IRQ_SET_HDR = ffi.sizeof("struct vfio_irq_set")  # the data[] payload starts here


# <linux/kvm.h>: the request numbers (KVMIO 0xAE), by direction, number and argument
# type (its size from the compiler: ioctl-opt's _IOW wants a ctypes type, so _IOC).
KVMIO = 0xAE
_KVM_IOCTLS = {
    "KVM_GET_API_VERSION": (ioctl_opt.IOC_NONE, 0x00, None),
    "KVM_CREATE_VM": (ioctl_opt.IOC_NONE, 0x01, None),
    "KVM_CHECK_EXTENSION": (ioctl_opt.IOC_NONE, 0x03, None),
    "KVM_GET_VCPU_MMAP_SIZE": (ioctl_opt.IOC_NONE, 0x04, None),
    "KVM_CREATE_VCPU": (ioctl_opt.IOC_NONE, 0x41, None),
    "KVM_SET_USER_MEMORY_REGION": (ioctl_opt.IOC_WRITE, 0x46, "struct kvm_userspace_memory_region"),
    "KVM_CREATE_IRQCHIP": (ioctl_opt.IOC_NONE, 0x60, None),
    "KVM_IRQFD": (ioctl_opt.IOC_WRITE, 0x76, "struct kvm_irqfd"),
    "KVM_RUN": (ioctl_opt.IOC_NONE, 0x80, None),
    "KVM_SET_MP_STATE": (ioctl_opt.IOC_WRITE, 0x99, "struct kvm_mp_state"),
}


def kvm_ioctl_numbers(machine=None):
    out = {}
    for name, (direction, nr, struct) in _KVM_IOCTLS.items():
        size = ffi.sizeof(struct) if struct else 0
        out[name] = ioc_for_arch(ioctl_opt.IOC(direction, KVMIO, nr, size), machine)
    return out


def kvm_header_ioctls():
    return {name: int(getattr(lib, name)) for name in _KVM_IOCTLS}


globals().update(kvm_ioctl_numbers())
for _name in dir(lib):
    if _name.startswith("KVM_") and _name not in _KVM_IOCTLS:
        globals()[_name] = getattr(lib, _name)
del _name
