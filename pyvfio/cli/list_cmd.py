"""`pyvfio list`: one line per PCI function, in lspci's words (wrapped here):

    0000:00:03.0 Ethernet controller [0200]: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e]
        (rev 03) DisINTx- masking:unknown; pin A routed to IRQ 22; IOMMU group: 5; driver: e1000

The head is lspci -nn's (names from pci.ids when installed, "Device [vvvv:dddd]" without).

`DisINTx±` is the physical COMMAND bit now (as lspci -vv shows it); `masking:`
says whether the card implements that bit (PCI 2.3 INTx masking): yes(pcie),
yes(disintx-set), yes(intx-status) or unknown (see `pyvfio info` for the evidence).
`-s [[[[DOMAIN]:]BUS]:][DEV][.[FUNC]]` and `-d [VENDOR]:[DEVICE][:CLASS[:PROG_IF]]`
select as lspci's do (host/pci_filter.py; a selector also shows the bridges it picks);
`-t` draws the bus tree as `lspci -t` does (host/pci_tree.py), `-tv` with names.

"routed to IRQ N" is the IRQ the kernel gave INTx when it enabled the device; before
the first enable sysfs shows the firmware's line, which `list` says as "IRQ N from
firmware" (host/irq_route.py; `pyvfio doctor BDF` learns the routed one).  `list`
never opens a device.

--json FILE writes envelope("list") with `devices`: objects with the keys of
pyvfio.host.pci.PciDevice.to_json (IDs as ints, and as lspci's hex strings under "hex")
plus "name" (pci.ids vendor and device name, or null) and "intx_route"
(RoutedIrq.to_json: irq, basis, firmware_line, evidence; null without a pin).
"""

import sys

from ..errors import EXIT_OK
from ..host import interrupts, irq_route, names, paths, pci, pci_filter, pci_tree
from ..host.classes import class_label
from ..results import check_outputs, envelope, write_json
from .parser import add_json


def add_arguments(parser):
    parser.add_argument("--all", action="store_true", help="include bridges (hidden by default)")
    parser.add_argument("-s", metavar=pci_filter.SLOT_SYNTAX, dest="slot",
                        help="only the functions at these addresses, as lspci -s (hex)")
    parser.add_argument("-d", metavar=pci_filter.ID_SYNTAX, dest="ids",
                        help="only the functions with these IDs, as lspci -d (hex)")
    parser.add_argument("-t", dest="tree", action="store_true",
                        help="the bus tree (bridges and buses), as lspci -t")
    parser.add_argument("-v", dest="verbose", action="store_true",
                        help="with -t: name each function, as lspci -tv")
    add_json(parser, "the devices", was_flag=True)


def _route(dev, root, lines):
    return irq_route.route(dev, root, lines) if dev.config and dev.config.interrupt_pin else None


def _intx(dev, route):
    if dev.config is None:
        return "interrupt pin unknown (config unreadable)"
    return route.text(dev.pin_text) if route else "no interrupt pin"


def line(dev, root="/", lines=None):
    """The one-line summary of a device."""
    rev = f" (rev {dev.revision:02x})" if dev.revision else ""     # lspci omits rev 00
    head = f"{dev.bdf} {class_label(dev.class_code)}: {names.label(dev.vendor, dev.device, root)}{rev}"
    if dev.config is None:
        intx = "DisINTx? masking:unknown"
    else:
        m = dev.config.intx_mask_support()
        basis = f"({m.basis})" if m.supported else ""
        intx = f"DisINTx{'+' if dev.config.disintx else '-'} masking:{m.word}{basis}"
    group = dev.iommu_group if dev.iommu_group is not None else "none"
    route = _route(dev, root, interrupts.read(root) if lines is None else lines)
    return (f"{head} {intx}; {_intx(dev, route)}; IOMMU group: {group}; "
            f"driver: {dev.driver or 'none'}")


def selector(args):
    """The Filter of -s/-d (UsageError in lspci's words), or None without them."""
    if not (args.slot or args.ids):
        return None
    f = pci_filter.parse_slot(args.slot) if args.slot else None
    return pci_filter.parse_id(args.ids, f) if args.ids else f


def run(args):
    out = sys.stderr if check_outputs([("--json", args.json)]) else sys.stdout
    root = paths.host_root()
    f = selector(args)
    every = pci.devices(root)
    if args.tree:
        label = (lambda d: names.plain(d.vendor, d.device, root)) if args.verbose else None
        for text in pci_tree.draw(every, f.matches if f else None, label):
            print(text)
        return EXIT_OK
    # a selector picks bridges too, as lspci's do
    devs = [d for d in every if (f is None or f.matches(d)) and (args.all or f or not d.is_bridge)]
    lines = interrupts.read(root)
    for dev in devs:
        print(line(dev, root, lines), file=out)
    if not devs:
        print("no PCI devices" + (" selected" if f else "" if args.all
                                  else " (other than bridges: try --all)"), file=out)
    if args.json:
        found = []
        for d in devs:
            route = _route(d, root, lines)
            found.append({**d.to_json(), "name": names.device_name(d.vendor, d.device, root),
                          "intx_route": route.to_json() if route else None})
        out.flush()
        write_json(args.json, envelope("list", devices=found))
    return EXIT_OK
