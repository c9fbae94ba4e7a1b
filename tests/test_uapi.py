"""The kernel interface: constants and layouts from <linux/vfio.h>, ioctl numbers."""

import shutil
import subprocess
import sys

import pytest

from pyvfio.checkout import CHECKOUT
from pyvfio import _binding, uapi
from pyvfio._binding import ffi
from pyvfio.errors import PyvfioError

sys.path.insert(0, str(CHECKOUT / "csrc"))
import uapi_decls  # noqa: E402


IOMMUFD_IOCTLS = set(uapi_decls.IOMMUFD_IOCTLS)


def test_python_ioctl_numbers_equal_the_headers_on_this_machine():
    # header_ioctls() comes from the compiled extension (the C preprocessor's values)
    numbers, header = uapi.ioctl_numbers(), uapi.header_ioctls()
    assert header == {name: numbers[name] for name in header}
    # only iommufd's may be missing, and only from an extension built without them
    assert set(numbers) - set(header) == (set() if uapi.IOMMUFD_UAPI else IOMMUFD_IOCTLS)


def test_iommufd_numbers_as_the_6_12_header_has_them():
    # <linux/iommufd.h>: _IO(';', 0x81) and friends; VFIO_BASE + 18/19 on the cdev
    n = uapi.ioctl_numbers("x86_64")
    assert (n["IOMMU_IOAS_ALLOC"], n["IOMMU_IOAS_MAP"], n["IOMMU_IOAS_UNMAP"]) == (0x3B81, 0x3B85, 0x3B86)
    assert (n["VFIO_DEVICE_BIND_IOMMUFD"], n["VFIO_DEVICE_ATTACH_IOMMUFD_PT"]) == (0x3B76, 0x3B77)
    assert uapi.ioctl_numbers("ppc64le")["IOMMU_IOAS_ALLOC"] == 0x20003B81


def test_known_values_per_arch():
    assert uapi.ioctl_numbers("x86_64")["VFIO_DEVICE_SET_IRQS"] == 0x3B6E
    assert uapi.ioctl_numbers("ppc64le")["VFIO_DEVICE_SET_IRQS"] == 0x20003B6E
    assert uapi.ioctl_numbers("ppc64le")["VFIO_GET_API_VERSION"] == 0x20003B64


def test_ppc64le_numbers_equal_the_ppc64el_header():
    """Compile the powerpc64le header's ioctl macros to assembly with the cross
    compiler (no need to run anything) and compare with pyvfio's encoding."""
    gcc = shutil.which("powerpc64le-linux-gnu-gcc")
    if gcc is None:
        pytest.skip("powerpc64le-linux-gnu-gcc not installed (tools/setup --lab installs it as root)")
    probe = subprocess.run([gcc, "-fsyntax-only", "-x", "c", "-"], input=uapi_decls.IOMMUFD_PROBE,
                           text=True, capture_output=True)
    names = [n for n in uapi.ioctl_numbers() if probe.returncode == 0 or n not in IOMMUFD_IOCTLS]
    src = ("#include <linux/vfio.h>\n" + (uapi_decls.IOMMUFD_INCLUDES if probe.returncode == 0 else "")
           + "unsigned long v[] = {" + ",".join(names) + "};\n")
    asm = subprocess.run([gcc, "-x", "c", "-S", "-o", "-", "-"], input=src, text=True,
                         capture_output=True, check=True).stdout
    values = [int(line.split()[1], 0) for line in asm.splitlines() if line.strip().startswith(".quad")]
    ppc = uapi.ioctl_numbers("ppc64le")
    assert dict(zip(names, values)) == {n: ppc[n] for n in names}


def test_other_arches_are_asm_generic():
    assert uapi.ioc_for_arch(0x3B6E, "aarch64") == 0x3B6E
    assert uapi.ioc_for_arch(0x3B6E, "ppc64le") != 0x3B6E


def test_struct_layouts_are_the_headers():
    assert ffi.sizeof("struct vfio_irq_set") == uapi.IRQ_SET_HDR == 20
    assert ffi.offsetof("struct vfio_region_info", "size") == 16
    assert ffi.offsetof("struct vfio_region_info", "offset") == 24
    assert ffi.sizeof("struct vfio_irq_info") == 16
    assert ffi.sizeof("struct vfio_device_info") >= 16


def test_constants_from_the_header():
    assert uapi.VFIO_PCI_INTX_IRQ_INDEX == 0
    assert uapi.VFIO_PCI_CONFIG_REGION_INDEX == 7
    assert uapi.VFIO_TYPE1v2_IOMMU == 3 and uapi.VFIO_SPAPR_TCE_v2_IOMMU == 7
    assert uapi.VFIO_IRQ_SET_ACTION_TRIGGER == 1 << 5


def test_pci_constants_from_the_header():
    assert (uapi.PCI_COMMAND, uapi.PCI_STATUS, uapi.PCI_INTERRUPT_PIN) == (0x04, 0x06, 0x3D)
    assert uapi.PCI_COMMAND_INTX_DISABLE == 0x400 and uapi.PCI_STATUS_INTERRUPT == 0x08
    from pyvfio.host import config
    from pyvfio.sim import card
    assert config.PCI_COMMAND is card.PCI_COMMAND is uapi.PCI_COMMAND  # one home


def test_stale_extension_fails_loudly():
    with pytest.raises(PyvfioError, match="stale.*pip install -e"):
        _binding.check_stamp(built="0000000000000000", want="1111111111111111")
    _binding.check_stamp(built="1111111111111111", want="1111111111111111")


def test_kvm_ioctl_numbers_equal_the_headers_on_this_machine():
    assert uapi.kvm_ioctl_numbers() == uapi.kvm_header_ioctls()
    assert uapi.kvm_ioctl_numbers("x86_64")["KVM_IRQFD"] == 0x4020AE76
    assert uapi.KVMIO == _binding.lib.KVMIO == 0xAE


def test_kvm_ppc64le_numbers_equal_the_ppc64el_header():
    gcc = shutil.which("powerpc64le-linux-gnu-gcc")
    if gcc is None:
        pytest.skip("powerpc64le-linux-gnu-gcc not installed (tools/setup --lab installs it as root)")
    names = list(uapi.kvm_ioctl_numbers())
    src = "#include <linux/kvm.h>\nunsigned long v[] = {" + ",".join(names) + "};\n"
    asm = subprocess.run([gcc, "-x", "c", "-S", "-o", "-", "-"], input=src, text=True,
                         capture_output=True, check=True).stdout
    values = [int(line.split()[1], 0) for line in asm.splitlines() if line.strip().startswith(".quad")]
    assert dict(zip(names, values)) == uapi.kvm_ioctl_numbers("ppc64le")


def test_kvm_layouts_and_constants_from_the_header():
    assert ffi.sizeof("struct kvm_irqfd") == 32 and ffi.sizeof("struct kvm_userspace_memory_region") == 32
    assert ffi.offsetof("struct kvm_run", "exit_reason") == 8
    assert uapi.KVM_CAP_IRQFD_RESAMPLE == 82 and uapi.KVM_IRQFD_FLAG_RESAMPLE == 2
    assert uapi.KVM_EXIT_IO == 2 and uapi.KVM_EXIT_MMIO == 6
