"""`lspci -t`: the buses as a tree of bridges, drawn as pciutils' ls-tree.c draws it.

    -[0000:00]-+-00.0
               +-01.0-[01]--+-00.0
               |            \\-00.1
               \\-1f.3

Every root bus, of every domain, hangs off one host bridge, as in pciutils 3.9
(Debian 12's lspci; later versions draw one tree per domain); a bridge (base class 06,
header type 1 or 2) carries the buses
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
    """The host Bridge (the root buses of every domain, and the bridges below)."""
    host, bridges = Bridge(None, 0, 0xFFFFFFFF), []
    by_dev = {}
    for d in devs:
        b = _bridge_of(d)
        if b:
            bridges.append(b)
            by_dev[d.bdf] = b
    for b in bridges:       # the narrowest bridge whose range holds b's primary bus
        best = host
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
        insert(d, host)
    return host, by_dev


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

    # keep(dev) is the -s/-d filter: a device is drawn when it passes or something
    # behind it does (the path to it), as lspci -t -s draws.
    def dev_shown(self, d):
        if self.keep is None or self.keep(d):
            return True
        b = self.by_dev.get(d.bdf)
        return bool(b) and any(self.bus_shown(u) for u in b.buses)

    def bus_shown(self, bus):
        return self.keep is None or any(self.dev_shown(d) for d in bus.devs)

    def dev(self, d, p):
        _dom, _bus, slot, func = _addr(d)
        p = self.put(p, f"{slot:02x}.{func:x}")
        b = self.by_dev.get(d.bdf)
        if b is not None:
            p = self.put(p, f"-[{b.secondary:02x}]-" if b.secondary == b.subordinate
                         else f"-[{b.secondary:02x}-{b.subordinate:02x}]-")
            return self.bridge(b, p)
        if self.label:
            p = self.put(p, f"  {self.label(d)}")
        self.emit(p)

    def bus(self, bus, p):
        # the last device on the bus is drawn with \-, even when the filter hides it
        if len(bus.devs) == 1:
            if self.dev_shown(bus.devs[0]):
                return self.dev(bus.devs[0], self.put(p, "--"))
            return self.emit(p)
        shown = False
        for i, d in enumerate(bus.devs):
            if self.dev_shown(d):
                self.dev(d, self.put(p, "\\-" if i == len(bus.devs) - 1 else "+-"))
                shown = True
        if not shown:
            self.emit(p)

    def bridge(self, b, p):
        p = self.put(p, "-")
        if len(b.buses) == 1:
            if not self.bus_shown(b.buses[0]):
                return self.emit(p)
            if b.dev is None:
                p = self.put(p, f"[{b.buses[0].domain:04x}:{b.buses[0].number:02x}]-")
            return self.bus(b.buses[0], p)
        shown = False
        for i, u in enumerate(b.buses):
            if self.bus_shown(u):
                mark = "\\-" if i == len(b.buses) - 1 else "+-"
                self.bus(u, self.put(p, f"{mark}[{u.domain:04x}:{u.number:02x}]-"))
                shown = True
        if not shown:
            self.emit(p)


def draw(devs, keep=None, label=None):
    """lspci -t's lines for PciDevices `devs` (every function, bridges included).
    keep(dev): the -s/-d filter; label(dev): the name shown after each leaf (-tv)."""
    host, by_dev = grow(sorted(devs, key=_addr))
    drawing = _Drawing(by_dev, keep, label)
    if host.buses:
        drawing.bridge(host, 0)
    return drawing.out
