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
    """(vendor name, {device: name}, {(device, subvendor, subdevice): name}) or None.  Only the vendor's own block is
    parsed: the whole 1.3 MB file takes seconds in a TCG guest, a find does not."""
    text = _text(root)
    at = text.find(f"\n{vendor:04x}  ")
    if at < 0:
        return None
    lines = iter(_block(text, at + 1))
    name = next(lines)[6:].strip()
    devices, subs, current = {}, {}, None
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        ident, _, dname = line.strip().partition("  ")
        try:
            if line.startswith("\t\t"):
                sv, sd = (int(x, 16) for x in ident.split())
                if current is not None:
                    subs[(current, sv, sd)] = dname.strip()
                continue
            current = int(ident, 16)
        except ValueError:
            continue
        devices[current] = dname.strip()
    return name, devices, subs


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
    vname, devices, _subs = entry
    dname = devices.get(device)
    return f"{vname} {dname}" if dname else f"{vname} Device"


def label(vendor, device, root="/"):
    """lspci -nn's device part: 'Red Hat, Inc. Virtio 1.0 network device [1af4:1041]'."""
    name = device_name(vendor, device, root)
    ids = f"[{vendor:04x}:{device:04x}]"
    return f"{name} {ids}" if name else f"Device {ids}"


def plain(vendor, device, root="/"):
    """lspci -tv's name, without brackets: 'Intel Corporation Device 0d57' for a device
    pci.ids does not list, 'Device 1234:5678' for an unknown vendor."""
    entry = _vendor(root, vendor)
    if entry is None:
        return f"Device {vendor:04x}:{device:04x}"
    dname = entry[1].get(device)
    return f"{entry[0]} {dname}" if dname else f"{entry[0]} Device {device:04x}"


def subsystem_label(vendor, device, subvendor, subdevice, root="/"):
    """lspci -vv -nn's Subsystem: the subsystem vendor's name, then the subsystem's own
    entry under the device, or the device's name when the subsystem IDs are the
    device's (pciutils id_lookup_subsys), then [subvendor:subdevice]."""
    ids = f"[{subvendor:04x}:{subdevice:04x}]"
    sv = _vendor(root, subvendor)
    own = _vendor(root, vendor)
    name = own[2].get((device, subvendor, subdevice)) if own else None
    if name is None and (vendor, device) == (subvendor, subdevice) and own:
        name = own[1].get(device)
    if sv is None:
        return f"Device {ids}"
    return f"{sv[0]} {name} {ids}" if name else f"{sv[0]} Device {ids}"
