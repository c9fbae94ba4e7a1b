"""`lspci -t`: the buses as a tree of bridges, drawn as pciutils' ls-tree.c draws it.

    -[0000:00]-+-00.0
               +-01.0-[01]--+-00.0
               |            \\-00.1
               \\-1f.3

A domain is a root; a bridge (base class 06, header type 1 or 2) carries the buses
from its secondary to its subordinate number (config 0x19, 0x1a); a function sits
on the bus of the narrowest bridge whose range holds its bus number.  The drawing
keeps one line buffer, as ls-tree.c does: a line printed turns its `+` and `|` into
`|` and everything else into blanks, which is the next line's left margin.
"""

from dataclasses import dataclass, field

from ..uapi import PCI_HEADER_TYPE_BRIDGE

PCI_HEADER_TYPE_CARDBUS = 2
PCI_SECONDARY_BUS, PCI_SUBORDINATE_BUS = 0x19, 0x1A   # the same offsets in a CardBus header


@dataclass
class Bus:
    domain: int
    number: int
    devs: list = field(default_factory=list)


@dataclass
class Bridge:
    domain: int
    secondary: int
    subordinate: int
    primary: int | None = None
    dev: object = None                  # the PciDevice; None for a domain's root
    buses: list = field(default_factory=list)
    children: list = field(default_factory=list)

    def bus(self, domain, number, make=True):
        found = next((b for b in self.buses if (b.domain, b.number) == (domain, number)), None)
        if found is None and make:
            found = Bus(domain, number)
            self.buses.append(found)
        return found


def _addr(dev):
    domain, bus, rest = dev.bdf.split(":")
    slot, func = rest.split(".")
    return int(domain, 16), int(bus, 16), int(slot, 16), int(func, 16)


def _bridge_of(dev):
    cfg = dev.config
    if cfg is None or (dev.class_code >> 16) != 0x06 or cfg.header_type not in (
            PCI_HEADER_TYPE_BRIDGE, PCI_HEADER_TYPE_CARDBUS):
        return None
    sec, sub = cfg.u8(PCI_SECONDARY_BUS), cfg.u8(PCI_SUBORDINATE_BUS)
    if sec is None:
        return None
    return Bridge(_addr(dev)[0], sec, sub if sub is not None else sec, _addr(dev)[1], dev)


def grow(devs):
    """The domain roots, each a Bridge with its buses and child bridges."""
    roots, bridges = {}, []
    for d in devs:
        roots.setdefault(_addr(d)[0], Bridge(_addr(d)[0], 0, 0xFFFFFFFF))
    by_dev = {}
    for d in devs:
        b = _bridge_of(d)
        if b:
            bridges.append(b)
            by_dev[d.bdf] = b
    for b in bridges:       # the narrowest bridge whose range holds b's primary bus
        best = roots[b.domain]
        for c in bridges:
            if c is not b and c.domain == b.domain and c.secondary <= b.primary <= c.subordinate \
                    and c.subordinate - c.secondary < best.subordinate - best.secondary:
                best = c
        best.children.append(b)
    for b in bridges:
        b.bus(b.domain, b.secondary)

    def insert(d, b):
        domain, number = _addr(d)[:2]
        bus = b.bus(domain, number, make=False)
        if bus is None:
            inner = next((c for c in b.children if c.domain == domain
                          and c.secondary <= number <= c.subordinate), None)
            if inner is not None:
                return insert(d, inner)
            bus = b.bus(domain, number)
        bus.devs.append(d)

    for d in devs:
        insert(d, roots[_addr(d)[0]])
    return [roots[k] for k in roots], by_dev


class _Drawing:
    def __init__(self, by_dev, keep, label):
        self.line, self.out, self.by_dev, self.keep, self.label = [], [], by_dev, keep, label

    def put(self, p, text):
        self.line[p:p + len(text)] = list(text)
        return p + len(text)

    def emit(self, p):
        del self.line[p:]
        self.out.append("".join(self.line))
        self.line = ["|" if c in "+|" else " " for c in self.line]

    # keep(dev) says whether a device passes the filter (-s/-d); a device that does
    # shows its whole subtree, as lspci -t -s does.
    def dev_shown(self, d, keep):
        if keep is None or keep(d):
            return True
        b = self.by_dev.get(d.bdf)
        return bool(b) and any(self.bus_shown(u, keep) for u in b.buses)

    def bus_shown(self, bus, keep):
        return keep is None or any(self.dev_shown(d, keep) for d in bus.devs)

    def dev(self, d, keep, p):
        _dom, _bus, slot, func = _addr(d)
        p = self.put(p, f"{slot:02x}.{func:x}")
        b = self.by_dev.get(d.bdf)
        if b is not None:
            if b.secondary == 0:
                p = self.put(p, "-")
            elif b.secondary == b.subordinate:
                p = self.put(p, f"-[{b.secondary:02x}]-")
            else:
                p = self.put(p, f"-[{b.secondary:02x}-{b.subordinate:02x}]-")
            return self.bridge(b, keep, p)
        if self.label:
            p = self.put(p, f"  {self.label(d)}")
        self.emit(p)

    def bus(self, bus, keep, p):
        shown = [d for d in bus.devs if self.dev_shown(d, keep)]
        if not shown:
            return self.emit(p)
        for i, d in enumerate(shown):
            mark = "--" if len(shown) == 1 else "\\-" if i == len(shown) - 1 else "+-"
            self.dev(d, None if keep is None or keep(d) else keep, self.put(p, mark))

    def bridge(self, b, keep, p):
        p = self.put(p, "-")
        shown = [u for u in b.buses if self.bus_shown(u, keep)]
        if len(b.buses) == 1:
            if not shown:
                return self.emit(p)
            if b.dev is None:
                p = self.put(p, f"[{b.buses[0].domain:04x}:{b.buses[0].number:02x}]-")
            return self.bus(b.buses[0], keep, p)
        if not shown:
            return self.emit(p)
        for i, u in enumerate(shown):
            mark = "" if len(shown) == 1 else "\\-" if i == len(shown) - 1 else "+-"
            self.bus(u, keep, self.put(p, f"{mark}[{u.domain:04x}:{u.number:02x}]-"))


def draw(devs, keep=None, label=None):
    """lspci -t's lines for PciDevices `devs` (every function, bridges included).
    keep(dev): the -s/-d filter; label(dev): the name shown after each leaf (-tv)."""
    roots, by_dev = grow(sorted(devs, key=_addr))
    drawing = _Drawing(by_dev, keep, label)
    for root in roots:
        drawing.bridge(root, keep, 0)
    return drawing.out
