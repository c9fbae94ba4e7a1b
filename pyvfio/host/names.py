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
def _database(root):
    """{vendor: (name, {device: name})} from the first pci.ids found, or {}."""
    for rel in PCI_IDS:
        path = paths.under(root, rel)
        if os.path.exists(path):
            break
    else:
        return {}
    db, devices = {}, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("C "):           # the class list follows the vendors
                break
            if not line.strip() or line.startswith("#") or line.startswith("\t\t"):
                continue
            if line.startswith("\t"):
                if devices is not None:
                    ident, _, name = line.strip().partition("  ")
                    devices[int(ident, 16)] = name.strip()
                continue
            ident, _, name = line.strip().partition("  ")
            try:
                devices = {}
                db[int(ident, 16)] = (name.strip(), devices)
            except ValueError:
                devices = None
    return db


def device_name(vendor, device, root="/"):
    """'Red Hat, Inc. Virtio 1.0 network device' ('Intel Corporation Device' for a
    device pci.ids does not list, as lspci -nn), or None for an unknown vendor."""
    entry = _database(root).get(vendor)
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
