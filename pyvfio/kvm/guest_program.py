"""The KVM guest's program: real-mode code pyvfio assembles (asm.py), with the card
profile's raise and ack programs compiled into it, so one profile serves the Python
engine, the C loop and this guest.

Guest physical layout (one vCPU, real mode, CS = DS = SS = 0):

    0x00000  real-mode IVT, written by the host: the card's vector -> the ISR, the
             PIC's other vectors -> a stub that counts them (the 8259 answers an
             INTA that finds no request with IRQ7, or IRQ15 from the slave:
             arch/x86/kvm/i8259.c kvm_pic_read_irq), every other vector -> a stub
             that reports an unexpected exception to the host
    0x00500  control block (CTRL: dwords the host reads and writes in guest RAM)
    0x01000  code: set-up, main loop, ISR
    0x08000  top of the stack
    0x10000  FS: three arrays of TSC deltas and one of T0's low 32 bits (where
             --explain places each interrupt on the host's clock), one entry per
             interrupt of a batch
    0x40000  the card's BAR windows, 64 KiB-aligned (ES per access): a memslot
             where VFIO lets the BAR be mmapped, else trapped (KVM_EXIT_MMIO)
    ports    I/O BARs at 0xc000 + 0x100 * k (trapped: KVM_EXIT_IO); 0x510 batch
             end, 0x511 EOI to userspace (--unmask ioctl/eventfd)
    0xfffff000  the reset page: KVM's reset state is CS 0xf000 base 0xffff0000,
             IP 0xfff0, where a far jump leads to 0000:1000 (no kvm_sregs needed)

Per interrupt the main loop stamps the TSC (T0), runs the raise program, and waits
(`sti; hlt`, the sti shadow closes the race) until the ISR counted a serviced
cause.  The ISR stamps its entry, runs the ack program, EOIs the PIC (a non-specific
EOI: arch/x86/kvm/i8259.c pic_clear_isr runs the ack notifiers, so KVM's irqfd
resampler deasserts the GSI and signals the resamplefd, which vfio-pci's virqfd
turns into an unmask), optionally exits to userspace for the unmask, and stamps
again.  A cause of 0 is a spurious interrupt (counted, EOId, not a delivery).
With --eoi-first the EOI comes before the ack (build()).
"""

from dataclasses import dataclass

from ..errors import UsageError
from ..profiles import base, ops
from .asm import EAX, ECX, Asm

RAM_SIZE = 0x40000
CODE = 0x1000
STACK_TOP = 0x8000
ARRAYS = 0x10000          # FS base
BATCH_MAX = 4096          # entries per array (4 x 16 KiB: FS's 64 KiB)
WINDOWS = 0x40000
WINDOW_LIMIT = 0x100000   # real mode reaches just beyond 1 MiB; keep below it
IO_BASE, IO_STRIDE = 0xC000, 0x100
RESET_PAGE = 0xFFFFF000
PORT_BATCH, PORT_EOI, PORT_FAULT = 0x510, 0x511, 0x512
PIC_VECTOR = {0: 0x20, 8: 0x28}   # vector bases programmed into the master and the slave
GDT = 0x600                       # the flat data descriptor unreal mode loads (Ioapic)
GDTR = GDT + 0x10
IOAPIC_BASE, LAPIC_BASE = 0xFEC00000, 0xFEE00000
IOAPIC_VECTOR = 0x30
LAPIC_SPURIOUS = 0xFF

# The control block: name -> byte offset (all dwords).
CTRL_BASE = 0x500
CTRL_FIELDS = ("n", "i", "done", "isr_n", "spurious", "raised", "abort", "cause", "scratch",
               "t0", "t1", "t2", "t3", "t_entry", "tsc_lo", "tsc_hi", "stray")
CTRL = {name: CTRL_BASE + 4 * k for k, name in enumerate(CTRL_FIELDS)}
# The arrays (FS offsets): raise -> ISR entry, ISR entry -> EOI done, raise -> back in the loop,
# and T0 itself (its low 32 bits: the host unwraps them from the batch end's full TSC).
A_WAKEUP, A_SERVICE, A_RTT, A_T0 = 0, 4 * BATCH_MAX, 8 * BATCH_MAX, 12 * BATCH_MAX


@dataclass(frozen=True)
class Window:
    """Where the guest sees one of the profile's BARs."""
    name: str
    kind: str        # "mem" or "io"
    base: int        # guest physical address (mem) or port (io)
    size: int
    mapped: bool     # mem: a memslot over VFIO's mmap; else every access exits


def place_windows(profile):
    """A Window for every BAR the profile names, in the layout above."""
    out, gpa, port = {}, WINDOWS, IO_BASE
    for name, region in sorted(profile.bars.items()):
        size = profile.spec.bars[name].size
        if bar_is_io(profile, name):
            if size > IO_STRIDE:
                raise UsageError(f"profile {profile.name}: I/O BAR {name} needs {size:#x} ports, the "
                                 f"KVM guest gives each I/O BAR {IO_STRIDE:#x}")
            out[name] = Window(name, "io", port, size, False)
            port += IO_STRIDE
            continue
        size = -(-size // 0x1000) * 0x1000
        if gpa + size > WINDOW_LIMIT:
            raise UsageError(f"profile {profile.name}: BAR {name} does not fit below 1 MiB for the "
                             "real-mode KVM guest")
        out[name] = Window(name, "mem", gpa, size, region.mmappable and region.access == "mmap")
        gpa += -(-size // 0x10000) * 0x10000
    return out


def bar_is_io(profile, name):
    """What the profile says of the BAR it opened (io or mem), for the method in use."""
    bar = profile.spec.bars[name]
    method = profile.bars[name].access
    return bar.kind.get(method, bar.kind.get("rw")) == "io"


@dataclass(frozen=True)
class Pic:
    """The 8259 pair as the guest programs it for one IRQ (0-15, not the cascade)."""
    irq: int
    level: bool      # ELCR bit: level-triggered (resample) or edge (a pulse irqfd)
    name = "pic"

    @property
    def vector(self):
        return PIC_VECTOR[self.irq & 8] + (self.irq & 7)

    def program(self, a):
        """ICW1-4 to both chips (vector bases 0x20/0x28, slave on IRQ2, 8086 mode),
        every line masked but this one (and the cascade), then its ELCR bit (ports
        0x4d0/0x4d1; arch/x86/kvm/i8259.c keeps IRQ 0-2 edge whatever is written)."""
        for cmd, data, vector_base, cascade in ((0x20, 0x21, 0x20, 0x04), (0xA0, 0xA1, 0x28, 0x02)):
            a.out_imm8(cmd, 0x11)
            a.out_imm8(data, vector_base)
            a.out_imm8(data, cascade)
            a.out_imm8(data, 0x01)
        bit = 1 << (self.irq & 7)
        master_mask = 0xFF & ~(bit if self.irq < 8 else 0x04)
        slave_mask = 0xFF & ~(bit if self.irq >= 8 else 0)
        a.out_imm8(0x21, master_mask)
        a.out_imm8(0xA1, slave_mask)
        elcr = bit if self.level else 0
        a.mov_r16_imm(EAX, elcr if self.irq < 8 else 0)
        a.out_dx(0x4D0)
        a.mov_r16_imm(EAX, elcr if self.irq >= 8 else 0)
        a.out_dx(0x4D1)

    def eoi(self, a):
        if self.irq >= 8:
            a.out_imm8(0xA0, 0x20)
        a.out_imm8(0x20, 0x20)


class Ioapic:
    """KVM's in-kernel IOAPIC and LAPIC as the guest programs them for one GSI:
    the PIC masked whole, the LAPIC enabled (SVR), the GSI's redirection entry
    unmasked, fixed delivery to APIC 0, level (resample) or edge; EOI at the LAPIC,
    which for a level vector (its TMR bit) KVM forwards to the IOAPIC
    (arch/x86/kvm/ioapic.c kvm_ioapic_update_eoi_one: remote IRR cleared, the ack
    notifiers run: the resampler).  Real mode cannot reach 0xfec00000, so set-up
    first enters unreal mode (GS flat)."""

    name = "ioapic"

    def __init__(self, gsi, level):
        self.irq, self.level = gsi, level
        self.vector = IOAPIC_VECTOR

    def program(self, a):
        a.out_imm8(0x21, 0xFF)
        a.out_imm8(0xA1, 0xFF)
        a.enter_unreal(GDTR, 0x08)
        a.mov_r32_imm(EAX, 0x100 | LAPIC_SPURIOUS)           # SVR: APIC software-enabled
        a.store_abs32(LAPIC_BASE + 0xF0)
        low = self.vector | (1 << 15 if self.level else 0)    # active high, physical, fixed
        for index, value in ((0x10 + 2 * self.irq + 1, 0), (0x10 + 2 * self.irq, low)):
            a.mov_r32_imm(EAX, index)
            a.store_abs32(IOAPIC_BASE)                        # IOREGSEL
            a.mov_r32_imm(EAX, value)
            a.store_abs32(IOAPIC_BASE + 0x10)                 # IOWIN

    def eoi(self, a):
        a.xor_r32_r32(EAX, EAX)
        a.store_abs32(LAPIC_BASE + 0xB0)


IRQCHIPS = {"pic": Pic, "ioapic": Ioapic}


def gdt():
    """The GDT unreal mode loads: null, then a flat 4 GiB read/write data segment;
    and its descriptor (limit, 32-bit base)."""
    table = bytes(8) + (0x00CF92000000FFFF).to_bytes(8, "little")
    return table, (len(table) - 1).to_bytes(2, "little") + GDT.to_bytes(4, "little")


class ProgramCompiler:
    """Profile ops (profiles/base.Op) -> guest instructions, with the semantics the
    C loop gives them (csrc/loop.c run_ops): the raw value of the last read is kept
    in ECX for write_cause; its (raw ^ invert) & mask is the program's cause, stored
    at `cause_at`.  Ops the guest cannot express are refused, in one line: the kinds
    whose row in profiles/ops.py says why, and forms of the others (a rotating write,
    an 8-byte access)."""

    def __init__(self, profile, windows):
        self.profile = profile
        self.windows = windows

    def refuse(self, op, why):
        raise UsageError(f"profile {self.profile.name}: {op.kind} of {op.reg or 'a register'} "
                         f"cannot run in the KVM guest: {why}",
                         "use --guest toy for this profile (the C and Python engines run every op)")

    def compile(self, a, program, cause_at):
        a.mov_mem_imm(cause_at, 0)
        for op in program:
            why = ops.BY_NAME[op.kind].kvm    # the kinds the guest runs: ops.KVM_KINDS
            if why:
                self.refuse(op, why)
            if op.rotate > 1:
                self.refuse(op, "rotating writes need the raise count, which the guest does not track")
            if op.width not in (1, 2, 4):
                self.refuse(op, f"{op.width}-byte accesses are beyond real mode")
            w = self._window(op)
            if op.kind == base.READ:
                self._load(a, w, op)
                a.mov_r32_r32(ECX, EAX)
                if op.invert:
                    a.xor_eax_imm(op.invert)
                a.and_eax_imm(op.mask)
                a.store(cause_at)
            elif op.kind == base.WRITE:
                self._segment(a, w)
                a.mov_r32_imm(EAX, op.value)
                self._store(a, w, op)
            elif op.kind == base.WRITE_CAUSE:
                self._segment(a, w)
                a.mov_r32_r32(EAX, ECX)
                self._store(a, w, op)
            elif op.kind == base.RMW:
                self._load(a, w, op)
                a.and_eax_imm(~op.mask)
                a.or_eax_imm(op.value)
                self._store(a, w, op)
            else:
                self.refuse(op, "unknown op")

    def _window(self, op):
        w = self.windows[op.bar]
        if op.offset + op.width > w.size:
            self.refuse(op, f"offset {op.offset:#x} is outside the guest's window of {w.name}")
        if w.kind == "mem" and op.offset + op.width > 0x10000:
            self.refuse(op, "offsets beyond 64 KiB are out of a real-mode segment")
        return w

    @staticmethod
    def _segment(a, w):
        """ES = the BAR's window (through AX: do it before loading EAX)."""
        if w.kind == "mem":
            a.mov_r16_imm(EAX, w.base >> 4)
            a.mov_sreg_ax("es")

    def _load(self, a, w, op):
        if w.kind == "io":
            a.in_dx(w.base + op.offset, op.width)
        else:
            self._segment(a, w)
            a.load(op.offset, EAX, op.width, seg="es")

    @staticmethod
    def _store(a, w, op):
        if w.kind == "io":
            a.out_dx(w.base + op.offset, op.width)
        else:
            a.store(op.offset, EAX, op.width, seg="es")


def skip_hlt(a, pushed):
    """If the interrupt came in with IP at the wait loop's hlt, return past it.
    `sti; hlt` relies on sti's one-instruction interrupt shadow; under nested SVM
    emulated by TCG the shadow is not always kept across a #VMEXIT, the interrupt is
    taken before the hlt, and iret returned onto it: the vCPU slept with the
    interrupt serviced (seen: ISR count one ahead of the loop's, a guest halted for
    good).  Pushes BP (the caller pops it; `pushed` bytes lie above it already)."""
    a.push_bp()
    a.mov_bp_sp()
    ip = 2 + pushed                                # BP, then what the caller pushed, then IP
    a.cmp_bp_word_label(ip, "hlt")
    skip = f"not_at_hlt_{a.here:#x}"
    a.jcc("jnz", skip)
    a.inc_bp_word(ip)                              # hlt is one byte
    a.label(skip)


def build(profile, windows, pic, userspace_eoi, eoi_first=False):
    """The guest image: {guest physical address: bytes} (the IVT, the GDT, the code,
    the reset page).  `pic`: the irqchip (Pic or Ioapic) the guest programs.
    `eoi_first`: the ISR EOIs before it runs the ack program (a guest bug, as a
    negative control): the unmask then finds the card still asserting, vfio-pci
    signals the trigger again, and the ISR's second entry finds no cause: one
    spurious interrupt per delivery, not a stall."""
    a = Asm(CODE)
    comp = ProgramCompiler(profile, windows)
    c = CTRL
    # --- set-up: segments and stack, the ISR in the IVT, the PIC -----------------
    a.cli()
    a.xor_r32_r32(EAX, EAX)
    for sreg in ("ds", "ss", "es"):
        a.mov_sreg_ax(sreg)
    a.mov_r16_imm(4, STACK_TOP)                   # mov sp, STACK_TOP (SP is register 4)
    a.mov_r16_imm(EAX, ARRAYS >> 4)
    a.mov_sreg_ax("fs")
    pic.program(a)
    a.jmp("batch_end")                             # the first exit says "ready"

    # --- the main loop: one raise per iteration -------------------------------------
    a.label("loop")
    a.rdtsc()
    a.store(c["t0"])
    comp.compile(a, profile.programs.ops["raise"], c["scratch"])
    a.inc_mem(c["raised"])
    a.label("wait")
    a.cli()
    a.cmp_mem_imm8(c["abort"], 0)
    a.jcc("jnz", "batch_end")                      # the host gave up on this raise (watchdog)
    a.load(c["isr_n"])
    a.cmp_eax_mem(c["done"])
    a.jcc("jnz", "got")
    a.sti()
    a.label("hlt")
    a.hlt()                                        # see skip_hlt: an interrupt here wakes us
    a.jmp("wait")
    a.label("got")
    a.sti()
    a.rdtsc()
    a.store(c["t3"])
    a.load_bx(c["i"])
    a.shl_bx(2)
    for arr, later, earlier in ((A_WAKEUP, "t1", "t0"), (A_SERVICE, "t2", "t1"), (A_RTT, "t3", "t0")):
        a.load(c[later])
        a.sub_eax_mem(c[earlier])
        a.store_bx_indexed(arr, "fs")
    a.load(c["t0"])
    a.store_bx_indexed(A_T0, "fs")
    a.inc_mem(c["done"])
    a.inc_mem(c["i"])
    a.load(c["i"])
    a.cmp_eax_mem(c["n"])
    a.jcc("jb", "loop")
    # --- batch end: stamp the TSC (the host's calibration), exit, take the next n ----
    a.label("batch_end")
    a.sti()
    a.rdtsc()
    a.store(c["tsc_lo"])
    a.store(c["tsc_hi"], reg=2)
    a.out_dx(PORT_BATCH)
    a.cmp_mem_imm8(c["n"], 0)
    a.jcc("jz", "batch_end")
    a.jmp("loop")

    # --- the ISR ----------------------------------------------------------------------
    a.label("isr")
    for reg in (EAX, 2, ECX):
        a.push(reg)
    a.push_es()
    skip_hlt(a, 14)
    a.rdtsc()
    a.store(c["t_entry"])
    if eoi_first:   # the negative control: the host unmasks while the card still asserts
        pic.eoi(a)
        if userspace_eoi:
            a.out_dx(PORT_EOI)
    comp.compile(a, profile.programs.ops["ack"], c["cause"])
    a.cmp_mem_imm8(c["cause"], 0)
    a.jcc("jz", "spurious")
    a.load(c["t_entry"])
    a.store(c["t1"])
    if not eoi_first:
        pic.eoi(a)
        if userspace_eoi:
            a.out_dx(PORT_EOI)
    a.rdtsc()
    a.store(c["t2"])
    a.inc_mem(c["isr_n"])
    a.jmp("isr_out")
    a.label("spurious")
    a.inc_mem(c["spurious"])
    if not eoi_first:
        pic.eoi(a)
        if userspace_eoi:
            a.out_dx(PORT_EOI)
    a.label("isr_out")
    a.pop_bp()
    a.pop_es()
    for reg in (ECX, 2, EAX):
        a.pop(reg)
    a.iret()
    # --- stray PIC vectors (a spurious IRQ7/15 sets no ISR bit: no EOI) and faults ---
    a.label("stray")
    skip_hlt(a, 0)
    a.inc_mem(c["stray"])
    a.pop_bp()
    a.iret()
    a.label("fault")
    a.out_dx(PORT_FAULT)
    a.cli()
    a.hlt()
    a.jmp("fault")

    code = bytearray(a.assemble())
    ivt = bytearray()
    for vector in range(256):
        stray = 0x20 <= vector < 0x30 or vector == LAPIC_SPURIOUS
        target = "isr" if vector == pic.vector else "stray" if stray else "fault"
        ivt += a.labels[target].to_bytes(2, "little") + b"\0\0"   # offset, segment 0
    if CODE + len(code) > STACK_TOP - 0x1000:
        raise UsageError(f"guest program of {len(code)} bytes overruns its stack; shorten the profile's programs")
    # the reset page: at 0xfffffff0, jmp far 0000:CODE (EA iw iw)
    reset = bytearray(0x1000)
    reset[0xFF0:0xFF5] = bytes([0xEA]) + CODE.to_bytes(2, "little") + b"\0\0"
    table, gdtr = gdt()
    return {0: bytes(ivt), GDT: table, GDTR: gdtr, CODE: bytes(code), RAM_SIZE: bytes(reset)}
