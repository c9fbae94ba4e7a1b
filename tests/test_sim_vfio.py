"""vfio-pci's INTx path on the model: 2.3 re-signal, unmask-before-ack on each
controller, SET_IRQS argument checks and errnos, IRQ info, regions, config space."""

import errno

import pytest

from pyvfio import uapi
from pyvfio.errors import AccessError, UsageError, VfioError
from pyvfio.eventfd import EventFd
from pyvfio.intx import INTX, DeviceIrq
from pyvfio.profiles import probe
from pyvfio.sim import ModelHost

RAISE, ACK, STATUS = 0x60, 0x64, 0x24
T = uapi.VFIO_IRQ_SET_ACTION_TRIGGER
U = uapi.VFIO_IRQ_SET_ACTION_UNMASK
M = uapi.VFIO_IRQ_SET_ACTION_MASK
NONE, BOOL, EFD = (uapi.VFIO_IRQ_SET_DATA_NONE, uapi.VFIO_IRQ_SET_DATA_BOOL,
                   uapi.VFIO_IRQ_SET_DATA_EVENTFD)


@pytest.mark.parametrize("unmask", ("ioctl", "eventfd"))
@pytest.mark.parametrize("controller", ("xive", "xics", "ioapic"))
def test_pci23_unmask_before_ack_resignals_without_the_controller(controller, unmask):
    h = ModelHost(controller, "2.3")
    bar = h.region(0)
    with DeviceIrq(h, unmask) as ix:
        bar.write(RAISE, 4, 1)
        assert ix.trigger.consume() == 1
        before = h.host_state()
        assert before["disintx"] is True                # masked at the card
        ix.eoi()                                        # unmask, card not serviced yet
        # eventfd mode: virqfd's inject is deferred work, run before the user's next step
        assert ix.trigger.consume() == 1                # re-signalled ...
        after = h.host_state()
        assert after["controller_deliveries"] == before["controller_deliveries"]   # ... by vfio
        assert after["vfio_masked"] is True and after["disintx"] is True
        bar.write(ACK, 4, 1)
        ix.eoi()                                        # now STATUS.INTERRUPT is clear
        assert ix.trigger.consume() == 0
        assert h.host_state()["disintx"] is False


@pytest.mark.parametrize("controller,policy,want", [
    ("ioapic", "unlazy", 1), ("xics", "unlazy", 1),   # unmask re-presents the high line
    ("ioapic", "lazy", 1), ("xics", "lazy", 1),       # (masked by the spurious delivery)
    ("xive", "unlazy", 0),                            # SET_PQ_00 does not re-trigger (QEMU)
])
def test_non23_unmask_before_ack(controller, policy, want):
    h = ModelHost(controller, "non-2.3", policy)
    bar = h.region(0)
    with DeviceIrq(h) as ix:
        bar.write(RAISE, 4, 1)
        assert ix.trigger.consume() == 1
        ix.eoi()
        assert ix.trigger.consume() == want


def test_ioctl_errors_carry_the_kernels_errno():
    h = ModelHost("ioapic", "non-2.3")

    def err(*a, **k):
        with pytest.raises(VfioError) as e:
            h.set_irqs(*a, **k)
        assert e.value.op == "VFIO_DEVICE_SET_IRQS"
        return e.value.errno

    assert err(INTX, U | NONE) == errno.EINVAL                 # INTx not enabled
    assert err(INTX, M | NONE) == errno.EINVAL
    assert err(INTX, T | NONE) == errno.EINVAL                 # loopback needs INTx
    assert err(uapi.VFIO_PCI_NUM_IRQS, T | NONE) == errno.EINVAL
    assert err(uapi.VFIO_PCI_MSI_IRQ_INDEX, T | NONE) == errno.EINVAL  # no MSI on this card
    assert err(INTX, T | NONE | EFD) == errno.EINVAL           # two data types
    assert err(INTX, T | 0x100) == errno.EINVAL                # unknown flag bit
    assert err(INTX, T | EFD, 0, 2, [EventFd(), EventFd()]) == errno.EINVAL   # count > 1
    assert err(INTX, T | EFD, 0, 1, [7]) == errno.EBADF        # raw fd
    assert err(INTX, T | M | NONE) == errno.ENOTTY             # two actions
    with DeviceIrq(h, "eventfd") as ix:
        assert err(INTX, M | EFD, 0, 1, [EventFd()]) == errno.ENOTTY   # XXX implement me
        assert err(INTX, U | EFD, 0, 1, [EventFd()]) == errno.EBUSY    # already registered
        assert err(INTX, U | NONE, 0, 2) == errno.EINVAL
        h.set_irqs(INTX, T | NONE)                                # loopback: a signal
        assert ix.trigger.consume() == 1
        h.set_irqs(INTX, T | BOOL, 0, 1, b"\x00")                 # BOOL false: nothing
        assert ix.trigger.consume() == 0


def test_trigger_swap_and_disable():
    h = ModelHost("xive", "non-2.3", "unlazy")
    a, b = EventFd(), EventFd()
    h.set_irqs(INTX, T | EFD, 0, 1, [a])
    h.set_irqs(INTX, T | EFD, 0, 1, [b])                   # swap the trigger
    h.region(0).write(RAISE, 4, 1)
    assert (a.consume(), b.consume()) == (0, 1)
    h.set_irqs(INTX, T | NONE, 0, 0)                        # disable: free_irq
    assert h.host_state()["pq"] == "01" and h.desc.action is None
    with pytest.raises(VfioError):
        h.set_irqs(INTX, U | NONE)


def test_mask_ioctl_then_unmask_balances_genirq_depth():
    h = ModelHost("ioapic", "non-2.3", "unlazy")
    with DeviceIrq(h) as ix:
        ix.mask()
        assert h.host_state()["depth"] == 1 and h.host_state()["rte_masked"] is True
        ix.mask()                                           # already masked: no-op
        assert h.host_state()["depth"] == 1
        ix.unmask()
        assert h.host_state()["depth"] == 0 and h.host_state()["rte_masked"] is False


def test_unbalanced_enable_is_a_warning_not_a_change():
    h = ModelHost("ioapic", "non-2.3", trace=True)
    h.desc.request_irq(lambda irq: 1)
    h.desc.enable_irq()
    assert h.desc.depth == 0 and h.trace.find("Unbalanced enable")


def test_irq_info():
    h = ModelHost()
    info = h.irq_info(INTX)
    want = uapi.VFIO_IRQ_INFO_EVENTFD | uapi.VFIO_IRQ_INFO_MASKABLE | uapi.VFIO_IRQ_INFO_AUTOMASKED
    assert (info.index, info.flags, info.count) == (INTX, want, 1)
    assert h.irq_info(uapi.VFIO_PCI_MSI_IRQ_INDEX).count == 0
    for bad in (uapi.VFIO_PCI_ERR_IRQ_INDEX, uapi.VFIO_PCI_NUM_IRQS):
        with pytest.raises(VfioError):
            h.irq_info(bad)


def test_regions_are_bounded_and_width_checked():
    h = ModelHost()
    bar, cfg = h.region(0, "mmap"), h.region(uapi.VFIO_PCI_CONFIG_REGION_INDEX)
    assert bar.access == "mmap" and bar.size == 1 << 20
    assert bar.read(0, 4) == 0x010000ED
    with pytest.raises(AccessError):
        bar.read(0x24, 2)                        # edu: 32-bit only
    with pytest.raises(AccessError):
        bar.write(bar.size, 4, 0)
    with pytest.raises(AccessError):
        cfg.read(0xFF, 2)
    assert (cfg.read(0, 2), cfg.read(2, 2)) == (0x1234, 0x11E8)
    assert cfg.read(0x3D, 1) == 1                # INTA#
    with pytest.raises(VfioError):
        h.region(3)
    with pytest.raises(UsageError):
        h.region(0, "dma")


def test_the_edu_profile_probes_the_model_card():
    assert probe(ModelHost()).name == "edu"


def test_config_disintx_is_virtual_and_drives_masking():
    h = ModelHost("xive", "2.3")
    cfg, bar = h.region(uapi.VFIO_PCI_CONFIG_REGION_INDEX), h.region(0)
    with DeviceIrq(h) as ix:
        cfg.write(4, 2, cfg.read(4, 2) | 0x400)    # the guest sets DisINTx
        assert cfg.read(4, 2) & 0x400 and h.host_state()["disintx"] is True
        bar.write(RAISE, 4, 1)
        assert ix.trigger.consume() == 0           # virq_disabled: nothing signalled
        assert cfg.read(6, 2) & 0x08               # STATUS.INTERRUPT (2.3 card)
        cfg.write(4, 2, cfg.read(4, 2) & ~0x400)   # clear: unmask -> pending -> re-signal
        assert ix.trigger.consume() == 1


def test_non23_card_has_readonly_disintx_and_no_status_bit():
    h = ModelHost("ioapic", "non-2.3")
    assert h.vfio.pci_2_3 is False
    h.card.write_command(h.card.command | 0x400)
    assert h.card.disintx is False
    h.region(0).write(RAISE, 4, 1)
    assert h.card.config_read(6, 2) & 0x08 == 0


def test_bad_names():
    for kw in ({"controller": "gic"}, {"card": "pcie"}, {"policy": "eager"},
               {"xics_variant": "p10"}):
        with pytest.raises(UsageError):
            ModelHost(**kw)


def test_unmask_eventfd_signalled_before_registration_is_not_missed():
    """vfio_virqfd_enable polls the eventfd: an EOI written before the fd was
    registered still unmasks (and the count is left for the next wakeup)."""
    h = ModelHost("ioapic", "non-2.3", "unlazy")
    with DeviceIrq(h) as ix:                     # ioctl mode: no unmask eventfd yet
        bar = h.region(0)
        bar.write(RAISE, 4, 1)
        assert ix.trigger.consume() == 1
        bar.write(ACK, 4, 1)
        assert h.host_state()["vfio_masked"] is True
        efd = EventFd()
        efd.signal()                        # the EOI, before registration
        h.set_irqs(INTX, U | EFD, 0, 1, [efd])
        assert h.host_state()["vfio_masked"] is False and h.host_state()["depth"] == 0
        assert efd.consume() == 1           # vfs_poll does not consume
        h.set_irqs(INTX, U | EFD, 0, 1, [-1])
        efd.close()
