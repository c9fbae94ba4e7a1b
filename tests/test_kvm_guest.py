"""The KVM guest's pieces that need no /dev/kvm: the assembler's encodings (checked
by objdump where it is installed), the profile compiler and its refusals, the
run configuration's checks, and /dev/kvm's one-line errors.  The guest itself runs
in the x86 lab (tests/lab/test_kvm.py)."""

import shutil
import subprocess

import pytest

from pyvfio.engine import RunConfig
from pyvfio.errors import KvmError, UsageError
from pyvfio.kvm import guest_program
from pyvfio.kvm.asm import EAX, ECX, Asm
from pyvfio.kvm.system import Kvm
from pyvfio import profiles
from pyvfio.profiles import base


class _Region:
    def __init__(self, access="mmap", mmappable=True):
        self.access, self.mmappable = access, mmappable


class _Profile:
    """A bound profile as guest_program.py sees it: its spec, BARs and programs."""

    def __init__(self, name, access="mmap"):
        self.spec = profiles.named(name)
        self.name = name
        self.bars = {b: _Region(access if access in bar.access else bar.access[0])
                     for b, bar in self.spec.bars.items()}
        self.programs = base.Programs(self.spec.programs, self.bars)


def _build(name, access="mmap", level=True, userspace_eoi=False, irqchip="pic"):
    """(code, reset page, IVT) of the guest for builtin profile `name`."""
    p = _Profile(name, access)
    image = guest_program.build(p, guest_program.place_windows(p), guest_program.IRQCHIPS[irqchip](5, level),
                                userspace_eoi)
    return image[guest_program.CODE], image[guest_program.RAM_SIZE], image[0]


def _objdump(code, origin):
    if shutil.which("objdump") is None:
        pytest.skip("objdump not installed")
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(code)
        f.flush()
        out = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i8086",
                              f"--adjust-vma={origin:#x}", f.name], capture_output=True, text=True,
                             check=True).stdout
    return [" ".join(line.split("\t")[2:]).split() for line in out.splitlines() if line.count("\t") >= 2]


def test_encodings_are_what_objdump_reads():
    a = Asm(0x1000)
    a.load(0x24, EAX, 4, seg="es")
    a.mov_r32_r32(ECX, EAX)
    a.store(0x64, EAX, 2, seg="es")
    a.inc_mem(0x508)
    a.store_bx_indexed(0x4000, "fs")
    a.label("x")
    a.jcc("jnz", "x")
    got = [" ".join(w) for w in _objdump(a.assemble(), 0x1000)]
    assert got == ["mov %es:0x24,%eax", "mov %eax,%ecx", "mov %ax,%es:0x64", "incl 0x508",
                   "mov %eax,%fs:0x4000(%bx)", "jne 0x1019"]


def test_edu_compiles_to_a_guest_with_its_isr_in_the_ivt():
    code, reset, ivt = _build("edu")
    isr = int.from_bytes(ivt[4 * 0x25:4 * 0x25 + 2], "little")
    assert guest_program.CODE < isr < guest_program.CODE + len(code)
    assert reset[0xFF0:0xFF5] == b"\xea\x00\x10\x00\x00"     # jmp far 0000:1000
    text = [" ".join(w) for w in _objdump(code, guest_program.CODE)]
    assert "mov %eax,%es:0x60" in text                         # raise: IRQ_RAISE
    assert "mov %es:0x24,%eax" in text and "mov %eax,%es:0x64" in text   # ack: status, ack


def test_ioapic_guest_reaches_the_ioapic_and_lapic_through_unreal_mode():
    code, _, ivt = _build("edu", irqchip="ioapic")
    text = " | ".join(" ".join(w) for w in _objdump(code, guest_program.CODE))
    assert "lgdtl 0x610" in text and "mov %bx,%gs" in text
    assert "addr32 mov %eax,%gs:0xfec00010" in text      # IOWIN
    assert "addr32 mov %eax,%gs:0xfee000b0" in text      # the LAPIC EOI in the ISR
    isr = int.from_bytes(ivt[4 * guest_program.IOAPIC_VECTOR:4 * guest_program.IOAPIC_VECTOR + 2], "little")
    assert guest_program.CODE < isr < guest_program.CODE + len(code)


def test_e1000_compiles():
    code, _, _ = _build("e1000")
    text = [" ".join(w) for w in _objdump(code, guest_program.CODE)]
    assert "mov %eax,%es:0xc8" in text and "mov %es:0xc0,%eax" in text


def test_userspace_eoi_only_when_asked():
    plain, _, _ = _build("edu")
    with_eoi, _, _ = _build("edu", level=False, userspace_eoi=True)
    assert len(with_eoi) > len(plain)
    assert "mov $0x511,%dx" in " ".join(" ".join(w) for w in _objdump(with_eoi, guest_program.CODE))


def test_ops_the_guest_cannot_express_are_refused():
    with pytest.raises(UsageError, match="cannot run in the KVM guest: rotating writes") as exc:
        _build("rtl8139", access="rw")
    assert "\n" not in str(exc.value) and "--guest toy" in str(exc.value)
    p = _Profile("edu")
    p.programs = p.programs.replaced({"ack": (base.Op("delay", count=5, reg="settle"),)})
    with pytest.raises(UsageError, match="delay of settle cannot run in the KVM guest"):
        guest_program.build(p, guest_program.place_windows(p), guest_program.Pic(5, True), False)


@pytest.mark.parametrize("kw, message", [
    (dict(guest="vmware"), "unknown guest 'vmware'"),
    (dict(guest="kvm", unmask="sometimes"), "unknown unmask mode 'sometimes' for the KVM guest"),
    (dict(guest="kvm", source="external"), "--source external is not available with --guest kvm"),
    (dict(guest="kvm", interval_us=10), "--interval is not available with --guest kvm"),
    (dict(guest="kvm", irqchip="apic9000"), "unknown irqchip 'apic9000'"),
    (dict(unmask="resample"), "unknown unmask mode 'resample'"),
    (dict(irqchip="ioapic"), "--irqchip ioapic is for --guest kvm"),
])
def test_bad_configurations(kw, message):
    with pytest.raises(UsageError, match=message):
        RunConfig(**kw).check()


def test_intx_mode_follows_the_kvm_unmask():
    assert RunConfig(guest="kvm", unmask="resample").intx_mode == "eventfd"
    assert RunConfig(guest="kvm", unmask="none").intx_mode == "ioctl"
    assert RunConfig(unmask="eventfd").intx_mode == "eventfd"


def test_no_dev_kvm_is_one_line(tmp_path):
    with pytest.raises(KvmError) as exc:
        Kvm(str(tmp_path / "kvm"))
    assert "does not exist" in str(exc.value) and "kvm_amd" in str(exc.value)
    assert "\n" not in str(exc.value)
