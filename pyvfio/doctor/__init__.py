"""`pyvfio doctor`: what a lab engineer needs to know before an INTx run, as checks
(check.py).  The host layer (pyvfio.host) does all the reading of sysfs, procfs and
/dev; these modules only decide, one per thing checked.

What decides whether INTx passthrough of a card works (docs/model.md):
- vfio-pci masks at the card (PCI 2.3 DisINTx, line may be shared) or, for a card
  without DisINTx or under nointxmask=1, at the interrupt controller with
  disable_irq_nosync() on an exclusive line (a shared line: request_irq -> EBUSY);
  the line is the IRQ the kernel routes at pci_enable_device, not necessarily the
  one sysfs shows before (host/irq_route.py);
- controller masking is lazy unless the kernel carries 8b9f128947dd; lazy on XIVE
  stalls after one interrupt, lazy on an IO-APIC works with a spurious interrupt per
  cycle.
"""

import os

from .. import unlazy_fix
from ..host import interrupts, irq_route, pci, system, virt
from ..host.interrupts import controller_of
from ..host.kvm import irqfd_resample
from ..vfio import disintx_probe, intx_probe
from . import controllers, group, iommu, irq_line, kernel, kvm, masking, stall, vfio_pci
from .check import FAIL, NA, OK, WARN, Check, Diagnosis
from .render import render

__all__ = ["diagnose", "render", "controller_of", "Check", "Diagnosis", "OK", "WARN", "FAIL", "NA"]


def _system_checks(s, root, lines, fix, kvm_probe):
    out = [iommu.platform_check(s)] + kernel.checks(s, root, fix)
    out.append(controllers.host_check(lines))
    out += iommu.checks(s, root, lines)
    out += vfio_pci.checks(s, root, out)
    out += stall.module_check(root)
    out.append(kvm.check(s, root, kvm_probe))
    return out


def _device_checks(dev, s, root, lines, fix, probe_intx):
    ident = f"{dev.bdf} {dev.class_name} [{dev.vendor:04x}:{dev.device:04x}]"
    out = [Check("device", OK, ident, f"driver {dev.driver or 'none'}, "
                 f"IOMMU group {dev.iommu_group if dev.iommu_group is not None else 'none'}")]
    facts = {}
    cfg = dev.config
    if cfg is None:
        out.append(Check("intx_pin", FAIL, "config space unreadable", "sysfs config",
                         "run as root (sudo pyvfio doctor ...)"))
        return out, facts
    if not cfg.interrupt_pin:
        out.append(Check("intx_pin", FAIL, "the function has no INTx pin: nothing for pyvfio to "
                         "service", "config 0x3d (Interrupt Pin) is 0",
                         "pick a legacy card with an interrupt pin (`pyvfio list`)"))
        return out, facts
    out.append(Check("intx_pin", OK, f"Interrupt: pin {dev.pin_text}", "config 0x3d"))
    # Ask the kernel (enable the card a moment) when sysfs and config space cannot say
    # which IRQ INTx will get or where vfio-pci will mask it.
    route = irq_route.route(dev, root, lines)
    support = disintx_probe.support(dev, root)
    facts["intx_mask"] = support.to_json()
    probe = why_not = None
    if intx_probe.needed(dev, route, s, support):
        probe, why_not = probe_intx(dev, root)
    if probe is not None:
        route = probe.route
        facts["intx_probe"] = probe.to_json()
    mode, why, disintx = masking.decide(support, s, probe)
    out.append(disintx)
    facts["masking"] = mode
    out.append(irq_line.route_check(dev, route, why_not))
    facts["irq_route"] = route.to_json()
    line = interrupts.intx_line(dev.bdf, route.irq, root, lines)
    facts["irq_line"] = line.to_json() if line else None
    chip, ctl = irq_line.controller_check(line, lines)
    family, cname = controller_of(chip)
    facts["controller"] = cname
    out.append(ctl)
    out.append(irq_line.exclusive_check(dev, route, line, mode, why, root, probe))
    out.append(stall.check(dev, route.irq, line, family, cname, mode, why, fix, root))
    out += group.checks(dev, s, root)
    return out, facts


def _lab_module(root):
    """Inside a lab VM booted with a rebuilt vfio-pci (pyvfio lab --vfio): its file,
    which the guest loaded from the run share; else None."""
    from ..lab import in_guest
    if root != "/" or not in_guest.in_lab():
        return None
    ko = os.path.join(os.environ["PYVFIO_LAB_DIR"], "vfio", "vfio_pci_core.ko")
    return ko if os.path.exists(ko) else None


def diagnose(bdf=None, root="/", kvm_probe=irqfd_resample, probe_intx=intx_probe.probe):
    """Every check for this host (and the card at `bdf`, when given).  probe_intx(dev,
    root) -> (intx_probe.Probe or None, why not) enables a card a moment to ask the
    kernel its INTx IRQ and masking."""
    dev = pci.device(bdf, root) if bdf else None     # UsageError for a bad/absent address
    s = system.probe(root)
    lines = interrupts.read(root)
    fix = unlazy_fix.detect(s.kernel, root, _lab_module(root))
    d = Diagnosis(s, dev.bdf if dev else None)
    d.facts["unlazy_fix"] = fix.to_json()
    d.facts["controller"] = controller_of(interrupts.legacy_chip(lines))[1]
    d.facts["platform"] = s.platform.to_json()
    blocked = system.vfio_impossible(s)
    if blocked:     # say what runs here instead
        d.facts["without_vfio"] = {"why": blocked, "what_runs": [
            {"command": c, "what": w} for c, w in virt.WITHOUT_VFIO]}
    d.checks = _system_checks(s, root, lines, fix, kvm_probe)
    if dev is not None:
        d.facts["device"] = dev.to_json()
        checks, facts = _device_checks(dev, s, root, lines, fix, probe_intx)
        d.checks += checks
        d.facts.update(facts)
    return d
