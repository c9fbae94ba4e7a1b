"""One semantics for the profile ops: every row (program, registers before, what it
ends with, registers after) runs through the three interpreters of a register
program, on one BAR of 4 KiB in a memfd:

- Python: profiles.base.Program, on the BAR's bytes;
- C: csrc/loop.c (lib.pyvfio_run_ops) on the same memfd, by mmap and by
  pread/pwrite, the ops encoded by the C engine's fill_ops: run_ops, the interpreter,
  or, for the common programs the loops run specialised (one 32-bit write, one
  32-bit read, a read and its write_cause, by mmap or by pread/pwrite), the
  specialised path, as the loops would (test_the_specialised_path_runs_rows_of_each_form);
- KVM: kvm/guest_program.py's ProgramCompiler, the program compiled into real-mode code
  that a real vCPU runs in-process (/dev/kvm, x86 hosts: skipped where it cannot be
  opened); the BAR is a trapped window, each access a KVM_EXIT_MMIO served here.
  The kinds the guest does not run (profiles/ops.py `kvm`) and the forms it cannot
  express (a rotating write) must be refused by the compiler, in one line: asserted
  wherever /dev/kvm is, as compiling needs none.

Every kind appears twice in one program at least (test_every_kind_twice_in_a_row).
The op kinds' one definition (profiles/ops.py) is checked against what derives from
it: the C codes, the validator's keys, the guide's table."""

import errno
import mmap
import os
import struct
import time
from dataclasses import dataclass, field

import pytest

from pyvfio import uapi
from pyvfio._binding import ffi, lib
from pyvfio.engine.c_engine import fill_ops
from pyvfio.errors import PyvfioError, UsageError
from pyvfio.kvm import guest_program
from pyvfio.kvm.asm import EAX, Asm
from pyvfio.profiles import ops
from pyvfio.profiles.base import (DELAY, DRAIN, POLL, READ, RMW, SPIN, WRITE, WRITE_CAUSE, Op,
                                  PollTimeout, Program)
from pyvfio.profiles.format import OP_KEYS, check_text
from pyvfio.vfio.region import Region
from pyvfio.checkout import CHECKOUT

BAR_SIZE = 0x1000
RW_FLAGS = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE
TIMEOUT = "timeout"   # the program ends with a poll's timeout


def w(off, value, width=4, **kw):
    return Op(WRITE, "b", off, width, value=value, **kw)


def r(off, mask, width=4, invert=0):
    return Op(READ, "b", off, width, mask=mask, invert=invert)


def wc(off, width=4):
    return Op(WRITE_CAUSE, "b", off, width)


def rmw(off, mask, value, width=4):
    return Op(RMW, "b", off, width, mask=mask, value=value)


def drain(off, status, count, mask=0x01, value=0x01):
    return Op(DRAIN, "b", off, 1, mask=mask, value=value, count=count, status_bar="b",
              status_offset=status, status_width=1)


def poll(off, mask, value, us=2000):
    return Op(POLL, "b", off, 1, mask=mask, value=value, count=us, reg="CMD")


@dataclass
class Row:
    id: str
    program: tuple
    before: dict = field(default_factory=dict)   # offset -> dword
    cause: object = 0                            # or TIMEOUT
    items: int = 0
    after: dict = field(default_factory=dict)    # offset -> dword, what changed
    seq: int = 0                                 # the raise count (rotating writes)
    at_least_us: int = 0                         # a wait's least duration


ROWS = [
    Row("write", (w(0x10, 0xA5),), after={0x10: 0xA5}),
    Row("two writes", (w(0x10, 1), w(0x14, 2, width=2)), before={0x14: 0xFFFF0000},
        after={0x10: 1, 0x14: 0xFFFF0002}),
    Row("two rotating writes, raise 6", (w(0x20, 0x11, rotate=4, stride=4), w(0x40, 0x22, rotate=2, stride=8)),
        seq=6, after={0x28: 0x11, 0x40: 0x22}),
    Row("read", (r(0x24, 0x0F),), before={0x24: 0x35}, cause=0x05),
    Row("one rotating write, raise 5", (w(0x20, 0x33, rotate=4, stride=4),), seq=5, after={0x24: 0x33}),
    Row("read inverted and its write_cause", (r(0x24, 0x0F, invert=0x01), wc(0x64)), before={0x24: 0x32},
        cause=0x03, after={0x64: 0x32}),
    Row("read and write_cause, 2 bytes", (r(0x26, 0xFF, width=2), wc(0x66, width=2)), before={0x24: 0x35 << 16},
        cause=0x35, after={0x64: 0x35 << 16}),
    Row("two reads: the last one's cause", (r(0x24, 0xFF), r(0x28, 0xFF)), before={0x24: 3}, cause=0),
    Row("read inverted, 1 byte", (r(0x12, 0x0F, width=1, invert=0x01),), before={0x10: 0xC2 << 16}, cause=0x03),
    Row("two reads inverted", (r(0x12, 0x0F, 1, 0x01), r(0x13, 0x0F, 1, 0x01)), before={0x10: 0xC1C2 << 16},
        cause=0),
    Row("write_cause stores the raw read", (r(0x24, 0x0F), wc(0x64)), before={0x24: 0x35}, cause=0x05,
        after={0x64: 0x35}),
    Row("two write_causes, each of its read", (r(0x24, 0xFF), wc(0x64), r(0x28, 0xFF), wc(0x68)),
        before={0x24: 1, 0x28: 2}, cause=2, after={0x64: 1, 0x68: 2}),
    Row("rmw", (rmw(0x20, 0x0F, 0x05),), before={0x20: 0xA3}, after={0x20: 0xA5}),
    Row("two rmws of one register", (rmw(0x20, 0x0F, 0x05), rmw(0x20, 0xF0, 0x30)), before={0x20: 0xA3},
        after={0x20: 0x35}),
    Row("drain while the status says more, at most max", (drain(0x30, 0x35, 5),), before={0x34: 0x61 << 8},
        items=5),
    # the row: `count` is per drain op, so two drains of 5 load 10 times
    Row("two drains of 5 on a status that always says more", (drain(0x30, 0x35, 5), drain(0x30, 0x35, 5)),
        before={0x34: 0x61 << 8}, items=10),
    Row("two drains on an empty status", (drain(0x30, 0x35, 5), drain(0x30, 0x35, 5)),
        before={0x34: 0x60 << 8}, items=0),
    Row("two drains, then the ack", (drain(0x30, 0x35, 3), drain(0x31, 0x35, 4), r(0x24, 0xFF), wc(0x64)),
        before={0x24: 0x04, 0x34: 0x61 << 8}, cause=0x04, items=7, after={0x64: 0x04}),
    Row("two polls that find their value", (poll(0x37, 0x10, 0x00), poll(0x36, 0x01, 0x01)),
        before={0x34: 0x0C01 << 16}),
    Row("poll times out", (w(0x10, 7), poll(0x37, 0x10, 0x00, us=500), w(0x14, 9)),
        before={0x34: 0x1C << 24}, cause=TIMEOUT, after={0x10: 7}),
    Row("two delays", (Op(DELAY, count=300), w(0x10, 1), Op(DELAY, count=300)), after={0x10: 1},
        at_least_us=600),
    Row("two spins", (Op(SPIN, count=300), r(0x24, 0xFF), Op(SPIN, count=300)), before={0x24: 9}, cause=9,
        at_least_us=600),
]


class Bar:
    """The BAR: a memfd of 4 KiB, little-endian registers, as Python reaches a
    region (read/write) and as the C loop does (its fd, or its mmap)."""

    def __init__(self, before):
        self.fd = os.memfd_create("pyvfio-ops-bar")
        os.ftruncate(self.fd, BAR_SIZE)
        self.mm = mmap.mmap(self.fd, BAR_SIZE)
        for off, v in before.items():
            struct.pack_into("<I", self.mm, off, v)
        self.start = bytes(self.mm)

    def read(self, offset, width):
        return int.from_bytes(self.mm[offset:offset + width], "little")

    def write(self, offset, width, value):
        self.mm[offset:offset + width] = value.to_bytes(width, "little")

    def accessor(self, offset, width, write):
        """backend.Region's checked-once callable for one register."""
        call = self.write if write else self.read
        return lambda *value: call(offset, width, *value)

    def changed(self):
        """offset -> dword, of every dword that differs from before."""
        return {off: struct.unpack_from("<I", self.mm, off)[0] for off in range(0, BAR_SIZE, 4)
                if self.mm[off:off + 4] != self.start[off:off + 4]}

    def close(self):
        self.mm.close()
        os.close(self.fd)


def run_python(row, bar):
    try:
        return Program(row.program, {"b": bar}).counted(row.seq)
    except PollTimeout as exc:
        assert "\n" not in str(exc) and "CMD at b+0x" in str(exc)
        return TIMEOUT, None


def run_c(row, bar, access):
    cfg = ffi.new("struct pyvfio_loop_cfg *")
    b = cfg.bars[0]
    b.fd, b.fd_offset, b.size = bar.fd, 0, BAR_SIZE
    keep = ffi.from_buffer(bar.mm) if access == "mmap" else ffi.NULL
    b.base = keep
    arr = ffi.new("struct pyvfio_reg_op[]", len(row.program))
    n = fill_ops(arr, row.program, {"b": (0, Region(bar.fd, 0, RW_FLAGS, BAR_SIZE, 0))})
    cause, items = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    if lib.pyvfio_run_ops(cfg, arr, n, row.seq, cause, items):
        assert ffi.errno == errno.ETIMEDOUT
        return TIMEOUT, None
    return cause[0], items[0]


def c_prog_kind(row, access):
    """How the C loops run the row's program: lib.PYVFIO_PROG_*."""
    bar = Bar(row.before)
    try:
        cfg = ffi.new("struct pyvfio_loop_cfg *")
        cfg.bars[0].fd, cfg.bars[0].size = bar.fd, BAR_SIZE
        keep = ffi.from_buffer(bar.mm) if access == "mmap" else ffi.NULL
        cfg.bars[0].base = keep
        arr = ffi.new("struct pyvfio_reg_op[]", len(row.program))
        n = fill_ops(arr, row.program, {"b": (0, Region(bar.fd, 0, RW_FLAGS, BAR_SIZE, 0))})
        return lib.pyvfio_prog_kind(cfg, arr, n)
    finally:
        del keep
        bar.close()


class KvmProfile:
    name = "ops-table"


# trapped: every access exits
WINDOWS = {"b": guest_program.Window("b", "mem", guest_program.WINDOWS, BAR_SIZE, False)}


def kvm_code(program):
    """Real-mode code: segments, the program (its cause at CTRL cause), then the
    batch-end OUT: the end."""
    a = Asm(guest_program.CODE)
    a.cli()
    a.xor_r32_r32(EAX, EAX)
    for sreg in ("ds", "ss", "es"):
        a.mov_sreg_ax(sreg)
    a.mov_r16_imm(4, guest_program.STACK_TOP)
    guest_program.ProgramCompiler(KvmProfile(), WINDOWS).compile(a, program, guest_program.CTRL["cause"])
    a.out_dx(guest_program.PORT_BATCH)
    a.label("end")
    a.hlt()
    a.jmp("end")
    return a.assemble()


def kvm_refuses(row):
    return any(ops.BY_NAME[op.kind].kvm or op.rotate > 1 for op in row.program)


def run_kvm(row, bar, kvm):
    from pyvfio.engine.kvm_engine import KvmLoop
    from pyvfio.kvm.memory import Ram

    code = kvm_code(row.program)
    reset = bytearray(0x1000)
    reset[0xFF0:0xFF5] = bytes([0xEA]) + guest_program.CODE.to_bytes(2, "little") + b"\0\0"   # jmp far 0:CODE
    vm, ram = kvm.create_vm(), Ram(guest_program.RAM_SIZE + 0x1000)
    try:
        ram.write(guest_program.CODE, code)
        ram.write(guest_program.RAM_SIZE, bytes(reset))
        vm.add_memslot(0, guest_program.RAM_SIZE, ram.address(), "RAM")
        vm.add_memslot(guest_program.RESET_PAGE, 0x1000, ram.address(guest_program.RAM_SIZE), "reset page",
                       readonly=True)
        vcpu = vm.create_vcpu(0)
        run = vcpu.run
        for _ in range(10_000):
            reason = vcpu.enter()
            if reason == uapi.KVM_EXIT_IO and run.io.port == guest_program.PORT_BATCH:
                return ram.view[guest_program.CTRL["cause"] // 4], 0
            assert reason == uapi.KVM_EXIT_MMIO, f"the guest stopped: exit {reason}"
            m = run.mmio
            assert guest_program.WINDOWS <= m.phys_addr < guest_program.WINDOWS + BAR_SIZE
            KvmLoop._forward(bar, m.phys_addr - guest_program.WINDOWS, m.len, bool(m.is_write),
                             ffi.buffer(m.data, m.len))
        pytest.fail("the guest never reached its end")
    finally:
        vm.close()
        ram.close()


@pytest.fixture(scope="module")
def kvm():
    from pyvfio.errors import KvmError
    from pyvfio.kvm.system import Kvm
    try:
        k = Kvm()
    except KvmError as exc:
        pytest.skip(f"no KVM here: {exc}")
    yield k
    k.close()


INTERPRETERS = ["python", "c-mmap", "c-rw", "kvm"]


@pytest.mark.parametrize("interp", INTERPRETERS)
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_one_op_semantics(row, interp, request):
    if interp == "kvm" and kvm_refuses(row):
        first = next(op for op in row.program if ops.BY_NAME[op.kind].kvm or op.rotate > 1)
        with pytest.raises(UsageError, match=f"{first.kind} of .* cannot run in the KVM guest") as exc:
            kvm_code(row.program)
        assert "\n" not in str(exc.value) and "--guest toy" in str(exc.value)
        return
    bar = Bar(row.before)
    try:
        t0 = time.monotonic_ns()
        if interp == "python":
            cause, items = run_python(row, bar)
        elif interp == "kvm":
            cause, items = run_kvm(row, bar, request.getfixturevalue("kvm"))
        else:
            cause, items = run_c(row, bar, interp[2:])
        took_us = (time.monotonic_ns() - t0) / 1000
        assert cause == row.cause
        if cause != TIMEOUT:
            assert items == row.items
        assert bar.changed() == row.after
        assert took_us >= row.at_least_us
    finally:
        bar.close()


SPECIALISED = {"mmap": (lib.PYVFIO_PROG_WRITE, lib.PYVFIO_PROG_READ, lib.PYVFIO_PROG_READ_ACK),
               "rw": (lib.PYVFIO_PROG_PWRITE, lib.PYVFIO_PROG_PREAD, lib.PYVFIO_PROG_PREAD_ACK)}


@pytest.mark.parametrize("access", sorted(SPECIALISED))
def test_the_specialised_path_runs_rows_of_each_form(access):
    """test_one_op_semantics[*-c-mmap] and [*-c-rw] ran these rows through the loops'
    specialised path of that access (each form, and a near miss of each that stays
    with the interpreter)."""
    write, read, read_ack = SPECIALISED[access]
    by_kind = {}
    for row in ROWS:
        by_kind.setdefault(c_prog_kind(row, access), []).append(row.id)
    assert by_kind[write] == ["write"]
    assert by_kind[read] == ["read"]
    assert set(by_kind[read_ack]) == {"write_cause stores the raw read", "read inverted and its write_cause"}
    assert {"one rotating write, raise 5", "two writes", "read and write_cause, 2 bytes",
            "read inverted, 1 byte"} <= set(by_kind[lib.PYVFIO_PROG_GENERIC])
    assert set(by_kind) == {write, read, read_ack, lib.PYVFIO_PROG_GENERIC}


@pytest.mark.parametrize("row", [row for row in ROWS if row.id in
                                 ("write", "read", "write_cause stores the raw read")], ids=lambda row: row.id)
def test_a_failed_pread_or_pwrite_fails_the_specialised_program(row):
    """A specialised rw program whose pread/pwrite fails returns -1 with errno set, as
    the interpreter does: the loops then stop with the access named (here a read-only
    fd: EBADF on the first pwrite; an fd past the end: the pread's short read)."""
    cfg = ffi.new("struct pyvfio_loop_cfg *")
    fd = os.memfd_create("pyvfio-ops-short")
    try:
        os.ftruncate(fd, BAR_SIZE)
        ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
        arr = ffi.new("struct pyvfio_reg_op[]", len(row.program))
        n = fill_ops(arr, row.program, {"b": (0, Region(fd, 0, RW_FLAGS, BAR_SIZE, 0))})
        cause, items = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        writes = any(op.kind != READ for op in row.program)
        # writes: on the read-only fd; reads: past the memfd's end, where pread reads 0 bytes
        cfg.bars[0].fd, cfg.bars[0].size = (ro, BAR_SIZE) if writes else (fd, BAR_SIZE)
        cfg.bars[0].fd_offset = 0 if writes else 2 * BAR_SIZE
        assert lib.pyvfio_prog_kind(cfg, arr, n) in (lib.PYVFIO_PROG_PWRITE, lib.PYVFIO_PROG_PREAD,
                                                     lib.PYVFIO_PROG_PREAD_ACK)
        ffi.errno = 0
        assert lib.pyvfio_run_ops(cfg, arr, n, row.seq, cause, items) == -1
        if writes:   # the read of a read and its write_cause succeeded; its pwrite failed
            assert ffi.errno == errno.EBADF
        os.close(ro)
    finally:
        os.close(fd)


def test_every_kind_twice_in_a_row():
    twice = {k for row in ROWS for k in ops.BY_NAME
             if sum(op.kind == k for op in row.program) >= 2}
    assert twice == set(ops.BY_NAME)


def test_the_kvm_guest_runs_each_kind_the_table_gives_it_and_refuses_the_others():
    run = {op.kind for row in ROWS if not kvm_refuses(row) for op in row.program}
    assert run == set(ops.KVM_KINDS)
    for kind in set(ops.BY_NAME) - run:
        assert any(op.kind == kind for row in ROWS for op in row.program)


# --- what derives from the table ------------------------------------------------------

def test_the_c_op_codes_are_the_tables():
    """The codes are compiled in from the table (csrc/build.py): a build from
    another table would be stale (tests/test_stamp.py)."""
    assert {k.name: getattr(lib, f"PYVFIO_OP_{k.name.upper()}") for k in ops.KINDS} == \
        {k.name: k.code for k in ops.KINDS}
    assert len({k.code for k in ops.KINDS}) == len(ops.KINDS)


def test_the_c_loop_refuses_a_code_the_table_lacks():
    cfg = ffi.new("struct pyvfio_loop_cfg *")
    arr = ffi.new("struct pyvfio_reg_op[]", 1)
    arr[0].kind = max(k.code for k in ops.KINDS) + 1
    cause, items = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    assert lib.pyvfio_run_ops(cfg, arr, 1, 0, cause, items) == -1 and ffi.errno == errno.EINVAL


def test_the_validator_takes_each_kind_by_its_key():
    assert set(OP_KEYS) == {k.key for k in ops.KINDS}
    text = """name = "t"
[match]
ids = ["abcd:0001"]
[bars.regs]
index = 0
kind = "mem"
size = 0x100
widths = [1, 4]
[registers]
S = { offset = 0x10, width = 4 }
L = { offset = 0x14, width = 1 }
[programs]
init = []
raise = [{ write = "S", value = 1 }]
quiesce = []
ack = [
    { read = "S", mask = 0xff },
    { write_cause = "S" },
    { delay_us = 5 },
    { poll = "S", mask = 1, value = 0, timeout_us = 10 },
    { rmw = "S", mask = 3, value = 1 },
    { drain = "L", while = "L", mask = 1, max = 4 },
    { spin_us = 50 },
]
"""
    p, problems = check_text("t.toml", text)
    assert problems == []
    assert [op.kind for op in p.programs["ack"]] == [READ, WRITE_CAUSE, DELAY, POLL, RMW, DRAIN, SPIN]
    assert p.programs["ack"][-1].count == 50
    too_long = ops.BY_NAME[SPIN].max_us + 1
    _, problems = check_text("t.toml", text.replace("spin_us = 50", f"spin_us = {too_long}"))
    assert [pr.text("t.toml") for pr in problems] == [
        f"t.toml:23: spin {too_long} us: use 1 to {ops.BY_NAME[SPIN].max_us} microseconds"]


def test_the_guide_holds_the_tables_rows():
    guide = (CHECKOUT / "pyvfio/profiles/README.md").read_text()
    assert ops.guide_table() in guide, "paste profiles.ops.guide_table() into the guide's ops table"


def test_a_kind_the_python_engine_lacks_is_one_line():
    with pytest.raises(PyvfioError, match="op kind 'teleport' unknown to the Python engine"):
        Program([Op("teleport")], {})
