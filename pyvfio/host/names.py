"""Vendor and device names from the pci.ids database, as lspci shows them.

Optional: without a pci.ids file (package `pci.ids` on Debian) devices are shown
by their IDs only, as `lspci -n` would.  The file is looked up under the host
root, so fabricated test trees have no names unless they bring one.
"""

import functools
import os

from . import paths

PCI_IDS = ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids", "usr/share/pci.ids")


@functools.lru_cache(maxsize=8)
def _text(root):
    """The first pci.ids found, as text after a newline, or ''."""
    for rel in PCI_IDS:
        path = paths.under(root, rel)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                return "\n" + f.read()
    return ""


@functools.lru_cache(maxsize=256)
def _vendor(root, vendor):
    """(vendor name, {device: name}) or None.  Only the vendor's own block is
    parsed: the whole 1.3 MB file takes seconds in a TCG guest, a find does not."""
    text = _text(root)
    at = text.find(f"\n{vendor:04x}  ")
    if at < 0:
        return None
    lines = iter(_block(text, at + 1))
    name = next(lines)[6:].strip()
    devices = {}
    for line in lines:
        if line.startswith("\t\t") or not line.strip() or line.startswith("#"):
            continue
        ident, _, dname = line.strip().partition("  ")
        devices[int(ident, 16)] = dname.strip()
    return name, devices


def _block(text, start):
    """The vendor line at start and the indented lines under it."""
    end = start
    while True:
        end = text.find("\n", end)
        if end < 0 or end + 1 >= len(text) or text[end + 1] not in "\t#\n":
            break
        end += 1
    return text[start:end if end >= 0 else len(text)].splitlines()


def device_name(vendor, device, root="/"):
    """'Red Hat, Inc. Virtio 1.0 network device' ('Intel Corporation Device' for a
    device pci.ids does not list, as lspci -nn), or None for an unknown vendor."""
    entry = _vendor(root, vendor)
    if entry is None:
        return None
    vname, devices = entry
    dname = devices.get(device)
    return f"{vname} {dname}" if dname else f"{vname} Device"


def label(vendor, device, root="/"):
    """lspci -nn's device part: 'Red Hat, Inc. Virtio 1.0 network device [1af4:1041]'."""
    name = device_name(vendor, device, root)
    ids = f"[{vendor:04x}:{device:04x}]"
    return f"{name} {ids}" if name else f"Device {ids}"
