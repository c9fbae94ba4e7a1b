"""The profile file format (TOML) and its one loader and validator.

    name = "edu"
    description = "QEMU edu device"
    irqs = ["intx", "msi"]              # optional: the kinds the programs serve (default intx)
    [match]
    ids = ["1234:11e8"]                 # vendor:device pairs (hex)
    class = 0x00ff00                    # optional: class, subclass, prog-if
    identify = { reg = "ID", mask = 0xff, value = 0xed, byteswap = true }   # optional
    [bars.regs]                         # a BAR, by the name registers use
    index = 0                           # or { rw = 0, mmap = 1 }: per access method
    kind = "mem"                        # mem or io
    size = 0x80                         # the least the card must have
    access = ["mmap", "rw"]             # methods it allows, preferred first (io: rw)
    widths = [4]                        # access widths it allows
    [registers]
    STATUS = { bar = "regs", offset = 0x24, width = 4 }   # bar, width: defaults
    [programs]                          # init, raise, ack, quiesce; init_external,
    ack = [{ read = "STATUS", mask = 0xffffffff }, { write_cause = "ACK" }]  # ack_external
    [dma]                               # optional: the card raises by DMA (--source dma)
    buffer = 0x40000                    # the card's own buffer, in its address space
    size = 0x1000                       # bytes one transfer moves
    mask = 0x0fffffff                   # the highest IOVA the card reaches
    descriptor = [{ offset = 0, width = 8, value = "dma.src" }]   # optional: a descriptor
    written_back = { offset = 12, width = 1, mask = 0x01 }      # the run writes into dst,
                                        # and what the card must write back into it
    # then a raise_dma program, whose write values may be "dma.src" (the IOVA the
    # card reads from), "dma.dst" (the IOVA it writes to), "dma.buffer", "dma.size";
    # and, for a card whose transfers outlive raise_dma, dma_idle: what waits (a poll)
    # until none is in flight, run at teardown before the pages are unmapped;
    # recover (optional, with identify): run when identification fails, to bring
    # back a card an earlier run left in another mode (a bank select, a reset)

Ops (the key naming the kind names the register, or, `*_us`, a time) are
the kinds of ops.py, with the keys each takes there.  pyvfio/profiles/README.md is
the guide.  Every problem is reported as FILE:LINE: what is wrong: what to do.
"""

import re
import tomllib
from dataclasses import dataclass, field

from .._binding import lib
from ..errors import UsageError
from ..inputs import read_text
from ..vocabulary import Access, Irq, words
from . import ops
from .base import DRAIN, POLL, READ, RMW, WRITE, WRITE_CAUSE, Op
from .tomlpos import key_lines, line_of

ACCESS = words(Access)
BAR_KINDS = ("mem", "io")
WIDTHS = (1, 2, 4, 8)
# pread/pwrite through vfio-pci and I/O ports move at most 4 bytes at a time.
RW_WIDTHS = (1, 2, 4)
PROGRAMS = ("init", "raise", "ack", "quiesce", "init_external", "ack_external", "raise_dma",
            "dma_idle", "recover")
REQUIRED_PROGRAMS = PROGRAMS[:4]
HOT_PROGRAMS = ("raise", "ack", "ack_external", "raise_dma")   # run by the C loop, per interrupt
# The values a raise_dma write may name, filled in when the run has mapped its pages.
DMA_SYMBOLS = ("dma.src", "dma.dst", "dma.buffer", "dma.size")
MAX_POLL_US = 10_000_000
MAX_DRAIN = 4096
# PCI BAR sizes are powers of two: a memory BAR at least 16 bytes (and at most what
# a 64-bit BAR decodes), an I/O BAR 4 to 256 bytes (PCI Local Bus 3.0, 6.2.5.1).
BAR_SIZES = {"mem": (16, 1 << 63), "io": (4, 256)}
MAX_DMA_BUFFER = (1 << 64) - 1

TOP_KEYS = {"name": str, "description": str, "irqs": list, "match": dict, "bars": dict,
            "registers": dict, "programs": dict, "dma": dict}
# the interrupt kinds a profile can say its programs serve (pyvfio.intx.IRQ_KINDS)
IRQS = words(Irq)
DMA_KEYS = {"buffer": int, "size": int, "mask": int, "descriptor": list, "written_back": dict}
DMA_FIELD_KEYS = {"offset": int, "width": int, "value": (int, str)}
DMA_DONE_KEYS = {"offset": int, "width": int, "mask": int}
DMA_RING = 4096     # a descriptor lies within the first page of dst
MATCH_KEYS = {"ids": list, "class": int, "identify": dict}
IDENT_KEYS = {"reg": str, "mask": int, "value": int, "byteswap": bool}
BAR_KEYS = {"index": (int, dict), "kind": (str, dict), "size": int, "access": list, "widths": list}
REG_KEYS = {"bar": str, "offset": int, "width": int}
# an op's key -> (the keys it takes, the keys it needs): ops.KINDS; the kind's own key
# names the register (or, for a timed kind, gives microseconds)
OP_KEYS = {k.key: (k.takes, k.needs) for k in ops.KINDS}
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_ID = re.compile(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{4})")


@dataclass(frozen=True)
class Bar:
    name: str
    index: dict          # access method -> PCI BAR index
    kind: dict           # access method -> "mem" or "io"
    size: int
    access: tuple
    widths: tuple


@dataclass(frozen=True)
class Identify:
    op: Op               # a read: the card is accepted when (raw & mask) == value
    byteswap: bool


@dataclass(frozen=True)
class DmaEngine:
    """A card that moves `size` bytes between its own buffer (at `buffer` in its
    address space) and IOVAs up to `mask`, raising its interrupt when done.  With a
    `descriptor` ((offset, width, value or dma.* name), little-endian, as PCI's are)
    the run writes it into the dst page and the card must write `written_back`
    ((offset, width, mask): all mask bits set) there: a NIC's transmit ring; else
    the card must copy src's bytes into dst."""
    buffer: int
    size: int
    mask: int
    descriptor: tuple = ()
    written_back: tuple = None


@dataclass
class Profile:
    name: str
    path: str
    description: str = ""
    irqs: tuple = ("intx",)                        # what run --irq may ask of it
    ids: tuple = ()
    class_code: int = None
    identify: Identify = None
    bars: dict = field(default_factory=dict)       # name -> Bar
    programs: dict = field(default_factory=dict)   # name -> tuple of Op
    dma: DmaEngine = None
    source: str = "builtin"                        # builtin, or the directory's origin
    shadows: str = None                            # the path of the profile this one hides

    def accepts(self, vendor, device, class_code=None):
        if (vendor, device) not in self.ids:
            return False
        return self.class_code is None or class_code is None or class_code == self.class_code

    def ids_text(self):
        return [f"{v:04x}:{d:04x}" for v, d in self.ids]


@dataclass(frozen=True)
class Problem:
    line: int
    what: str
    todo: str

    def text(self, path):
        return f"{path}:{self.line or 1}: {self.what}: {self.todo}"


class ProfileInvalid(UsageError):
    """A profile file with problems: the first as the message, all in `problems`."""

    def __init__(self, path, problems):
        self.path, self.problems = path, problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more: pyvfio profile check {path})" if len(problems) > 1 else ""
        super().__init__(f"{path}:{first.line or 1}: {first.what}", first.todo + more)


def _typename(t):
    if isinstance(t, tuple):
        return " or ".join(_typename(x) for x in t)
    return {str: "a string", int: "a whole number", bool: "true or false", list: "a list",
            dict: "a table"}[t]


def _is(value, t):
    if isinstance(value, bool) and t is not bool and not (isinstance(t, tuple) and bool in t):
        return False
    return isinstance(value, t)


class _Checker:
    def __init__(self, path, text):
        self.path, self.text = path, text
        self.problems = []
        self.lines = {}

    def bad(self, where, what, todo):
        self.problems.append(Problem(line_of(self.lines, where) or 1, what, todo))

    def table(self, where, value, keys, what):
        """The known keys of `value` (a dict) with the right types; each unknown key
        or wrong type is a problem.  Returns {key: value} of the good ones."""
        good = {}
        for k, v in value.items():
            if k not in keys:
                self.bad(where + (k,), f"unknown key {k!r} in {what}", f"use {', '.join(sorted(keys))}")
            elif not _is(v, keys[k]):
                self.bad(where + (k,), f"{what} {k} is {v!r}", f"make it {_typename(keys[k])}")
            else:
                good[k] = v
        return good

    def load(self):
        try:
            doc = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
            msg = re.sub(r"\s*\(at line \d+, column \d+\)|\s*\(at end of document\)", "", str(exc))
            line = int(m.group(1)) if m else self.text.count("\n") + 1
            self.problems.append(Problem(line, f"not valid TOML ({msg})", "fix the syntax on this line"))
            return None
        self.lines = key_lines(self.text)
        top = self.table((), doc, TOP_KEYS, "the profile")
        p = self.p = Profile(name="", path=self.path)
        for key in ("name", "match", "bars", "programs"):
            if key not in doc:
                self.bad((), f"no {key}", {"name": 'add name = "mycard" (lowercase)',
                                           "match": 'add [match] with ids = ["vvvv:dddd"]',
                                           "bars": "add a [bars.NAME] table for each BAR the programs use",
                                           "programs": "add [programs] with init, raise, ack and quiesce"}[key])
        if "name" in top:
            if _NAME.fullmatch(top["name"]):
                p.name = top["name"]
            else:
                self.bad(("name",), f"name {top['name']!r} is not a profile name",
                         "use lowercase letters, digits, '-', '_' or '.'")
        p.description = top.get("description", "")
        if "irqs" in top:
            self.irqs(top["irqs"], p)
        if "bars" in top:
            self.bars(top["bars"], p)
        regs = self.registers(top.get("registers", {}), p)
        if "match" in top:
            self.match(top["match"], p, regs)
        if "dma" in top:
            self.dma(top["dma"], p)
        if "programs" in top:
            self.programs(top["programs"], p, regs)
        return p

    # --- [dma] -----------------------------------------------------------------------
    def dma(self, value, p):
        t = self.table(("dma",), value, DMA_KEYS, "[dma]")
        missing = [k for k in ("size", "mask") if k not in value]
        if missing:
            self.bad(("dma",), f"[dma] has no {' or '.join(missing)}",
                     "give size (bytes a transfer moves) and mask (the highest IOVA it reaches)")
            return
        if len(t) != len(value):
            return
        fields = []
        for i, f in enumerate(t.get("descriptor", [])):
            where = ("dma", "descriptor", i)
            f = self.table(where, f, DMA_FIELD_KEYS, "a descriptor field") if isinstance(f, dict) else {}
            if set(f) != set(DMA_FIELD_KEYS):
                self.bad(where, "a descriptor field needs offset, width and value",
                         '{ offset = 0, width = 8, value = "dma.src" }')
                return
            if not self._dma_field(where, f["offset"], f["width"]):
                return
            if isinstance(f["value"], str) and f["value"] not in DMA_SYMBOLS:
                self.bad(where + ("value",), f"descriptor value {f['value']!r}",
                         f"make it a whole number or one of {', '.join(DMA_SYMBOLS)}")
                return
            fields.append((f["offset"], f["width"], f["value"]))
        done = None
        if "written_back" in t:
            where = ("dma", "written_back")
            w = self.table(where, t["written_back"], DMA_DONE_KEYS, "written_back")
            if set(w) != set(DMA_DONE_KEYS) or not fields:
                self.bad(where, "written_back needs offset, width and mask, and a descriptor",
                         "name the status bits the card writes back into the descriptor")
                return
            if not self._dma_field(where, w["offset"], w["width"]):
                return
            if not 0 < w["mask"] < 1 << (8 * w["width"]):
                self.bad(where + ("mask",), f"written_back mask {w['mask']:#x}",
                         f"name status bits within the field's {w['width']} byte(s), at least one")
                return
            done = (w["offset"], w["width"], w["mask"])
        elif fields:
            self.bad(("dma", "descriptor"), "a descriptor without written_back",
                     "say what the card writes back into it when done")
            return
        if not 0 <= t.get("buffer", 0) <= MAX_DMA_BUFFER:
            self.bad(("dma", "buffer"), f"DMA buffer {t['buffer']:#x}",
                     "give an address the card decodes: 0 to 2^64 - 1")
        elif not 0 < t["size"] <= 1 << 20:
            self.bad(("dma", "size"), f"DMA size {t['size']:#x}", "use 1 byte to 1 MiB")
        elif t["mask"] < t["size"] or t["mask"] & (t["mask"] + 1) or t["mask"] > MAX_DMA_BUFFER:
            self.bad(("dma", "mask"), f"DMA mask {t['mask']:#x} is not 2^n - 1 above the size, 64 bits at most",
                     "give the card's DMA mask, e.g. 0x0fffffff for 28 address bits")
        else:
            p.dma = DmaEngine(t.get("buffer", 0), t["size"], t["mask"], tuple(fields), done)

    def _dma_field(self, where, offset, width):
        if width not in WIDTHS or not 0 <= offset <= DMA_RING - width or offset % width:
            self.bad(where, f"descriptor field at {offset:#x} ({width} bytes)",
                     f"use a width of 1, 2, 4 or 8 at an aligned offset within {DMA_RING:#x} bytes")
            return False
        return True
    # --- irqs ------------------------------------------------------------------------
    def irqs(self, value, p):
        good = []
        for i, k in enumerate(value):
            if k not in IRQS:
                self.bad(("irqs", i), f"unknown interrupt kind {k!r}", f"use {', '.join(IRQS)}")
            elif k in good:
                self.bad(("irqs", i), f"interrupt kind {k} listed twice", "list each kind once")
            else:
                good.append(k)
        if not value:
            self.bad(("irqs",), "irqs lists no interrupt kind",
                     'list what the programs serve, e.g. irqs = ["intx", "msi"], or drop it (intx)')
        p.irqs = tuple(good) or p.irqs

    # --- [match] ---------------------------------------------------------------------
    def match(self, value, p, regs):
        m = self.table(("match",), value, MATCH_KEYS, "[match]")
        ids = []
        for i, s in enumerate(m.get("ids", [])):
            hit = _ID.fullmatch(s) if isinstance(s, str) else None
            if hit is None:
                self.bad(("match", "ids", i), f"id {s!r} is not vendor:device",
                         'write it as four hex digits, a colon, four hex digits: "8086:100e"')
            else:
                ids.append((int(hit.group(1), 16), int(hit.group(2), 16)))
        if "ids" in m and not ids and not m["ids"]:
            self.bad(("match", "ids"), "ids lists no card", 'list the vendor:device pairs it drives')
        elif "ids" not in m and "ids" not in value:
            self.bad(("match",), "[match] has no ids", 'add ids = ["vvvv:dddd"]')
        p.ids = tuple(ids)
        if "class" in m:
            if 0 <= m["class"] <= 0xFFFFFF:
                p.class_code = m["class"]
            else:
                self.bad(("match", "class"), f"class {m['class']:#x} is not 24 bits",
                         "give class, subclass and prog-if as one number: 0x070002")
        if "identify" in m:
            where = ("match", "identify")
            ident = self.table(where, m["identify"], IDENT_KEYS, "identify")
            if not {"reg", "value"} <= set(ident):
                self.bad(where, "identify needs reg and value", 'e.g. identify = { reg = "ID", value = 0xed }')
                return
            reg = self.reg_ref(where + ("reg",), ident["reg"], regs)
            if reg is None:
                return
            op = Op(READ, reg[0], reg[1], reg[2], value=ident["value"],
                    mask=ident.get("mask", (1 << 8 * reg[2]) - 1), reg=ident["reg"])
            self.fits(where + ("value",), op.value, op.width, "value")
            self.fits(where + ("mask",), op.mask, op.width, "mask")
            if ident.get("byteswap") and op.width == 1:
                self.bad(where + ("byteswap",), f"byteswap on 1-byte register {ident['reg']}",
                         "a single byte cannot read swapped: drop byteswap")
            p.identify = Identify(op, ident.get("byteswap", False))

    # --- [bars.NAME] ------------------------------------------------------------------
    def bars(self, value, p):
        if not value:
            self.bad(("bars",), "no BAR declared", "add a [bars.NAME] table for each BAR the programs use")
        if len(value) > lib.PYVFIO_MAX_BARS:
            self.bad(("bars",), f"{len(value)} BARs declared; the C loop drives at most {lib.PYVFIO_MAX_BARS}",
                     "keep the BARs the programs use")
        for name, b in value.items():
            where = ("bars", name)
            if not isinstance(b, dict):
                self.bad(where, f"bars.{name} is not a table", f"write [bars.{name}] with index, kind and size")
                continue
            t = self.table(where, b, BAR_KEYS, f"[bars.{name}]")
            missing = [k for k in ("index", "kind", "size") if k not in b]
            if missing:
                self.bad(where, f"[bars.{name}] has no {' or '.join(missing)}",
                         "a BAR needs index (0-5), kind (mem or io) and size (bytes)")
            kind = t.get("kind", "mem")
            kinds = kind if isinstance(kind, dict) else None
            for a in (kinds or {}):
                if a not in ACCESS:
                    self.bad(where + ("kind", a), f"kind for unknown access method {a!r}",
                             "key the kinds by mmap and rw")
            for k in (kinds.values() if kinds else [kind]):
                if k not in BAR_KINDS:
                    self.bad(where + ("kind",), f"unknown BAR kind {k!r}", "use mem (memory) or io (I/O ports)")
            first = kind if isinstance(kind, str) and kind in BAR_KINDS else "mem"
            access = tuple(t.get("access", [Access.RW.value] if first == "io" else ACCESS))
            for i, a in enumerate(access):
                if a not in ACCESS:
                    self.bad(where + ("access", i), f"unknown access method {a!r}", "use mmap or rw")
            access = tuple(a for a in access if a in ACCESS) or ("rw",)
            kind = {a: kinds.get(a, first) if kinds else first for a in access}
            kind = {a: k if k in BAR_KINDS else "mem" for a, k in kind.items()}
            if "mmap" in kind and kind["mmap"] == "io":
                self.bad(where + ("access",), "an I/O-port BAR cannot be mmapped",
                         'use access = ["rw"] (pread/pwrite), or kind = { rw = "io", mmap = "mem" } '
                         "for a card that maps the same registers in a memory BAR too")
            index = t.get("index", 0)
            if isinstance(index, dict):
                for a in index:
                    if a not in ACCESS:
                        self.bad(where + ("index", a), f"index for unknown access method {a!r}",
                                 "key the indexes by mmap and rw")
                for a in access:
                    if a not in index:
                        self.bad(where + ("index",), f"no index for access {a}",
                                 f"add {a} = N to index, or drop {a} from access")
                index = {a: index.get(a, 0) for a in access}
            else:
                index = {a: index for a in access}
            bad_index = [n for n in index.values() if not _is(n, int) or not 0 <= n <= 5]
            if bad_index:
                self.bad(where + ("index",), f"BAR index {bad_index[0]!r} is not 0 to 5", "PCI has BAR0 to BAR5")
                index = {a: 0 for a in index}
            size = t.get("size", 0)
            if "size" in t:
                for k in sorted(set(kind.values())):
                    low, high = BAR_SIZES[k]
                    if not low <= size <= high or size & (size - 1):
                        self.bad(where + ("size",), f"BAR size {size:#x} is not a power of two from {low} to "
                                 f"{high if k == 'io' else '2^63'}",
                                 f"a{' memory' if k == 'mem' else 'n I/O'} BAR's size is a power of two: give the "
                                 "least the card must have, rounded up (the registers must fit)")
                        size = 0
                        break
            widths = []
            narrow = "rw" in access or "io" in kind.values()
            for i, w in enumerate(t.get("widths", list(RW_WIDTHS) if narrow else list(WIDTHS))):
                if not _is(w, int) or w not in WIDTHS:
                    self.bad(where + ("widths", i), f"access width {w!r} is not 1, 2, 4 or 8", "widths are bytes")
                elif w not in RW_WIDTHS and narrow:
                    self.bad(where + ("widths", i), f"{w}-byte accesses by pread/pwrite or I/O port",
                             "vfio-pci's read/write path and I/O ports move at most 4 bytes: use 4, "
                             "or allow mmap only")
                else:
                    widths.append(w)
            p.bars[name] = Bar(name, index, kind, size, access, tuple(widths))

    # --- [registers] ------------------------------------------------------------------
    def registers(self, value, p):
        regs = {}
        for name, r in value.items():
            where = ("registers", name)
            if not isinstance(r, dict):
                self.bad(where, f"register {name} is not a table", f"write {name} = {{ offset = 0x10, width = 4 }}")
                continue
            t = self.table(where, r, REG_KEYS, f"register {name}")
            if "offset" not in r:
                self.bad(where, f"register {name} has no offset", "add offset = the byte offset in its BAR")
                continue
            bar_name = t.get("bar")
            if bar_name is None:
                if len(p.bars) != 1:
                    self.bad(where, f"register {name} names no BAR and the profile has {len(p.bars)}",
                             f"add bar = one of {', '.join(p.bars) or '(none: declare [bars.NAME])'}")
                    continue
                bar_name = next(iter(p.bars))
            bar = p.bars.get(bar_name)
            if bar is None:
                self.bad(where + ("bar",), f"register {name} is in unknown BAR {bar_name!r}",
                         f"use one of {', '.join(p.bars) or '(none: declare [bars.NAME])'}")
                continue
            width = t.get("width")
            if width is None:
                if len(bar.widths) != 1:
                    self.bad(where, f"register {name} has no width", f"add width = one of {bar.widths}")
                    continue
                width = bar.widths[0]
            elif width not in bar.widths:
                self.bad(where + ("width",), f"register {name} is {width} bytes wide; BAR {bar_name} allows "
                         f"{', '.join(map(str, bar.widths))}", "fix the width or the BAR's widths")
                continue
            off = t.get("offset", 0)
            if off < 0 or off + width > bar.size:
                self.bad(where + ("offset",), f"register {name} at {off:#x} ({width} bytes) is outside BAR "
                         f"{bar_name} ({bar.size:#x} bytes)", "fix the offset or the BAR's size")
                continue
            if off % width:
                self.bad(where + ("offset",), f"register {name} at {off:#x} is not aligned to its width {width}",
                         "registers sit at multiples of their width")
                continue
            regs[name] = (bar_name, off, width)
        return regs

    def reg_ref(self, where, name, regs):
        if not isinstance(name, str):
            self.bad(where, f"register {name!r} is not a name", 'name a register from [registers]: "STATUS"')
            return None
        if name not in regs:
            self.bad(where, f"unknown register {name!r}", f"declare it in [registers] "
                     f"(known: {', '.join(regs) or 'none'})")
            return None
        return regs[name]

    def fits(self, where, value, width, what):
        if not 0 <= value < 1 << 8 * width:
            self.bad(where, f"{what} {value:#x} does not fit {width} byte(s)", f"use 0 to {(1 << 8 * width) - 1:#x}")

    # --- [programs] -------------------------------------------------------------------
    def programs(self, value, p, regs):
        for name in REQUIRED_PROGRAMS:
            if name not in value:
                self.bad(("programs",), f"no {name} program", f"add {name} = [ ... ] to [programs] "
                         "(an empty list if the card needs nothing)")
        if ("raise_dma" in value) != (p.dma is not None):
            self.bad(("programs",), "raise_dma and [dma] come as a pair",
                     "give both (the card's DMA engine; the program that starts a transfer) or neither")
        if "dma_idle" in value and "raise_dma" not in value:
            self.bad(("programs", "dma_idle"), "dma_idle without raise_dma",
                     "dma_idle waits for the transfers raise_dma starts: give raise_dma and [dma], or drop it")
        if "recover" in value and p.identify is None:
            self.bad(("programs", "recover"), "recover without identify",
                     "recover runs when identification fails: give [match] identify, or drop it")
        if ("init_external" in value) != ("ack_external" in value):
            self.bad(("programs",), "init_external and ack_external come as a pair",
                     "give both (enable a receive cause; service it) or neither")
        for name, steps in value.items():
            where = ("programs", name)
            if name not in PROGRAMS:
                self.bad(where, f"unknown program {name!r}", f"use {', '.join(PROGRAMS)}")
                continue
            if not isinstance(steps, list):
                self.bad(where, f"program {name} is not a list", f"write {name} = [ {{ write = ... }}, ... ]")
                continue
            compiled = [op for i, o in enumerate(steps) if (op := self.op(where + (i,), o, regs)) is not None]
            if name in HOT_PROGRAMS and len(steps) > lib.PYVFIO_MAX_OPS:
                self.bad(where, f"{name} has {len(steps)} steps; the C loop runs at most {lib.PYVFIO_MAX_OPS} "
                         "per interrupt", "shorten it (init can do the set-up)")
            if name in ("ack", "ack_external") and not any(o.kind == READ and o.mask for o in compiled) \
                    and len(compiled) == len(steps):
                self.bad(where, f"{name} reads no cause", "add { read = REG, mask = BITS }: without a cause "
                         "every interrupt counts as spurious")
            for i, o in enumerate(compiled):
                if o.symbol and name != "raise_dma":
                    self.bad(where + (i,), f"{o.symbol} in {name}",
                             "dma.* values are known only to raise_dma")
            seen_read = False
            for i, o in enumerate(compiled):
                if o.kind == READ:
                    seen_read = True
                elif o.kind == WRITE_CAUSE and not seen_read:
                    self.bad(where + (i,), f"write_cause before any read in {name}",
                             "read the cause first: write_cause stores what the last read loaded")
            p.programs[name] = tuple(compiled)

    def op(self, where, o, regs):
        if not isinstance(o, dict):
            self.bad(where, f"op {o!r} is not a table", '{ write = "REG", value = 1 }')
            return None
        kinds = [k for k in o if k in OP_KEYS]
        if len(kinds) != 1:
            unknown = [k for k in o if k not in OP_KEYS and not any(k in OP_KEYS[x][0] for x in OP_KEYS)]
            if unknown and not kinds:
                self.bad(where, f"unknown op {unknown[0]!r}", f"use one of {', '.join(OP_KEYS)}")
            else:
                self.bad(where, f"op has {'no kind' if not kinds else ' and '.join(kinds)}",
                         f"an op is exactly one of {', '.join(OP_KEYS)}")
            return None
        kind = kinds[0]
        takes, needs = OP_KEYS[kind]
        for k, v in o.items():
            if k != kind and k not in takes:
                self.bad(where + (k,), f"{kind} takes no {k!r}",
                         f"{kind} takes {', '.join(sorted(takes)) or 'nothing else'}")
                return None
            if k == "value" and kind == WRITE and isinstance(v, str):
                if v not in DMA_SYMBOLS:
                    self.bad(where + (k,), f"write value {v!r}",
                             f"make it a whole number or one of {', '.join(DMA_SYMBOLS)}")
                    return None
            elif k not in (kind, "while") and not _is(v, int):
                self.bad(where + (k,), f"{kind} {k} is {v!r}", "make it a whole number")
                return None
        for k in sorted(needs - set(o)):
            self.bad(where, f"{kind} has no {k}", f"add {k} = ...")
            return None
        spec = ops.BY_KEY[kind]
        if spec.timed:
            us = o[kind]
            if not _is(us, int) or not 0 < us <= spec.max_us:
                self.bad(where + (kind,), f"{spec.name} {us!r} us", f"use 1 to {spec.max_us} microseconds")
                return None
            return Op(spec.name, count=us)
        reg = self.reg_ref(where + (kind,), o[kind], regs)
        if reg is None:
            return None
        bar, off, width = reg
        args = dict(bar=bar, offset=off, width=width, reg=o[kind])
        for k in ("value", "mask", "invert"):
            if k in o and isinstance(o[k], str):
                args["symbol"] = o[k]        # filled in by CardProfile.bind_dma
            elif k in o:
                self.fits(where + (k,), o[k], width, k)
                args[k] = o[k]
        if kind == WRITE and ("rotate" in o or "stride" in o):
            rotate, stride = o.get("rotate", 1), o.get("stride", width)
            if not 1 <= rotate <= 64:
                self.bad(where + ("rotate",), f"rotate {rotate}", "use 1 to 64 registers")
                return None
            if stride <= 0 or stride % width:
                self.bad(where + ("stride",), f"stride {stride}", f"use a positive multiple of the width {width}")
                return None
            b = self.p.bars.get(bar)
            last = off + stride * (rotate - 1)
            if b is not None and last + width > b.size:
                self.bad(where + ("rotate",), f"the last rotated register, at {last:#x}, is outside BAR {bar} "
                         f"({b.size:#x} bytes)", "fix rotate, stride or the BAR's size")
                return None
            args.update(rotate=rotate, stride=stride)
        if kind == POLL:
            if not 0 < o["timeout_us"] <= MAX_POLL_US:
                self.bad(where + ("timeout_us",), f"poll timeout {o['timeout_us']} us", f"use 1 to {MAX_POLL_US}")
                return None
            args["count"] = o["timeout_us"]
        if kind == RMW and o["value"] & ~o["mask"]:
            self.bad(where + ("value",), f"rmw value {o['value']:#x} sets bits outside mask {o['mask']:#x}",
                     "the mask names every bit the op changes")
            return None
        if kind == DRAIN:
            status = self.reg_ref(where + ("while",), o["while"], regs)
            if status is None:
                return None
            if not 0 < o["max"] <= MAX_DRAIN:
                self.bad(where + ("max",), f"drain max {o['max']}", f"bound the drain: 1 to {MAX_DRAIN} reads")
                return None
            self.fits(where + ("mask",), o["mask"], status[2], "mask")
            args.update(count=o["max"], mask=o["mask"], value=o.get("value", o["mask"]),
                        status_bar=status[0], status_offset=status[1], status_width=status[2])
        return Op(kind, **args)


def check_text(path, text):
    """(Profile or None, [Problem]) for a profile file's text."""
    c = _Checker(path, text)
    p = c.load()
    return p, sorted(c.problems, key=lambda pr: pr.line or 0)


def load_file(path, source="builtin"):
    """A valid Profile from `path`, or ProfileInvalid naming its first problem."""
    text = read_text(path, "profile")
    p, problems = check_text(str(path), text)
    if problems:
        raise ProfileInvalid(str(path), problems)
    p.source = source
    return p
