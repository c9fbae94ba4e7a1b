"""`pyvfio info BDF [--json FILE] [--require-vfio]`: one device, everything we know.

Config decode in lspci -vv -nn's words (subsystem names, the latency timer, each
capability's lines: MSI address/data, MSI-X table and PBA BAR+offset, PM flags/status)
(from the physical config space in sysfs),
the INTx masking decision and its evidence, the host facts that shape INTx
(the IRQ INTx will really get: for an idle vfio-pci card whose sysfs irq is still
the firmware's line, info enables it a moment through VFIO to learn it, see
host/irq_route.py; that line and its controller from /proc/interrupts, who else holds it,
vfio-pci's nointxmask, kernel, machine), and, when the device is bound to
vfio-pci and VFIO works here, its regions and IRQs as VFIO reports them.
When VFIO is not available, says why and what would make it so; with
--require-vfio that is an error (exit != 0) instead.

--json FILE: envelope("info") with device (PciDevice.to_json: IDs as ints and, under
"hex", lspci's strings), names {device, subsystem (lspci -nn's labels; subsystem null
without one)}, config (Config.to_json), host
{system (System.to_json), irq_route (RoutedIrq.to_json: the IRQ INTx will
really get and how we know; null without a pin), intx_probe (intx_probe.Probe.to_json:
what vfio-pci did when info enabled INTx a moment, or null), irq_line (IrqLine.to_json of
that IRQ, or null), irq_shared_with [str] (other handlers on the line; the
device's own host driver's, named after the driver or its interface, are left
out since they leave on bind), exclusive_needed (true when vfio-pci would
request the line exclusively, null if unknown), group_members [{bdf, driver, is_bridge, breaks_viability}]
(the others in its IOMMU group), notes [str]}, vfio {available, blockers [{reason, fix}], error (str or null),
regions [{index, name, size, offset, flags, mmap, read, write}],
irqs [{index, name, count, flags: [str]}], iommu (how it was opened: "iommufd" or the
container's IOMMU type)}.
"""

import sys

from .. import uapi
from ..errors import EXIT_OK, PyvfioError
from ..host import interrupts, inuse, irq_route, masking, names, paths, pci, system
from ..vfio import disintx_probe, intx_probe
from ..host.classes import class_label
from ..results import check_outputs, envelope, write_json
from .parser import add_json

REGION_NAMES = {0: "BAR0", 1: "BAR1", 2: "BAR2", 3: "BAR3", 4: "BAR4", 5: "BAR5",
                6: "ROM", 7: "config", 8: "VGA"}
IRQ_NAMES = {0: "INTx", 1: "MSI", 2: "MSI-X", 3: "ERR", 4: "REQ"}


def add_arguments(parser):
    parser.add_argument("bdf", metavar="BDF", help="PCI address, e.g. 0000:00:03.0")
    add_json(parser, "everything shown", was_flag=True)
    parser.add_argument("--require-vfio", action="store_true",
                        help="fail unless the device can be opened through VFIO")


def _flag_names(flags, prefix):
    names = [n[len(prefix):].lower() for n in dir(uapi)
             if n.startswith(prefix) and isinstance(getattr(uapi, n), int)
             and getattr(uapi, n) and flags & getattr(uapi, n) == getattr(uapi, n)]
    return sorted(names)


def vfio_facts(dev, root):
    """Regions and IRQs through VFIO: {regions, irqs} or raises PyvfioError."""
    from ..vfio import open_device
    regions, irqs = [], []
    with open_device(dev.bdf, root=root) as vdev:
        for index, flags, size, offset in vdev.regions():
            if size == 0:
                continue
            regions.append({
                "index": index, "name": REGION_NAMES.get(index, f"region{index}"),
                "size": size, "offset": offset, "flags": flags,
                "mmap": bool(flags & uapi.VFIO_REGION_INFO_FLAG_MMAP),
                "read": bool(flags & uapi.VFIO_REGION_INFO_FLAG_READ),
                "write": bool(flags & uapi.VFIO_REGION_INFO_FLAG_WRITE)})
        for info in vdev.irqs():
            index = info.index
            irqs.append({"index": index, "name": IRQ_NAMES.get(index, f"irq{index}"),
                         "count": info.count,
                         "flags": _flag_names(info.flags, "VFIO_IRQ_INFO_")})
        opened = vdev.iommu
    return {"regions": regions, "irqs": irqs, "iommu": opened}


def _notes(line, exclusive):
    """What the controller and the masking mode mean for INTx here."""
    notes = []
    if line and (line.chip or "").startswith("XIVE") and exclusive is not False:
        notes.append("XIVE with controller masking (DisINTx- or nointxmask=1): a kernel "
                     "without the unlazy-disable fix (8b9f128947dd, v6.18, backported to "
                     "stable) delivers one interrupt and then stalls")
    return notes


def gather(text, root="/", require_vfio=False):
    """Everything `info` shows, as the --json dict."""
    dev = pci.device(text, root)
    cfg = dev.config
    sizes = pci.resource_sizes(dev.bdf, root)
    sysinfo = system.probe(root)
    lines = interrupts.read(root)
    route = line = probe = support = None
    exclusive = None
    if cfg and cfg.interrupt_pin:
        route = irq_route.route(dev, root, lines)
        support = disintx_probe.support(dev, root)
        if intx_probe.needed(dev, route, sysinfo, support):
            probe = intx_probe.probe(dev, root)[0]    # ask the kernel: an idle vfio-pci card
        if probe is not None:
            route = probe.route
        line = interrupts.intx_line(dev.bdf, route.irq, root, lines)
        # at the card: shared, unless vfio-pci is reloaded with nointxmask=1
        exclusive = masking.exclusive(masking.masked_at(sysinfo.nointxmask, masking.pci_2_3(support, probe)))
    members = []
    for bdf in pci.group_members(dev.iommu_group, root):
        if bdf != dev.bdf and pci.exists(bdf, root):
            m = pci.device(bdf, root)
            members.append({"bdf": bdf, "driver": m.driver, "is_bridge": m.is_bridge,
                            "breaks_viability": pci.breaks_viability(m)})
    blockers = system.vfio_blockers(sysinfo, dev, root)
    loose = [f"{m['bdf']} ({m['driver']})" for m in members if m["breaks_viability"]]
    if loose:
        blockers.append((f"IOMMU group {dev.iommu_group} is not viable: " + ", ".join(loose),
                         f"pyvfio bind {dev.bdf} --group"))
    vfio = {"available": False, "blockers": [{"reason": r, "fix": f} for r, f in blockers],
            "error": None, "regions": [], "irqs": []}
    if not blockers or require_vfio:
        try:
            vfio.update(vfio_facts(dev, root))
            vfio["available"] = True
        except PyvfioError as exc:
            if require_vfio:
                raise
            vfio["error"] = str(exc)
    config = cfg.to_json(sizes) if cfg else None
    if support is not None:
        config["intx_mask"] = support.to_json()     # the write probe's answer, where it ran
    root_names = {"device": names.label(dev.vendor, dev.device, root), "subsystem": None}
    if dev.subsystem_vendor not in (None, 0, 0xFFFF):        # as lspci: only a real one
        root_names["subsystem"] = names.subsystem_label(dev.vendor, dev.device, dev.subsystem_vendor,
                                                        dev.subsystem_device, root)
    return {
        "device": dev.to_json(),
        "names": root_names,
        "config": config,
        "host": {"system": sysinfo.to_json(),
                 "irq_route": route.to_json() if route else None,
                 "intx_probe": probe.to_json() if probe else None,
                 "irq_line": line.to_json() if line else None,
                 "irq_shared_with": interrupts.other_holders(line, dev.bdf,
                                                             inuse.own_irq_names(dev, root)),
                 "group_members": members,
                 "exclusive_needed": exclusive,
                 "notes": _notes(line, exclusive)},
        "vfio": vfio,
    }, dev


def render(info, dev):
    """The human-readable report, lspci -vv style."""
    d, c, h, v = info["device"], info["config"], info["host"], info["vfio"]
    out = []
    rev = f" (rev {d['revision']:02x})" if d["revision"] else ""     # lspci omits rev 00
    out.append(f"{d['bdf']} {class_label(d['class'])}: {info['names']['device']}{rev}")
    if info["names"]["subsystem"]:
        out.append(f"\tSubsystem: {info['names']['subsystem']}")
    if c is None:
        out.append("\tconfig space unreadable")
    else:
        out.append(f"\tControl: {c['control']}")
        out.append(f"\tStatus: {c['status_text']}")
        if c["latency"]:
            out.append(f"\t{c['latency']}")
        r = h["irq_route"]
        if r is None:
            out.append("\tInterrupt: no interrupt pin")
        else:
            route = irq_route.RoutedIrq(**r)
            out.append(f"\tInterrupt: {route.text(dev.pin_text)}" + (
                f" (config 0x3c says {r['firmware_line']})"
                if route.known and r["firmware_line"] != r["irq"] else "")
                + (f" [{r['basis']}]" if route.known else ""))
        cfg = dev.config
        root = paths.host_root()
        for bar in cfg.bars(pci.resource_sizes(d["bdf"], root), pci.resource_starts(d["bdf"], root)):
            out.append(f"\tRegion {bar.index}: {bar.describe()}")
        for cap in cfg.capabilities():
            out.append(f"\tCapabilities: {cap.describe()}")
            out += [f"\t\t{line}" for line in cap.lines]
    group = d["iommu_group"]
    others = "; ".join(f"{m['bdf']} {'bridge, ' if m['is_bridge'] else ''}{m['driver'] or 'no driver'}"
                       for m in h["group_members"])
    out.append(f"\tIOMMU group: {group if group is not None else 'none (no IOMMU)'}"
               + (f" (with {others})" if others else ""))
    out.append(f"\tKernel driver in use: {d['driver'] or 'none'}"
               + (f" (driver_override: {d['driver_override']})" if d["driver_override"] else ""))
    if c is not None:
        m = c["intx_mask"]
        word = {True: "yes", False: "no"}.get(m["supported"], "unknown")
        if m["basis"] == disintx_probe.BASIS:
            word += f" ({disintx_probe.BASIS})"
        out.append(f"INTx masking (PCI 2.3 DisINTx) supported: {word}: {m['how']}")
    s = h["system"]
    out.append(f"Host: Linux {s['kernel']} {s['machine']}")
    nim = {True: "Y", False: "N", None: "unknown" if s["vfio_pci_loaded"]
           else "n/a (vfio-pci not loaded)"}[s["nointxmask"]]
    out.append(f"\tvfio-pci: {'loaded' if s['vfio_pci_loaded'] else 'not loaded'}; "
               f"nointxmask: {nim}; IOMMU groups: {s['iommu_groups']}")
    line = h["irq_line"]
    if line:
        shared = ", ".join(line["actions"]) or "nobody"
        hw = f" hwirq {line['hwirq']}" if line["hwirq"] is not None else ""
        trig = f" {line['trigger']}" if line["trigger"] else ""
        out.append(f"\tIRQ {line['irq']}: {line['chip']}{hw}{trig}, {line['total']} interrupts, "
                   f"held by: {shared}")
    elif h["irq_route"] and h["irq_route"]["irq"]:
        out.append(f"\tIRQ {h['irq_route']['irq']}: not in /proc/interrupts (nobody has requested it)")
    if h["exclusive_needed"] is None and h["irq_shared_with"]:
        out.append("\tif the card cannot mask INTx itself (pre-2.3), vfio-pci needs this line "
                   f"exclusively: EBUSY while {', '.join(h['irq_shared_with'])} hold(s) it")
    if h["exclusive_needed"]:
        out.append("\tvfio-pci would request this line exclusively (controller masking)"
                   + (f": EBUSY while {', '.join(h['irq_shared_with'])} hold(s) it"
                      if h["irq_shared_with"] else ""))
    for note in h["notes"]:
        out.append(f"\tnote: {note}")
    if v["available"]:
        out.append(f"VFIO (opened through {v['iommu']}):")
        for r in v["regions"]:
            how = "mmap" if r["mmap"] else "pread/pwrite"
            out.append(f"\tregion {r['index']} {r['name']}: size {r['size']:#x}, "
                       f"offset {r['offset']:#x}, {how}")
        for i in v["irqs"]:
            out.append(f"\tirq {i['index']} {i['name']}: count {i['count']}, "
                       f"{'|'.join(i['flags']) or '-'}")
    else:
        out.append("VFIO: not available for this device here:")
        if v["error"]:
            out.append(f"\t- {v['error']}")
        for b in v["blockers"]:
            out.append(f"\t- {b['reason']}: {b['fix']}")
    return "\n".join(out)


def run(args):
    out = sys.stderr if check_outputs([("--json", args.json)]) else sys.stdout
    info, dev = gather(args.bdf, paths.host_root(), args.require_vfio)
    print(render(info, dev), file=out, flush=True)
    if args.json:
        write_json(args.json, envelope("info", **info))
    return EXIT_OK
