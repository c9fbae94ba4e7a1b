"""A tiny assembler for the KVM guest's 16-bit real-mode code: only the
instructions guest_program.py emits, each as its Intel SDM encoding (vol. 2), with labels
and rel16 jumps.  32-bit operands take the operand-size prefix 0x66; memory
operands are [disp16] (ModRM mod=00 r/m=110) or [bx+disp16] (mod=10 r/m=111) in the
segment the caller names (DS when none)."""

from ..errors import UsageError

EAX, ECX, EDX, EBX = 0, 1, 2, 3
_OSIZE = b"\x66"
_SEG = {None: b"", "es": b"\x26", "fs": b"\x64", "gs": b"\x65"}
_SREG = {"es": 0, "ss": 2, "ds": 3, "fs": 4, "gs": 5}       # Sreg field of 8E /r
_JCC = {"jz": 0x84, "jnz": 0x85, "jb": 0x82}


def _w16(v):
    return (v & 0xFFFF).to_bytes(2, "little")


def _w32(v):
    return (v & 0xFFFFFFFF).to_bytes(4, "little")


class Asm:
    """Bytes placed at guest physical `origin` (real mode, CS base 0: offsets are
    physical addresses below 64 KiB)."""

    def __init__(self, origin):
        self.origin = origin
        self.code = bytearray()
        self.labels = {}
        self.fixups = []   # (position of the 16-bit field, label, relative?)

    @property
    def here(self):
        return self.origin + len(self.code)

    def label(self, name):
        self.labels[name] = self.here

    def emit(self, *parts):
        for p in parts:
            self.code += bytes([p]) if isinstance(p, int) else p

    # --- control ---------------------------------------------------------------
    def cli(self):
        self.emit(0xFA)

    def sti(self):
        self.emit(0xFB)

    def hlt(self):
        self.emit(0xF4)

    def iret(self):
        self.emit(0xCF)

    def rdtsc(self):  # EDX:EAX = TSC
        self.emit(0x0F, 0x31)

    def jmp(self, label):
        self.emit(0xE9)
        self._rel16(label)

    def jcc(self, cc, label):
        self.emit(0x0F, _JCC[cc])
        self._rel16(label)

    def _rel16(self, label):
        self.fixups.append((len(self.code), label, True))
        self.emit(b"\0\0")

    def _abs16(self, label):
        self.fixups.append((len(self.code), label, False))
        self.emit(b"\0\0")

    # --- registers -------------------------------------------------------------
    def mov_r16_imm(self, reg, v):          # B8+r iw
        self.emit(0xB8 + reg, _w16(v))

    def mov_r32_imm(self, reg, v):          # 66 B8+r id
        self.emit(_OSIZE, 0xB8 + reg, _w32(v))

    def mov_sreg_ax(self, sreg):            # 8E /r: mov sreg, ax
        self.emit(0x8E, 0xC0 | _SREG[sreg] << 3)

    def mov_r32_r32(self, dst, src):        # 66 89 /r: mov dst, src
        self.emit(_OSIZE, 0x89, 0xC0 | src << 3 | dst)

    def xor_r32_r32(self, dst, src):        # 66 31 /r
        self.emit(_OSIZE, 0x31, 0xC0 | src << 3 | dst)

    def and_eax_imm(self, v):               # 66 25 id
        self.emit(_OSIZE, 0x25, _w32(v))

    def or_eax_imm(self, v):                # 66 0D id
        self.emit(_OSIZE, 0x0D, _w32(v))

    def xor_eax_imm(self, v):               # 66 35 id
        self.emit(_OSIZE, 0x35, _w32(v))

    def shl_bx(self, n):                    # C1 /4 ib: shl bx, n
        self.emit(0xC1, 0xE3, n)

    def push(self, reg):                    # 66 50+r
        self.emit(_OSIZE, 0x50 + reg)

    def pop(self, reg):                     # 66 58+r
        self.emit(_OSIZE, 0x58 + reg)

    def push_es(self):
        self.emit(0x06)

    def pop_es(self):
        self.emit(0x07)

    # --- memory ([disp16] in DS unless `seg`) ----------------------------------
    def _modrm_disp(self, reg, disp, seg=None, prefix=_OSIZE, opcode=0x89):
        self.emit(_SEG[seg], prefix, opcode, 0x06 | reg << 3, _w16(disp))

    def store(self, disp, reg=EAX, width=4, seg=None):
        """mov [seg:disp16], reg (al/ax/eax by width)."""
        prefix, opcode = {1: (b"", 0x88), 2: (b"", 0x89), 4: (_OSIZE, 0x89)}[width]
        self._modrm_disp(reg, disp, seg, prefix, opcode)

    def load(self, disp, reg=EAX, width=4, seg=None):
        """mov reg, [seg:disp16]; a narrow load zero-extends into the 32-bit reg."""
        if width < 4:
            self.xor_r32_r32(reg, reg)
        prefix, opcode = {1: (b"", 0x8A), 2: (b"", 0x8B), 4: (_OSIZE, 0x8B)}[width]
        self._modrm_disp(reg, disp, seg, prefix, opcode)

    def sub_eax_mem(self, disp):            # 66 2B /r
        self._modrm_disp(EAX, disp, opcode=0x2B)

    def cmp_eax_mem(self, disp):            # 66 3B /r
        self._modrm_disp(EAX, disp, opcode=0x3B)

    def inc_mem(self, disp):                # 66 FF /0
        self._modrm_disp(0, disp, opcode=0xFF)

    def mov_mem_imm(self, disp, v):         # 66 C7 /0 id
        self._modrm_disp(0, disp, opcode=0xC7)
        self.emit(_w32(v))

    def cmp_mem_imm8(self, disp, v):        # 66 83 /7 ib
        self._modrm_disp(7, disp, opcode=0x83)
        self.emit(v & 0xFF)

    def load_bx(self, disp):                # 8B /r: mov bx, [disp16]
        self.emit(0x8B, 0x06 | EBX << 3, _w16(disp))

    def store_bx_indexed(self, disp, seg):  # 66 89 /r, mod=10 r/m=111: mov [seg:bx+disp16], eax
        self.emit(_SEG[seg], _OSIZE, 0x89, 0x87, _w16(disp))

    # --- unreal mode: GS with a 4 GiB limit, for the IOAPIC and LAPIC (0xfec00000, 0xfee00000)
    def enter_unreal(self, gdtr, selector):
        """lgdt [gdtr]; set CR0.PE; load GS from `selector` (a flat data descriptor);
        clear PE.  GS keeps its 4 GiB limit back in real mode (its descriptor cache),
        so [gs:disp32] reaches any address.  Interrupts must be off."""
        self.emit(_OSIZE, 0x0F, 0x01, 0x16, _w16(gdtr))     # lgdt [disp16] (32-bit base)
        self.emit(0x0F, 0x20, 0xC0, 0x0C, 0x01, 0x0F, 0x22, 0xC0)   # mov eax,cr0; or al,1; mov cr0,eax
        self.mov_r16_imm(EBX, selector)
        self.emit(0x8E, 0xEB)                                 # mov gs, bx
        self.emit(0x24, 0xFE, 0x0F, 0x22, 0xC0)              # and al,0xfe; mov cr0,eax

    def store_abs32(self, addr, reg=EAX):
        """mov [gs:disp32], reg (67: 32-bit addressing, ModRM mod=00 r/m=101)."""
        self.emit(_SEG["gs"], 0x67, _OSIZE, 0x89, 0x05 | reg << 3, _w32(addr))

    # --- the interrupted IP on the stack ([bp+disp8], SS) --------------------------
    def push_bp(self):
        self.emit(0x55)

    def pop_bp(self):
        self.emit(0x5D)

    def mov_bp_sp(self):                    # 89 /r: mov bp, sp
        self.emit(0x89, 0xE5)

    def cmp_bp_word_label(self, disp8, label):  # 81 /7, mod=01 r/m=110: cmp word [bp+disp8], label
        self.emit(0x81, 0x7E, disp8)
        self._abs16(label)

    def inc_bp_word(self, disp8):           # FF /0, mod=01 r/m=110: inc word [bp+disp8]
        self.emit(0xFF, 0x46, disp8)

    # --- ports -----------------------------------------------------------------
    def out_imm8(self, port, v):
        """mov al, v; out port, al (E6 ib: ports below 0x100)."""
        self.emit(0xB0, v & 0xFF, 0xE6, port)

    def out_dx(self, port, width=1):
        """mov dx, port; out dx, al/ax/eax."""
        self.mov_r16_imm(EDX, port)
        self.emit({1: b"\xEE", 2: b"\xEF", 4: b"\x66\xEF"}[width])

    def in_dx(self, port, width=1):
        """mov dx, port; in al/ax/eax, dx (narrow reads zero-extended)."""
        if width < 4:
            self.xor_r32_r32(EAX, EAX)
        self.mov_r16_imm(EDX, port)
        self.emit({1: b"\xEC", 2: b"\xED", 4: b"\x66\xED"}[width])

    # --- output ----------------------------------------------------------------
    def assemble(self):
        for pos, label, relative in self.fixups:
            if label not in self.labels:
                raise UsageError(f"guest program: undefined label {label!r}")
            value = self.labels[label] - (self.origin + pos + 2) if relative else self.labels[label]
            if not (-0x8000 <= value < 0x8000 if relative else 0 <= value <= 0xFFFF):
                raise UsageError(f"guest program: {label!r} is out of 16-bit range")
            self.code[pos:pos + 2] = _w16(value)
        return bytes(self.code)
