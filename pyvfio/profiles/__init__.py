"""Card profiles: TOML files (format.py), found in the package's builtin/, then each
directory of PYVFIO_PROFILE_PATH (colon-separated), then
$XDG_CONFIG_HOME/pyvfio/profiles (default ~/.config/pyvfio/profiles).  A later
profile with an earlier one's name replaces it (a user's edu wins over ours).
A card is driven by the profile named, or by the first whose match (IDs, class)
and then BARs and identification register accept it, the user's before the
built-ins."""

import os
from pathlib import Path

from ..errors import UsageError
from .base import CardProfile, Op, Program, Programs
from .format import Profile, load_file

BUILTIN = Path(__file__).resolve().parent / "builtin"


def search_path():
    """[(directory, source)] in the order profiles are loaded."""
    dirs = [(BUILTIN, "builtin")]
    for d in os.environ.get("PYVFIO_PROFILE_PATH", "").split(":"):
        if d:
            dirs.append((Path(d), "PYVFIO_PROFILE_PATH"))
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    dirs.append((Path(xdg) / "pyvfio" / "profiles", "XDG_CONFIG_HOME"))
    return dirs


def available(problems=None):
    """{name: Profile} of every profile found, the last one of a name winning;
    a replaced one is named in the winner's `shadows`.  An invalid file raises
    its ProfileInvalid, or with a `problems` list is appended to it and skipped."""
    out = {}
    for d, source in search_path():
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.toml")):
            try:
                p = load_file(f, source)
            except UsageError as exc:
                if problems is None:
                    raise
                problems.append(exc)
                continue
            if p.name in out:
                p.shadows = str(out[p.name].path)
            out[p.name] = p
    return out


def named(name):
    """The Profile for --profile NAME or a path to a .toml file."""
    if name.endswith(".toml") or os.sep in name:
        return load_file(name, "file")
    profiles = available()
    if name not in profiles:
        raise UsageError(f"unknown profile {name!r}", f"use one of: {', '.join(profiles)}, "
                         "or a profile file (NAME.toml)")
    return profiles[name]


def card_ids(host):
    """(vendor, device, class code) from the device's config space."""
    cfg = host.region(7)
    return cfg.read(0, 2), cfg.read(2, 2), cfg.read(8, 4) >> 8


def probe(host, access="mmap", name=None):
    """The profile for `host`'s card, bound to it: the named one (checked against
    the card), or the first whose match accepts the card's IDs."""
    vendor, device, cls = card_ids(host)
    if name is not None:
        spec = named(name)
        if not spec.accepts(vendor, device, cls):
            raise UsageError(f"profile {spec.name} does not match {host.bdf} ({vendor:04x}:{device:04x}, "
                             f"class {cls:06x})", f"it drives {', '.join(spec.ids_text())}"
                             + (f" of class {spec.class_code:06x}" if spec.class_code is not None else "")
                             + "; omit --profile to probe")
        return CardProfile(spec, host, access)
    profiles = available()
    refused = None
    for spec in _probe_order(profiles):
        if spec.accepts(vendor, device, cls):
            try:
                return CardProfile(spec, host, access)
            except UsageError as exc:  # its IDs, but not its BARs or identification: the next
                refused = refused or exc
    if refused is not None:
        raise refused
    raise UsageError(f"no profile drives {host.bdf} ({vendor:04x}:{device:04x})",
                     f"write one (pyvfio/profiles/README.md) and check it with pyvfio profile check; "
                     f"profiles: {', '.join(profiles)}")


def _probe_order(profiles):
    """The user's profiles first (the config directory, then PYVFIO_PROFILE_PATH
    from its last directory), the built-ins last: as with names, the user's wins."""
    rank = {str(d): i for i, (d, _) in enumerate(search_path())}
    return sorted(profiles.values(), key=lambda p: -rank.get(str(Path(p.path).parent), 0))


__all__ = ["CardProfile", "Op", "Profile", "Program", "Programs", "available", "card_ids", "named", "probe",
           "search_path"]
