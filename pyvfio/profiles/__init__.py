"""Card profiles, chosen by probing the card's IDs (the first that accepts it)."""

from ..errors import UsageError
from .base import CardProfile, Op, run_ops
from .e1000 import E1000
from .edu import Edu
from .rtl8139 import Rtl8139

PROFILES = {p.name: p for p in (Edu, E1000, Rtl8139)}


def card_ids(host):
    """(vendor, device) from the device's config space."""
    cfg = host.region(7)
    return cfg.read(0, 2), cfg.read(2, 2)


def probe(host, access="mmap", name=None):
    """The profile for `host`'s card: the named one (checked against the card), or
    the first whose probe accepts the card's IDs."""
    vendor, device = card_ids(host)
    if name is not None:
        if name not in PROFILES:
            raise UsageError(f"unknown profile {name!r}", f"use one of: {', '.join(PROFILES)}")
        cls = PROFILES[name]
        if not cls.probe(vendor, device):
            raise UsageError(f"profile {name} does not match {host.bdf} ({vendor:04x}:{device:04x})",
                             f"it drives {', '.join(f'{v:04x}:{d:04x}' for v, d in cls.ids)}; "
                             "omit --profile to probe")
        return cls(host, access)
    for cls in PROFILES.values():
        if cls.probe(vendor, device):
            return cls(host, access)
    raise UsageError(f"no profile drives {host.bdf} ({vendor:04x}:{device:04x})",
                     f"profiles: {', '.join(f'{n} ({c.description})' for n, c in PROFILES.items())}")


__all__ = ["PROFILES", "CardProfile", "Op", "card_ids", "probe", "run_ops"]
