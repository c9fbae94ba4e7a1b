"""`pyvfio list`: one line per PCI function, in lspci's words.

    0000:00:03.0 Ethernet controller [0200]: 8086:100e (rev 03) DisINTx- masking:unknown; pin A routed to IRQ 11; IOMMU group: 5; driver: e1000

`DisINTx±` is the physical COMMAND bit now (as lspci -vv shows it); `masking:`
says whether the card implements that bit (PCI 2.3 INTx masking): yes(pcie),
yes(disintx-set), yes(intx-status) or unknown (see `pyvfio info` for the evidence).

--json prints a list of objects with the keys of pyvfio.host.pci.PciDevice.to_json.
"""

import json

from ..host import paths, pci
from ..host.classes import class_label


def add_arguments(parser):
    parser.add_argument("--all", action="store_true", help="include bridges (hidden by default)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def line(dev):
    """The one-line summary of a device."""
    rev = f" (rev {dev.revision:02x})" if dev.revision is not None else ""
    head = f"{dev.bdf} {class_label(dev.class_code)}: {dev.vendor:04x}:{dev.device:04x}{rev}"
    if dev.config is None:
        intx = "DisINTx? masking:unknown"
    else:
        m = dev.config.intx_mask_support()
        basis = f"({m.basis})" if m.supported else ""
        intx = f"DisINTx{'+' if dev.config.disintx else '-'} masking:{m.word}{basis}"
    group = dev.iommu_group if dev.iommu_group is not None else "none"
    return (f"{head} {intx}; {dev.intx_text()}; IOMMU group: {group}; "
            f"driver: {dev.driver or 'none'}")


def run(args):
    devs = [d for d in pci.devices(paths.host_root()) if args.all or not d.is_bridge]
    if args.json:
        print(json.dumps([d.to_json() for d in devs], indent=2))
        return 0
    for dev in devs:
        print(line(dev))
    if not devs:
        print("no PCI devices" + ("" if args.all else " (other than bridges: try --all)"))
    return 0
