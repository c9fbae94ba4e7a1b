"""The IRQ INTx will really get (host/irq_route.py): sysfs irq is config 0x3c until
the first pci_enable_device routes the pin; vfio-pci's handler, the device's
`enable`, or an irq that differs from config 0x3c say the routed one is known."""

from fixtures.fakehost import FakeHost
from pyvfio.host import interrupts, irq_route, pci, system
from pyvfio.vfio import intx_probe

BDF = "0000:00:10.0"
HELD = """\
           CPU0
 20:        120  IR-IO-APIC  20-fasteoi   vfio-intx(0000:00:10.0)
"""


def card(tmp_path, irq, line, driver="vfio-pci", enable=None, interrupts_text=None):
    h = FakeHost(tmp_path)
    h.add_device(BDF, 0x1234, 0x11E8, 0x00FF00, driver=driver, group=3, irq=irq, line=line)
    if enable is not None:
        h.write(f"sys/bus/pci/devices/{BDF}/enable", f"{enable}\n")
    if interrupts_text:
        h.write("proc/interrupts", interrupts_text)
    return h, pci.device(BDF, h.root)


def test_firmware_line_before_the_first_enable(tmp_path):
    h, dev = card(tmp_path, irq=10, line=10, enable=0)
    r = irq_route.route(dev, h.root)
    assert (r.irq, r.basis, r.known, r.firmware_line) == (10, "firmware", False, 10)
    assert r.text("A") == "pin A, IRQ 10 from firmware (the kernel routes it at enable)"


def test_enabled_now_means_routed(tmp_path):
    h, dev = card(tmp_path, irq=10, line=10, enable=1)
    r = irq_route.route(dev, h.root)
    assert (r.irq, r.basis, r.known) == (10, "enabled", True)


def test_an_irq_other_than_config_0x3c_was_routed_at_an_earlier_enable(tmp_path):
    # acpi_pci_irq_disable leaves pdev->irq: the GSI stays in sysfs after vfio closes
    h, dev = card(tmp_path, irq=20, line=10, enable=0)
    r = irq_route.route(dev, h.root)
    assert (r.irq, r.basis) == (20, "routed") and r.text("A") == "pin A routed to IRQ 20"
    assert "config 0x3c: 10" in r.evidence


def test_vfio_holding_the_line_is_the_last_word(tmp_path):
    h, dev = card(tmp_path, irq=10, line=10, interrupts_text=HELD)
    r = irq_route.route(dev, h.root, interrupts.read(h.root))
    assert (r.irq, r.basis) == (20, "requested")


def test_no_irq_at_all(tmp_path):
    h, dev = card(tmp_path, irq=0, line=0)
    r = irq_route.route(dev, h.root)
    assert r.irq is None and not r.known and r.text("A") == "pin A, no IRQ yet"


def test_the_probe_never_touches_what_it_must_not(tmp_path):
    h, dev = card(tmp_path, irq=10, line=10)
    got, why = intx_probe.probe(dev, h.root)
    assert got is None and "is not the live host" in why
    _, host_driven = card(tmp_path / "b", irq=10, line=10, driver="e1000")
    got, why = intx_probe.probe(host_driven, "/")
    assert got is None and "bound to e1000, not vfio-pci" in why


def test_the_probe_is_needed_only_for_what_sysfs_cannot_say(tmp_path):
    h, dev = card(tmp_path, irq=20, line=10)                    # routed, DisINTx unknown
    h.write("sys/module/vfio_pci/parameters/nointxmask", "Y\n")
    h.add_driver("vfio-pci")
    s = system.probe(h.root)
    assert not intx_probe.needed(dev, irq_route.route(dev, h.root), s)   # controller anyway
    h.write("sys/module/vfio_pci/parameters/nointxmask", "N\n")
    assert intx_probe.needed(dev, irq_route.route(dev, h.root), system.probe(h.root))
    h2, fresh = card(tmp_path / "c", irq=10, line=10)
    h2.write("sys/module/vfio_pci/parameters/nointxmask", "Y\n")
    assert intx_probe.needed(fresh, irq_route.route(fresh, h2.root), system.probe(h2.root))
