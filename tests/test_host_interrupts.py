"""/proc/interrupts parsing: x86 (this machine's real file and an IO-APIC sample with
vfio-intx lines), POWER9 XIVE and POWER8 XICS samples written from the kernel's
format (kernel/irq/proc.c with CONFIG_GENERIC_IRQ_SHOW_LEVEL), and a Linux 2.6
file where the chip and trigger were one word."""

import os

import pytest

from pyvfio.host import interrupts

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "interrupts")


def lines(name):
    with open(os.path.join(FIX, name)) as f:
        return interrupts.parse(f.read())


def test_x86_real_file_from_this_machine():
    irqs = lines("x86-virtio-msix.txt")
    assert irqs[26].chip == "IO-APIC" and irqs[26].hwirq == 4 and irqs[26].actions == ["ttyS0"]
    assert irqs[26].counts == [0, 14] and irqs[26].total == 14
    assert irqs[36].chip == "PCI-MSIX-0000:00:02.0" and irqs[36].actions == ["virtio1-req.0"]
    assert all(isinstance(k, int) for k in irqs)      # NMI, LOC... are not IRQ lines


def test_x86_ioapic_vfio_line_by_name_and_its_controller():
    irqs = lines("x86-ioapic-vfio.txt")
    line = interrupts.find(irqs, action=interrupts.vfio_intx_name("0000:00:03.0"))
    assert line.irq == 11
    assert (line.chip, line.hwirq, line.handler, line.trigger) == ("IO-APIC", 11, "fasteoi", "Level")
    assert line.total == 20001 + 19873
    assert interrupts.other_holders(line, "0000:00:03.0") == []


def test_x86_shared_line_reports_the_other_holder():
    irqs = lines("x86-ioapic-vfio.txt")
    line = interrupts.intx_line("0000:02:00.0", lines=irqs)
    assert line.irq == 16 and line.chip == "IR-IO-APIC"
    assert line.actions == ["ehci_hcd:usb1", "vfio-intx(0000:02:00.0)"]
    # vfio-pci asks for this line exclusively without DisINTx: EBUSY because of ehci
    assert interrupts.other_holders(line, "0000:02:00.0") == ["ehci_hcd:usb1"]


def test_msi_line_with_a_large_hwirq():
    line = lines("x86-ioapic-vfio.txt")[24]
    assert (line.chip, line.hwirq, line.handler, line.actions) == (
        "PCI-MSI", 49152, "edge", ["ahci[0000:00:1f.2]"])


def test_power9_xive():
    irqs = lines("power9-xive.txt")
    line = interrupts.intx_line("0001:00:01.0", lines=irqs)
    assert (line.irq, line.chip, line.hwirq, line.trigger) == (22, "XIVE-IRQ", 4609, "Level")
    assert line.counts == [1, 0, 0, 0] and line.total == 1
    assert irqs[23].actions == ["virtio0", "virtio1"] and irqs[23].total == 329
    assert irqs[16].chip == "XIVE-IPI" and irqs[16].trigger == "Edge"


def test_power8_xics_single_cpu():
    line = lines("power8-xics.txt")[18]
    assert (line.chip, line.hwirq, line.trigger, line.actions) == (
        "XICS", 4099, "Level", ["vfio-intx(0000:00:01.0)"])


def test_linux_2_6_chip_and_trigger_in_one_word():
    irqs = lines("linux-2.6-ioapic.txt")
    assert irqs[18].chip == "IO-APIC-level" and irqs[18].trigger == "Level"
    assert irqs[18].hwirq is None and irqs[18].actions == ["eth0", "b1pci-9c00"]
    assert irqs[0].chip == "XT-PIC" and irqs[0].actions == ["timer"]


def test_lookup_by_number_when_vfio_does_not_hold_it():
    irqs = lines("x86-ioapic-vfio.txt")
    assert interrupts.intx_line("0000:00:09.0", irq=9, lines=irqs).actions == ["acpi"]
    assert interrupts.intx_line("0000:00:09.0", irq=77, lines=irqs) is None
    assert interrupts.other_holders(None, "0000:00:09.0") == []


@pytest.mark.parametrize("text", ["", "           CPU0\n", "garbage\n  x: y\n"])
def test_empty_or_odd_files_parse_to_nothing(text):
    assert interrupts.parse(text) == {}


def test_read_uses_the_root(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "interrupts").write_text(
        open(os.path.join(FIX, "power8-xics.txt")).read())
    assert interrupts.read(str(tmp_path))[18].chip == "XICS"
    assert interrupts.read(str(tmp_path / "nothing")) == {}
