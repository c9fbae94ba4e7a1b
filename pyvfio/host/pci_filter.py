"""lspci's device selectors, with its syntax and its error words (pciutils
lib/filter.c):

    -s [[[[DOMAIN]:]BUS]:][DEV][.[FUNC]]     e.g. 03:, 00:1f.2, .1, 0001:00:01.0
    -d [VENDOR]:[DEVICE][:CLASS[:PROG_IF]]  e.g. 8086:, :100e, 1af4::0200

Fields are hex; an empty field or `*` matches anything; a CLASS may hold `x` digits
(`02xx`: any network subclass).  A bad one is one line: `-s: Invalid slot number`.
"""

from dataclasses import dataclass, replace

from ..errors import UsageError

SLOT_SYNTAX = "[[[[DOMAIN]:]BUS]:][DEV][.[FUNC]]"
ID_SYNTAX = "[VENDOR]:[DEVICE][:CLASS[:PROG_IF]]"


def _fields(text, sep, count):
    parts = text.split(sep)
    if len(parts) > count:
        raise ValueError("Too many fields")
    return parts + [None] * (count - len(parts))


def _defined(field):
    return field not in (None, "", "*")


def _hex(field, limit, masked=False):
    """(value, mask) of a field, or None to match anything; ValueError if bad
    (lspci's parse_hex_field: a leading 0x is allowed, `x` digits only with a mask)."""
    if not _defined(field):
        return None
    if not masked and field[:2] in ("0x", "0X"):
        field = field[2:]
    value, mask, bound = 0, -1, 0
    for c in field:
        if c in "xX" and masked:
            value, bound, mask = value << 4, (bound << 4) | 1, mask << 4
        elif c in "0123456789abcdefABCDEF":
            d = int(c, 16)
            value, bound, mask = (value << 4) | d, (bound << 4) | d, (mask << 4) | 0xF
        else:
            raise ValueError
        if bound > limit:
            raise ValueError
    return value, mask & 0xFFFF


@dataclass
class Filter:
    """What -s and -d select; None matches anything."""
    domain: int | None = None
    bus: int | None = None
    slot: int | None = None
    func: int | None = None
    vendor: int | None = None
    device: int | None = None
    klass: tuple | None = None      # (value, mask) of the 16-bit class
    prog_if: int | None = None

    def matches(self, dev):
        """Does PciDevice `dev` pass?"""
        domain, bus, rest = dev.bdf.split(":")
        slot, func = rest.split(".")
        got = {"domain": int(domain, 16), "bus": int(bus, 16), "slot": int(slot, 16),
               "func": int(func, 16), "vendor": dev.vendor, "device": dev.device,
               "prog_if": dev.class_code & 0xFF}
        if any(getattr(self, k) is not None and getattr(self, k) != v for k, v in got.items()):
            return False
        if self.klass is not None:
            value, mask = self.klass
            return ((dev.class_code >> 8) & mask) == value
        return True


def _die(opt, msg, syntax):
    raise UsageError(f"{opt}: {msg}", f"write it as {opt} {syntax} (lspci's syntax), in hex")


def parse_slot(text, f=None):
    """Add `-s TEXT` to Filter f (a new one if None); UsageError in lspci's words."""
    f = f or Filter()
    try:
        fields = _fields(text, ":", 3)
    except ValueError as exc:
        _die("-s", str(exc), SLOT_SYNTAX)
    i = 0
    if fields[2] is not None:
        try:
            f.domain = (_hex(fields[0], 0x7FFFFFFF) or (None,))[0]
        except ValueError:
            _die("-s", "Invalid domain number", SLOT_SYNTAX)
        i += 1
    if fields[i + 1] is not None:
        try:
            f.bus = (_hex(fields[i], 0xFF) or (None,))[0]
        except ValueError:
            _die("-s", "Invalid bus number", SLOT_SYNTAX)
        i += 1
    dev = fields[i]
    if _defined(dev):
        parts = dev.split(".")
        if len(parts) > 2:
            _die("-s", "Invalid slot/function number", SLOT_SYNTAX)
        parts += [None] * (2 - len(parts))
        try:
            f.slot = (_hex(parts[0], 0x1F) or (None,))[0]
        except ValueError:
            _die("-s", "Invalid slot number", SLOT_SYNTAX)
        try:
            f.func = (_hex(parts[1], 7) or (None,))[0]
        except ValueError:
            _die("-s", "Invalid function number", SLOT_SYNTAX)
    return f


def parse_id(text, f=None):
    """Add `-d TEXT` to Filter f (a new one if None); UsageError in lspci's words."""
    f = f or Filter()
    try:
        fields = _fields(text, ":", 4)
    except ValueError as exc:
        _die("-d", str(exc), ID_SYNTAX)
    if fields[1] is None:
        _die("-d", "At least two fields must be given", ID_SYNTAX)
    found = {}
    for i, (name, limit, msg) in enumerate((("vendor", 0xFFFF, "Invalid vendor ID"),
                                            ("device", 0xFFFF, "Invalid device ID"),
                                            ("klass", 0xFFFF, "Invalid class code"),
                                            ("prog_if", 0xFF, "Invalid programming interface code"))):
        try:
            got = _hex(fields[i], limit, masked=name == "klass")
        except ValueError:
            _die("-d", msg, ID_SYNTAX)
        if got is not None:
            found[name] = got if name == "klass" else got[0]
    return replace(f, **found)
