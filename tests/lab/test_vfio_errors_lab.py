"""Bad input against a real kernel's VFIO: each a clear error, never a wild access;
and the SET_IRQS action/data combinations the kernel accepts (or refuses) for INTx."""

import errno

import pytest

from pyvfio import uapi
from pyvfio.errors import AccessError, UsageError, VfioError
from pyvfio.eventfd import EventFd
from pyvfio.intx import INTX
from pyvfio.vfio import open_device

pytestmark = pytest.mark.lab
U = uapi


def test_region_index_out_of_range(device):
    with pytest.raises(UsageError, match="region index 99 is out of range"):
        device.region(99)


@pytest.mark.parametrize("access", ["mmap", "rw"])
def test_access_past_the_end_and_bad_width(device, access):
    bars = [i for i in range(6) if device.region_info(i)[1]
            and (access == "rw" or device.region_info(i)[0] & U.VFIO_REGION_INFO_FLAG_MMAP)]
    if not bars:        # an I/O-port-only card (pci-serial): nothing maps
        with pytest.raises(AccessError):
            device.region(0, access)
        return
    bar = device.region(bars[0], access)
    with pytest.raises(AccessError, match="past the end"):
        bar.read(bar.size, 4)
    with pytest.raises(AccessError, match="past the end"):
        bar.write(bar.size - 2, 4, 0)
    with pytest.raises(AccessError, match="unsupported access width 3"):
        bar.read(0, 3)
    with pytest.raises(AccessError, match="past the end"):
        device.config.read(device.config.size, 4)


def test_iommu_type_not_offered(card):
    # Debian's kernels are built without CONFIG_VFIO_NOIOMMU
    with pytest.raises(VfioError, match="IOMMU type noiommu is not offered"):
        open_device(card["bdf"], iommu="noiommu")


def test_group_is_busy_while_open(card, device):
    with pytest.raises(VfioError, match="another process|EBUSY|busy"):
        open_device(card["bdf"])


def test_set_irqs_combinations(card, device):
    info = device.irq_info(INTX)
    assert info.count == 1
    with EventFd() as trig:
        device.set_irqs(INTX, U.VFIO_IRQ_SET_ACTION_TRIGGER | U.VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, [trig])
        device.set_irqs(INTX, U.VFIO_IRQ_SET_ACTION_TRIGGER | U.VFIO_IRQ_SET_DATA_BOOL, 0, 1, b"\x01")
        assert trig.wait(1.0) == 1                                   # BOOL true: a loopback signal
        device.set_irqs(INTX, U.VFIO_IRQ_SET_ACTION_TRIGGER | U.VFIO_IRQ_SET_DATA_BOOL, 0, 1, b"\x00")
        assert trig.wait(0.2) == 0                                   # BOOL false: nothing
        device.set_irqs(INTX, U.VFIO_IRQ_SET_ACTION_MASK | U.VFIO_IRQ_SET_DATA_BOOL, 0, 1, b"\x01")
        device.set_irqs(INTX, U.VFIO_IRQ_SET_ACTION_UNMASK | U.VFIO_IRQ_SET_DATA_BOOL, 0, 1, b"\x01")
        with pytest.raises(VfioError) as exc:                        # not implemented by the kernel
            device.set_irqs(INTX, U.VFIO_IRQ_SET_ACTION_MASK | U.VFIO_IRQ_SET_DATA_EVENTFD, 0, 1, [trig])
        assert exc.value.errno in (errno.ENOTTY, errno.EINVAL)
        with pytest.raises(UsageError, match="single line"):        # refused before the kernel
            device.set_irqs(INTX, U.VFIO_IRQ_SET_ACTION_UNMASK | U.VFIO_IRQ_SET_DATA_NONE, 0, 2)
        with pytest.raises(UsageError, match="exactly one"):
            device.set_irqs(INTX, U.VFIO_IRQ_SET_ACTION_UNMASK | U.VFIO_IRQ_SET_ACTION_MASK
                            | U.VFIO_IRQ_SET_DATA_NONE)
        device.set_irqs(INTX, U.VFIO_IRQ_SET_ACTION_TRIGGER | U.VFIO_IRQ_SET_DATA_NONE, 0, 0)


def test_reset_when_offered(device):
    if device.flags & U.VFIO_DEVICE_FLAGS_RESET:
        device.reset()
        assert device.config.read(0, 2) != 0xFFFF  # still answers after the reset
    else:
        with pytest.raises(VfioError, match="no reset"):
            device.reset()
