"""Decode a PCI configuration-space dump, in lspci -vv's words.

The input is the bytes of `/sys/bus/pci/devices/BDF/config` (64 bytes for a
non-root reader, 256 or 4096 for root) or of an `lspci -x` hex dump.  sysfs gives
the *physical* config space; vfio-pci virtualises parts of it (the COMMAND
register among them) in what it shows a VFIO user, so DisINTx facts must come
from here, never from the VFIO config region.
"""

import re
from dataclasses import dataclass, field

# Offsets and bits: <linux/pci_regs.h>, through pyvfio.uapi.
from ..uapi import (PCI_BASE_ADDRESS_0, PCI_CAP_ID_EXP, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX,
                    PCI_CAP_ID_PM, PCI_CAPABILITY_LIST, PCI_COMMAND,
                    PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_DEVICE_ID,
                    PCI_HEADER_TYPE, PCI_HEADER_TYPE_BRIDGE, PCI_HEADER_TYPE_NORMAL, PCI_INTERRUPT_LINE,
                    PCI_INTERRUPT_PIN, PCI_REVISION_ID,
                    PCI_STATUS, PCI_STATUS_CAP_LIST, PCI_STATUS_INTERRUPT, PCI_SUBSYSTEM_ID,
                    PCI_SUBSYSTEM_VENDOR_ID, PCI_VENDOR_ID)

# lspci's flag words, lowest bit first.
COMMAND_WORDS = [(0x001, "I/O"), (0x002, "Mem"), (0x004, "BusMaster"), (0x008, "SpecCycle"),
                 (0x010, "MemWINV"), (0x020, "VGASnoop"), (0x040, "ParErr"),
                 (0x080, "Stepping"), (0x100, "SERR"), (0x200, "FastB2B"),
                 (0x400, "DisINTx")]
STATUS_WORDS_1 = [(0x010, "Cap"), (0x020, "66MHz"), (0x040, "UDF"), (0x080, "FastB2B"),
                  (0x100, "ParErr")]
STATUS_WORDS_2 = [(0x0800, ">TAbort"), (0x1000, "<TAbort"), (0x2000, "<MAbort"),
                  (0x4000, ">SERR"), (0x8000, "<PERR"), (0x0008, "INTx")]
DEVSEL = {0: "fast", 1: "medium", 2: "slow", 3: "??"}

CAP_NAMES = {
    0x01: "Power Management", 0x02: "AGP", 0x03: "Vital Product Data",
    0x04: "Slot ID", 0x05: "MSI", 0x06: "CompactPCI hot-swap", 0x07: "PCI-X",
    0x08: "HyperTransport", 0x09: "Vendor Specific Information", 0x0A: "Debug port",
    0x0B: "CompactPCI central resource control", 0x0C: "Hot-plug",
    0x0D: "Subsystem", 0x0E: "AGP3", 0x0F: "Secure device", 0x10: "Express",
    0x11: "MSI-X", 0x12: "SATA HBA", 0x13: "PCI Advanced Features",
    0x14: "Enhanced Allocation", 0x15: "Flattening Portal Bridge",
}
# PCI_EXP_FLAGS_TYPE values, in lspci's words.
EXPRESS_TYPES = {
    0x0: "Endpoint", 0x1: "Legacy Endpoint", 0x4: "Root Port",
    0x5: "Upstream Port", 0x6: "Downstream Port", 0x7: "PCI-Express to PCI/PCI-X Bridge",
    0x8: "PCI/PCI-X to PCI-Express Bridge", 0x9: "Root Complex Integrated Endpoint",
    0xA: "Root Complex Event Collector",
}

_HEXLINE = re.compile(r"^\s*([0-9a-fA-F]{2,3}):((?:\s+[0-9a-fA-F]{2})+)\s*$")


def parse_hexdump(text):
    """The bytes of an `lspci -x`/`-xxx`/`-xxxx` dump of one device ("00: 86 80 ...")."""
    data = bytearray()
    for line in text.splitlines():
        m = _HEXLINE.match(line)
        if not m:
            continue
        offset = int(m.group(1), 16)
        if offset != len(data):
            raise ValueError(f"hex dump line at {offset:#x} follows {len(data):#x} bytes")
        data += bytes(int(b, 16) for b in m.group(2).split())
    return bytes(data)


def flag_words(value, words):
    """'I/O+ Mem- ...': lspci's rendering of a register's bits."""
    return " ".join(f"{name}{'+' if value & bit else '-'}" for bit, name in words)


def size_text(size):
    """lspci's size: 256, 4K, 512K, 128M (exact powers of 1024 only)."""
    suffix = ["", "K", "M", "G", "T"]
    i = 0
    while i < len(suffix) - 1 and size % 1024 == 0:
        size //= 1024
        i += 1
    return f"{size}{suffix[i]}"


@dataclass
class Bar:
    """One base address register, as decoded from config space (+ sysfs size)."""
    index: int
    kind: str               # "io" or "mem"
    address: int
    bits: int | None        # 32 or 64 for memory BARs
    prefetchable: bool
    size: int | None = None  # from sysfs `resource`; a raw dump cannot tell it
    enabled: bool = True     # COMMAND.IO / COMMAND.MEMORY set for this kind

    def describe(self):
        """lspci -vv's 'Region N: ...' line, without the 'Region N: ' prefix."""
        if self.kind == "io":
            text = f"I/O ports at {self.address:x}"
        else:
            pf = "prefetchable" if self.prefetchable else "non-prefetchable"
            text = f"Memory at {self.address:x} ({self.bits}-bit, {pf})"
        if not self.enabled:
            text += " [disabled]"
        if self.size:
            text += f" [size={size_text(self.size)}]"
        return text

    def to_json(self):
        return {"index": self.index, "kind": self.kind, "address": self.address,
                "bits": self.bits, "prefetchable": self.prefetchable, "size": self.size,
                "enabled": self.enabled}


@dataclass
class Capability:
    """One entry of the standard capability list."""
    offset: int
    id: int
    name: str
    detail: str = ""        # lspci-style summary ("Enable+ Count=5 Masked-")
    fields: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)   # lspci -vv's lines under it ("PBA: BAR=3 ...")

    def describe(self):
        return f"[{self.offset:02x}] {self.name}" + (f": {self.detail}" if self.detail else "")

    def to_json(self):
        return {"offset": self.offset, "id": self.id, "name": self.name,
                "detail": self.detail, "lines": self.lines, **self.fields}


@dataclass
class IntxMaskSupport:
    """Whether the card implements PCI 2.3 INTx masking (COMMAND.INTX_DISABLE), and why
    we think so.  `supported` is True, False (only from vfio/disintx_probe.py's write
    probe), or None when nothing could tell."""
    supported: bool | None
    how: str                 # the evidence, in one sentence
    basis: str = "none"      # "pcie", "disintx-set", "intx-status", "probed" or "none"

    @property
    def word(self):
        """yes / no / unknown, with "(probed)" when a write probe decided."""
        word = {True: "yes", None: "unknown"}.get(self.supported, "no")
        return f"{word} (probed)" if self.basis == "probed" else word

    def to_json(self):
        return {"supported": self.supported, "basis": self.basis, "how": self.how}


class Config:
    """A decoded config-space dump.  Reads never go past the dump's end: a field
    outside it (e.g. capabilities in a 64-byte non-root read) reads as absent."""

    def __init__(self, data):
        if len(data) < 64:
            raise ValueError(f"config space dump is {len(data)} bytes; the header needs 64")
        self.data = bytes(data)

    def _u(self, off, width):
        if off + width > len(self.data):
            return None
        return int.from_bytes(self.data[off:off + width], "little")

    def u8(self, off):
        return self._u(off, 1)

    def u16(self, off):
        return self._u(off, 2)

    def u32(self, off):
        return self._u(off, 4)

    vendor = property(lambda s: s.u16(PCI_VENDOR_ID))
    device = property(lambda s: s.u16(PCI_DEVICE_ID))
    command = property(lambda s: s.u16(PCI_COMMAND))
    status = property(lambda s: s.u16(PCI_STATUS))
    revision = property(lambda s: s.u8(PCI_REVISION_ID))
    class_code = property(lambda s: s.u32(PCI_REVISION_ID) >> 8)
    header_type = property(lambda s: s.u8(PCI_HEADER_TYPE) & 0x7F)
    multifunction = property(lambda s: bool(s.u8(PCI_HEADER_TYPE) & 0x80))
    interrupt_line = property(lambda s: s.u8(PCI_INTERRUPT_LINE))
    interrupt_pin = property(lambda s: s.u8(PCI_INTERRUPT_PIN))

    @property
    def subsystem(self):
        """(vendor, device) of the subsystem; header type 0 only."""
        if self.header_type != PCI_HEADER_TYPE_NORMAL:
            return None
        return self.u16(PCI_SUBSYSTEM_VENDOR_ID), self.u16(PCI_SUBSYSTEM_ID)

    @property
    def disintx(self):
        """COMMAND.INTX_DISABLE as lspci shows it: DisINTx+ / DisINTx-."""
        return bool(self.command & PCI_COMMAND_INTX_DISABLE)

    @property
    def intx_status(self):
        """STATUS.INTERRUPT: INTx+ means the device asserts its INTx now."""
        return bool(self.status & PCI_STATUS_INTERRUPT)

    def control_text(self):
        return flag_words(self.command, COMMAND_WORDS)

    def status_text(self):
        st = self.status
        return " ".join([flag_words(st, STATUS_WORDS_1), f"DEVSEL={DEVSEL[(st >> 9) & 3]}",
                         flag_words(st, STATUS_WORDS_2)])

    def latency_text(self):
        """lspci -vv's Latency line (shown for a bus master only): 'Latency: 32 (8000ns
        min, 16000ns max), Cache Line Size: 64 bytes'; None when not a bus master."""
        if not self.command & 0x4:          # PCI_COMMAND_MASTER
            return None
        text = f"Latency: {self.u8(0x0D)}"                     # PCI_LATENCY_TIMER
        if self.header_type == PCI_HEADER_TYPE_NORMAL:
            gnt, lat = self.u8(0x3E), self.u8(0x3F)            # PCI_MIN_GNT, PCI_MAX_LAT
            parts = ([f"{gnt * 250}ns min"] if gnt else []) + ([f"{lat * 250}ns max"] if lat else [])
            if parts:
                text += f" ({', '.join(parts)})"
        if self.u8(0x0C):                                        # PCI_CACHE_LINE_SIZE
            text += f", Cache Line Size: {self.u8(0x0C) * 4} bytes"
        return text

    def pin_text(self):
        """'A'..'D', or None for no interrupt pin (lspci prints no Interrupt line)."""
        pin = self.interrupt_pin
        return "ABCD"[pin - 1] if pin and 1 <= pin <= 4 else None

    def bars(self, sizes=None, starts=None):
        """The BARs (6 for a normal header, 2 for a bridge); unimplemented ones
        (all zero, no size) are left out.  `sizes`: index -> size, from sysfs;
        `starts`: index -> the CPU's address, from sysfs (lspci's), else config's."""
        sizes, starts = sizes or {}, starts or {}
        count = {PCI_HEADER_TYPE_NORMAL: 6, PCI_HEADER_TYPE_BRIDGE: 2}.get(self.header_type, 0)
        cmd = self.command
        out, i = [], 0
        while i < count:
            raw = self.u32(PCI_BASE_ADDRESS_0 + 4 * i)
            index = i
            i += 1
            if raw is None:
                break
            if raw & 1:
                bar = Bar(index, "io", raw & ~0x3, None, False,
                          enabled=bool(cmd & PCI_COMMAND_IO))
            else:
                mtype = (raw >> 1) & 3
                addr = raw & ~0xF
                bits = 32
                if mtype == 2 and i < count:     # 64-bit: the next BAR holds the high half
                    addr |= self.u32(PCI_BASE_ADDRESS_0 + 4 * i) << 32
                    bits = 64
                    i += 1
                bar = Bar(index, "mem", addr, bits, bool(raw & 8),
                          enabled=bool(cmd & PCI_COMMAND_MEMORY))
            bar.size = sizes.get(index)
            bar.address = starts.get(index, bar.address)
            if raw == 0 and not bar.size:
                continue
            out.append(bar)
        return out

    def capabilities(self):
        """The standard capability list, in chain order.  Stops at a loop, at an
        offset inside the header, or at the end of the dump (48 entries at most,
        as the kernel's PCI_FIND_CAP_TTL)."""
        if not self.status & PCI_STATUS_CAP_LIST:
            return []
        ptr = self.u8(PCI_CAPABILITY_LIST)
        caps, seen = [], set()
        while ptr and len(caps) < 48:
            ptr &= ~3
            if ptr < 0x40 or ptr in seen or self.u16(ptr) is None:
                break
            seen.add(ptr)
            cap_id, nxt = self.u8(ptr), self.u8(ptr + 1)
            if cap_id == 0xFF:
                break
            caps.append(self._capability(ptr, cap_id))
            ptr = nxt
        return caps

    def _capability(self, off, cap_id):
        cap = Capability(off, cap_id, CAP_NAMES.get(cap_id, f"Capability {cap_id:#04x}"))
        flags = self.u16(off + 2)
        if flags is None:
            return cap
        if cap_id == PCI_CAP_ID_PM:
            cap.name = "Power Management version %d" % (flags & 7)
            cap.lines = self._pm_lines(off, flags)
        elif cap_id == PCI_CAP_ID_MSI:
            enable, count, maxcount = flags & 1, 1 << ((flags >> 4) & 7), 1 << ((flags >> 1) & 7)
            cap.detail = (f"Enable{'+' if enable else '-'} Count={count}/{maxcount} "
                          f"Maskable{'+' if flags & 0x100 else '-'} "
                          f"64bit{'+' if flags & 0x80 else '-'}")
            cap.fields = {"enabled": bool(enable)}
            cap.lines = self._msi_lines(off, flags, cap.fields)
        elif cap_id == PCI_CAP_ID_MSIX:
            enable, count = bool(flags & 0x8000), (flags & 0x7FF) + 1
            cap.detail = (f"Enable{'+' if enable else '-'} Count={count} "
                          f"Masked{'+' if flags & 0x4000 else '-'}")
            cap.fields = {"enabled": enable, "count": count}
            table, pba = self.u32(off + 4), self.u32(off + 8)       # PCI_MSIX_TABLE, _PBA
            if table is not None and pba is not None:
                # the BAR indicator is the low 3 bits (PCI_MSIX_BIR), the offset the rest
                cap.fields.update(table_bar=table & 7, table_offset=table & ~7,
                                  pba_bar=pba & 7, pba_offset=pba & ~7)
                cap.lines = [f"Vector table: BAR={table & 7} offset={table & ~7:08x}",
                             f"PBA: BAR={pba & 7} offset={pba & ~7:08x}"]
        elif cap_id == PCI_CAP_ID_EXP:
            ptype = (flags >> 4) & 0xF
            name = EXPRESS_TYPES.get(ptype, f"Unknown type {ptype}")
            slot = (f" (Slot{'+' if flags & 0x100 else '-'})" if ptype in (0x4, 0x6, 0x8)
                    else "")
            cap.name = f"Express (v{flags & 0xF}) {name}{slot}"
            # lspci then adds the interrupt message number, worded "MSI 00" before
            # pciutils 3.10 and "IntMsgNum 0" since: JSON has it, the line leaves it out
            cap.fields = {"port_type": name, "int_msg_num": (flags >> 9) & 0x1F}
        return cap

    def _pm_lines(self, off, pmc):
        """lspci -vv's Flags and Status lines of the Power Management capability."""
        aux = (0, 55, 100, 160, 220, 270, 320, 375)[(pmc >> 6) & 7]
        f = lambda v, bit: "+" if v & bit else "-"     # noqa: E731
        out = [f"Flags: PMEClk{f(pmc, 0x8)} DSI{f(pmc, 0x20)} D1{f(pmc, 0x200)} D2{f(pmc, 0x400)} "
               f"AuxCurrent={aux}mA PME(D0{f(pmc, 0x800)},D1{f(pmc, 0x1000)},D2{f(pmc, 0x2000)},"
               f"D3hot{f(pmc, 0x4000)},D3cold{f(pmc, 0x8000)})"]
        ctl, ext = self.u16(off + 4), self.u8(off + 6)
        if ctl is None:
            return out
        out.append(f"Status: D{ctl & 3} NoSoftRst{f(ctl, 0x8)} PME-Enable{f(ctl, 0x100)} "
                   f"DSel={(ctl >> 9) & 0xF} DScale={(ctl >> 13) & 3} PME{f(ctl, 0x8000)}")
        if ext:
            out.append(f"Bridge: PM{f(ext, 0x80)} B3{f(~ext, 0x40)}")
        return out

    def _msi_lines(self, off, flags, fields):
        """lspci -vv's Address/Data (and Masking/Pending) lines of the MSI capability."""
        is64 = flags & 0x80
        data = self.u16(off + (12 if is64 else 8))
        lo, hi = self.u32(off + 4), self.u32(off + 8) if is64 else 0
        if data is None or lo is None:
            return []
        fields.update(address=(hi << 32) | lo, data=data)
        out = [f"Address: {f'{hi:08x}' if is64 else ''}{lo:08x}  Data: {data:04x}"]
        if flags & 0x100:
            mask, pending = self.u32(off + (16 if is64 else 12)), self.u32(off + (20 if is64 else 16))
            if mask is not None and pending is not None:
                out.append(f"Masking: {mask:08x}  Pending: {pending:08x}")
        return out

    def find_capability(self, cap_id):
        return next((c for c in self.capabilities() if c.id == cap_id), None)

    def intx_mask_support(self):
        """Does the card implement INTx masking (PCI 2.3 COMMAND.INTX_DISABLE)?

        Decided from the config space as it is, without writing to the device:
        a PCI Express function must implement the bit; a bit that reads as set now
        is implemented; so is the 2.3 interrupt-status bit when it reads set.
        Otherwise config space cannot tell: a pre-2.3 card hardwires both to 0,
        and so does a 2.3 card whose driver never used them.  vfio-pci itself
        decides with a write probe at open (pci_intx_mask_supported(): toggle the
        bit, read it back) and honours the kernel's broken_intx_masking quirks,
        which this cannot see.
        """
        decision = self._intx_mask_evidence()
        if self.interrupt_pin == 0:
            decision.how += "; the function has no interrupt pin (config 0x3d is 0), so no INTx"
        return decision

    def _intx_mask_evidence(self):
        exp = self.find_capability(PCI_CAP_ID_EXP)
        if exp is not None:
            return IntxMaskSupport(True, f"PCI Express capability at {exp.offset:#04x}: "
                                         "PCIe requires COMMAND.INTX_DISABLE", "pcie")
        if self.disintx:
            return IntxMaskSupport(True, "COMMAND.INTX_DISABLE reads as set now (DisINTx+), "
                                         "so the bit is implemented", "disintx-set")
        if self.intx_status:
            return IntxMaskSupport(True, "STATUS.INTERRUPT reads as set (INTx+): the PCI 2.3 "
                                         "interrupt-status bit is implemented", "intx-status")
        if self.interrupt_pin == 0:
            return IntxMaskSupport(None, "no evidence either way")
        if len(self.data) <= 64 and self.status & PCI_STATUS_CAP_LIST:
            return IntxMaskSupport(None, "DisINTx- and INTx- now, and the capability list "
                                         "is unread (without root sysfs gives 64 bytes of "
                                         "config space): run as root to look for PCIe")
        return IntxMaskSupport(None, "conventional PCI with DisINTx- and INTx- now: config space "
                                     "cannot tell; probably a pre-2.3 card (vfio-pci decides "
                                     "with a write probe, pci_intx_mask_supported())")

    def to_json(self, sizes=None):
        """Stable keys: vendor, device, subsystem_vendor, subsystem_device, revision,
        class, header_type, multifunction, command, status, control (lspci words),
        status_text, disintx, intx_status, interrupt_pin (0..4), interrupt_line,
        latency_timer (config 0x0d), latency (lspci's Latency line, null when not a bus
        master), bars [Bar], capabilities [Capability], intx_mask (IntxMaskSupport)."""
        sub = self.subsystem or (None, None)
        return {
            "vendor": self.vendor, "device": self.device,
            "subsystem_vendor": sub[0], "subsystem_device": sub[1],
            "revision": self.revision, "class": self.class_code,
            "header_type": self.header_type, "multifunction": self.multifunction,
            "command": self.command, "status": self.status,
            "control": self.control_text(), "status_text": self.status_text(),
            "disintx": self.disintx, "intx_status": self.intx_status,
            "interrupt_pin": self.interrupt_pin, "interrupt_line": self.interrupt_line,
            "latency_timer": self.u8(0x0D), "latency": self.latency_text(),
            "bars": [b.to_json() for b in self.bars(sizes)],
            "capabilities": [c.to_json() for c in self.capabilities()],
            "intx_mask": self.intx_mask_support().to_json(),
        }
