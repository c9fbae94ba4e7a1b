"""`pyvfio doctor`: what a lab engineer needs to know before an INTx run, as checks.

Each check is data: name (stable), status ("ok", "warn", "fail"), summary (what was
found), evidence (how we know), fix (the command that fixes it, or None).  The host
layer (pyvfio.host) does all the reading of sysfs/procfs; this module only decides.

What decides whether INTx passthrough of a card works (ARCHITECTURE.md):
- vfio-pci masks at the card (PCI 2.3 DisINTx, line may be shared) or, for a card
  without DisINTx or under nointxmask=1, at the interrupt controller with
  disable_irq_nosync() on an exclusive line (a shared line: request_irq -> EBUSY);
- controller masking is lazy unless the kernel carries 8b9f128947dd; lazy on XIVE
  stalls after one interrupt, lazy on an IO-APIC works with a spurious interrupt per
  cycle.
"""

import os
from dataclasses import dataclass, field

from .host import interrupts, paths, pci, system
from .results import envelope
from . import unlazy_fix

OK, WARN, FAIL = "ok", "warn", "fail"
_RANK = {OK: 0, WARN: 1, FAIL: 2}

KVMIO = 0xAE
KVM_CHECK_EXTENSION_NR = 0x03
KVM_CAP_IRQFD_RESAMPLE = 82
POWERPC = ("ppc64le", "ppc64", "ppc", "powerpc")


@dataclass
class Check:
    name: str
    status: str
    summary: str
    evidence: str = ""
    fix: str | None = None

    def to_json(self):
        return {"name": self.name, "status": self.status, "summary": self.summary,
                "evidence": self.evidence, "fix": self.fix}


@dataclass
class Diagnosis:
    system: system.System
    bdf: str | None
    checks: list[Check] = field(default_factory=list)
    facts: dict = field(default_factory=dict)   # unlazy_fix, controller, device, masking, irq_line

    @property
    def status(self):
        return max((c.status for c in self.checks), key=_RANK.get, default=OK)

    @property
    def failures(self):
        return [c for c in self.checks if c.status == FAIL]

    def to_json(self):
        """envelope("doctor") + host (System.to_json), bdf, status, facts, checks [Check]."""
        return envelope("doctor", host=self.system.to_json(), bdf=self.bdf, status=self.status,
                        facts=self.facts, checks=[c.to_json() for c in self.checks])


# -- controllers ---------------------------------------------------------------------

def controller_of(chip):
    """(family, display name) for a /proc/interrupts chip: xive, xics, ioapic, i8259."""
    c = (chip or "").upper()
    if c.startswith("XIVE"):
        return "xive", "XIVE"
    if c in ("XICS", "ICS") or c.startswith(("XICS", "ICS-")):
        return "xics", "XICS"
    if "IO-APIC" in c:
        return "ioapic", "IR-IO-APIC" if c.startswith("IR-") else "IO-APIC"
    if c.startswith("XT-PIC"):
        return "i8259", "XT-PIC (8259)"
    return None, chip or "unknown"


def _legacy_chip(lines):
    """The chip serving the host's legacy (non-MSI, non-IPI) lines, level first."""
    seen = {}
    for line in lines.values():
        chip = line.chip or ""
        if not chip or "MSI" in chip.upper() or "IPI" in chip.upper():
            continue
        weight = 2 if line.trigger == "Level" else 1
        seen[chip] = seen.get(chip, 0) + weight
    return max(seen, key=seen.get) if seen else None


# -- the lab's masking-policy module (tools/policy) -------------------------------------

POLICY_PARAM = "sys/module/pyvfio_policy/parameters/policy"


def policy_module(root="/"):
    """{irq: "lazy"|"unlazy"|"gone"} as pyvfio_policy reads the live IRQ_DISABLE_UNLAZY
    flag of the IRQs written to it; None when the module is not loaded."""
    text = paths.read_text(paths.under(root, POLICY_PARAM))
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        irq, _, state = line.partition(" ")
        if irq.isdigit():
            out[int(irq)] = state.strip()
    return out


# -- KVM -----------------------------------------------------------------------------

def kvm_irqfd_resample(root="/", machine=None):
    """(available: True|False|None, evidence) by KVM_CHECK_EXTENSION on /dev/kvm."""
    path = paths.under(root, "dev/kvm")
    if root != "/":
        return None, f"not probed: {root} is not the live host"
    if not os.path.exists(path):
        return False, "/dev/kvm does not exist (kvm module not loaded, or no virtualisation)"
    try:
        import fcntl
        import ioctl_opt
        from .uapi import ioc_for_arch
        nr = ioc_for_arch(ioctl_opt.IO(KVMIO, KVM_CHECK_EXTENSION_NR), machine)
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        return None, "cannot open /dev/kvm: permission denied"
    except (OSError, ImportError) as exc:
        return None, f"cannot probe /dev/kvm: {exc}"
    try:
        got = fcntl.ioctl(fd, nr, KVM_CAP_IRQFD_RESAMPLE)
    except OSError as exc:
        return None, f"KVM_CHECK_EXTENSION ({nr:#x}) failed: {exc.strerror}"
    finally:
        os.close(fd)
    return got > 0, f"KVM_CHECK_EXTENSION({nr:#x}, KVM_CAP_IRQFD_RESAMPLE=82) returned {got}"


# -- the checks ----------------------------------------------------------------------

def _fix_for(blockers, prefix, default):
    """The host layer's fix text for a blocker whose reason starts with `prefix`."""
    return next((fix for reason, fix in blockers if reason.startswith(prefix)), default)


def _system_checks(s, root, lines, fix, kvm_probe):
    out = []
    out.append(Check("kernel", OK, f"Linux {s.kernel} ({s.machine})",
                     "os.uname()" if root == "/" else f"{root}/proc/sys/kernel/osrelease"))
    blockers = system.system_blockers(s)   # the host layer's reasons and fixes

    no_vfio = s.vfio_pci_module in ("absent", "no-module-support")
    if fix.present:
        out.append(Check("unlazy_fix", OK, ("this kernel's version carries the unlazy fix "
                         "(8b9f128947dd), but it has no vfio-pci to use it") if no_vfio else
                         "vfio-pci carries the unlazy fix (8b9f128947dd): controller-masked INTx "
                         "is disabled unlazily", fix.evidence))
    elif fix.present is False:
        out.append(Check("unlazy_fix", WARN, "vfio-pci lacks the unlazy fix (8b9f128947dd): "
                         "controller-masked INTx (DisINTx- cards, nointxmask=1) is disabled lazily, "
                         "which stalls on XIVE", fix.evidence,
                         "boot a kernel with 8b9f128947dd (v6.18+, Debian 6.12.95+), or set "
                         "IRQ_DISABLE_UNLAZY with the masking-policy module (tools/policy)"))
    else:
        out.append(Check("unlazy_fix", WARN, "cannot tell whether vfio-pci carries the unlazy "
                         "fix (8b9f128947dd)", fix.evidence,
                         "install the kernel's modules under /lib/modules/$(uname -r), or run "
                         "`pyvfio repro` on this host to see the policy in action"))

    legacy = _legacy_chip(lines)
    family, name = controller_of(legacy)
    out.append(Check("irq_controller", OK if legacy else WARN,
                     f"legacy interrupts are served by {name}" if legacy
                     else "no legacy (INTx) line in /proc/interrupts",
                     f"/proc/interrupts chip {legacy!r} on the host's non-MSI lines" if legacy
                     else "every line listed is MSI/IPI, or /proc/interrupts is unreadable"))

    iommu_fix = _fix_for(blockers, "no IOMMU", "enable the IOMMU in firmware and on the kernel command line")
    if s.iommu_groups == 0 and not s.iommu_units:
        out.append(Check("iommu", FAIL, "no IOMMU: the kernel made no IOMMU groups",
                         "/sys/kernel/iommu_groups is empty and /sys/class/iommu lists nothing"
                         + (f"; cmdline: {' '.join(s.cmdline_iommu)}" if s.cmdline_iommu else ""),
                         iommu_fix))
    else:
        if s.machine in POWERPC:
            kind = "sPAPR TCE (container: VFIO_SPAPR_TCE_v2_IOMMU)"
        elif any(u.startswith("dmar") for u in s.iommu_units):
            kind = "Intel VT-d (container: VFIO_TYPE1v2_IOMMU)"
        elif any(u.startswith("ivhd") for u in s.iommu_units):
            kind = "AMD-Vi (container: VFIO_TYPE1v2_IOMMU)"
        else:
            kind = "type1 (container: VFIO_TYPE1v2_IOMMU)"
        out.append(Check("iommu", OK, f"{kind}, {s.iommu_groups} group(s)",
                         f"/sys/class/iommu: {', '.join(s.iommu_units) or 'none'}; "
                         f"cmdline: {' '.join(s.cmdline_iommu) or 'no iommu words'}"))
        if s.machine not in POWERPC:
            out.append(_remapping_check(lines, root))

    if s.vfio_pci_loaded:
        nim = "Y" if s.nointxmask else "N"
        out.append(Check("vfio_pci", OK, f"vfio-pci loaded, nointxmask={nim}",
                         "/sys/bus/pci/drivers/vfio-pci and /sys/module/vfio_pci/parameters/nointxmask"))
    else:
        # the host layer knows whether it can be modprobed, is missing, or cannot load at all
        reason, how = next(((r, f) for r, f in blockers if "vfio-pci" in r),
                           ("the vfio-pci driver is not loaded", "modprobe vfio-pci"))
        out.append(Check("vfio_pci", FAIL, reason,
                         f"/sys/bus/pci/drivers/vfio-pci does not exist; module: {s.vfio_pci_module}",
                         how))
    if s.nointxmask:
        out.append(Check("nointxmask", OK, "nointxmask=1: every card is masked at the controller "
                         "(exclusive line; the unlazy fix matters on XIVE)",
                         "/sys/module/vfio_pci/parameters/nointxmask reads Y (read once, at modprobe)"))
    else:
        out.append(Check("nointxmask", OK,
                         "nointxmask=0: PCI 2.3 cards are masked with DisINTx" if s.vfio_pci_loaded
                         else "nointxmask: vfio-pci not loaded; it is read once, at modprobe",
                         "/sys/module/vfio_pci/parameters/nointxmask",
                         None))

    if not s.dev_vfio:
        out.append(Check("dev_vfio", FAIL, "/dev/vfio does not exist", "no /dev/vfio directory",
                         "it appears with the fixes above (IOMMU on, vfio-pci loaded)"
                         if any(c.status == FAIL for c in out) else
                         "modprobe vfio-pci (/dev/vfio/vfio and one node per group bound to "
                         "vfio-pci appear)"))
    else:
        ctl = paths.under(root, "dev/vfio/vfio")
        if not s.vfio_container:
            out.append(Check("dev_vfio", FAIL, "/dev/vfio/vfio (the container) does not exist",
                             "/dev/vfio exists without its container node", "modprobe vfio"))
        elif not os.access(ctl, os.R_OK | os.W_OK):
            out.append(Check("dev_vfio", FAIL, "/dev/vfio/vfio is not readable and writable by you",
                             f"access(2) on {ctl}", "run as root (sudo pyvfio ...)"))
        else:
            out.append(Check("dev_vfio", OK, "/dev/vfio/vfio is there and usable", f"access(2) on {ctl}"))

    pol = policy_module(root)
    if pol is not None:
        out.append(Check("policy_module", OK, "masking-policy module pyvfio_policy loaded: "
                         + (", ".join(f"IRQ {i} {v}" for i, v in sorted(pol.items())) or "no IRQ set yet"),
                         f"/{POLICY_PARAM}; it overrides the kernel's choice on the IRQs listed"))

    avail, ev = kvm_probe(root, s.machine)
    if avail:
        out.append(Check("kvm_irqfd_resample", OK, "KVM resample irqfd available: a VM unmasks "
                         "INTx by eventfd on guest EOI (pyvfio --unmask eventfd measures that path)", ev))
    else:
        out.append(Check("kvm_irqfd_resample", WARN,
                         "KVM resample irqfd not available" if avail is False
                         else "KVM resample irqfd: unknown",
                         ev + "; a VM here would unmask by one SET_IRQS ioctl per interrupt "
                              "(pyvfio's default --unmask ioctl); pyvfio itself does not need KVM",
                         "modprobe kvm_intel (or kvm_amd / kvm_hv) and add yourself to the kvm group"
                         if "permission" not in ev else "run as root or join the kvm group"))

    if root == "/" and os.geteuid() != 0:
        out.append(Check("privileges", WARN, "not root: binding and reloading vfio-pci write sysfs",
                         f"euid {os.geteuid()}", "sudo pyvfio ..."))
    return out


def _remapping_check(lines, root):
    """type1's SET_IOMMU refuses (EPERM) without interrupt remapping unless allowed."""
    ir = sorted({l.chip for l in lines.values() if (l.chip or "").startswith("IR-")})
    if ir:
        return Check("interrupt_remapping", OK, "interrupt remapping is on",
                     f"/proc/interrupts chips {', '.join(ir)}")
    unsafe = paths.read_text(paths.under(root, "sys/module/vfio_iommu_type1/parameters/"
                                               "allow_unsafe_interrupts"))
    if unsafe in ("Y", "1"):
        return Check("interrupt_remapping", WARN, "no interrupt remapping; vfio_iommu_type1 "
                     "allow_unsafe_interrupts=1 lets VFIO go on anyway",
                     "no IR- chip in /proc/interrupts; allow_unsafe_interrupts reads Y")
    return Check("interrupt_remapping", FAIL, "no interrupt remapping: VFIO_SET_IOMMU (type1) will "
                 "fail with EPERM", "no IR- chip (IR-IO-APIC, IR-PCI-MSI) in /proc/interrupts",
                 "boot with intremap=on (QEMU: -device intel-iommu,intremap=on), or "
                 "modprobe vfio_iommu_type1 allow_unsafe_interrupts=1")


def _own_actions(dev, line, root):
    """Actions on the line that belong to the card's current host driver: they go away
    when the card moves to vfio-pci (its driver's name, its netdev names, its BDF)."""
    if line is None or dev.driver in (None, "vfio-pci"):
        return []
    names = {dev.driver, dev.driver.replace("-", "_"), dev.bdf}
    try:
        names |= set(os.listdir(os.path.join(pci.device_dir(dev.bdf, root), "net")))
    except OSError:
        pass
    return [a for a in line.actions
            if any(a == n or a.startswith(n + ":") or a.startswith(n + "[") or n in a
                   for n in names if n)]


def _device_checks(dev, s, root, lines, fix):
    out, facts = [], {}
    cfg = dev.config
    ident = f"{dev.bdf} {dev.class_name} [{dev.vendor:04x}:{dev.device:04x}]"
    out.append(Check("device", OK, ident, f"driver {dev.driver or 'none'}, "
                     f"IOMMU group {dev.iommu_group if dev.iommu_group is not None else 'none'}"))
    if cfg is None:
        out.append(Check("intx_pin", FAIL, "config space unreadable", "sysfs config",
                         "run as root (sudo pyvfio doctor ...)"))
        return out, facts
    if not cfg.interrupt_pin:
        out.append(Check("intx_pin", FAIL, "the function has no INTx pin: nothing for pyvfio to "
                         "service", "config 0x3d (Interrupt Pin) is 0",
                         "pick a legacy card with an interrupt pin (`pyvfio list`)"))
        return out, facts
    out.append(Check("intx_pin", OK, f"Interrupt: {dev.intx_text()}", "config 0x3d, sysfs irq"))

    support = cfg.intx_mask_support()
    if support.supported:
        out.append(Check("disintx", OK, "PCI 2.3 INTx masking (DisINTx) supported", support.how))
    else:
        out.append(Check("disintx", WARN, "DisINTx support unknown: vfio-pci will probably mask at "
                         "the controller (treat as DisINTx-)", support.how))
    if s.nointxmask:
        masking, why = "controller", "vfio-pci is loaded with nointxmask=1"
    elif support.supported:
        masking, why = "device", "DisINTx supported and nointxmask=0"
    else:
        masking, why = "controller", "no evidence of DisINTx support (vfio-pci's probe decides)"
    facts["masking"] = masking

    line = interrupts.intx_line(dev.bdf, dev.irq, root, lines)
    facts["irq_line"] = line.to_json() if line else None
    chip = line.chip if line else _legacy_chip(lines)
    family, cname = controller_of(chip)
    facts["controller"] = cname
    where = (f"/proc/interrupts IRQ {line.irq}: chip {line.chip}" if line
             else f"IRQ {dev.irq} not in /proc/interrupts; the host's legacy lines use {chip}")
    out.append(Check("card_controller", OK if chip else WARN, f"the card's line is served by {cname}",
                     where))

    # -- exclusive line: EBUSY before the user meets it --
    others = [a for a in interrupts.other_holders(line, dev.bdf)
              if a not in _own_actions(dev, line, root)]
    irq = line.irq if line else dev.irq
    on_line = [d for d in pci.devices(root) if irq and d.irq == irq and d.bdf != dev.bdf]
    sharers = [d for d in on_line if d.driver not in (None, "vfio-pci")]
    holders_text = ", ".join(others) or "nobody else"
    drivers_text = "; ".join(f"{d.bdf} ({d.driver})" for d in sharers)
    unbind = " && ".join(f"echo {d.bdf} > /sys/bus/pci/drivers/{d.driver}/unbind" for d in sharers)
    move = "move the card to a slot whose IRQ is not shared"
    idle = [d.bdf for d in on_line if d.driver is None and d.interrupt_pin]
    if not irq:
        out.append(Check("irq_exclusive", WARN, "no IRQ routed to the card yet: sharing cannot be "
                         "checked", f"sysfs irq is {dev.irq} and no vfio-intx({dev.bdf}) in /proc/interrupts",
                         f"the IRQ is assigned when a driver enables the device: pyvfio bind {dev.bdf}, "
                         "then pyvfio doctor again"))
    elif not others:
        out.append(Check("irq_exclusive", OK, f"IRQ {irq} is not shared" + (
            " (vfio-pci will request it exclusively)" if masking == "controller" else ""),
            f"holders in /proc/interrupts: {', '.join(line.actions) if line else 'none (not requested yet)'}"
            + (f"; routed to IRQ {irq} too, with no driver now (a driver bound to one later "
               f"would share the line): {', '.join(idle)}" if idle else "")))
    else:
        ev = f"IRQ {irq} holders besides this card: {holders_text}" + (
            f"; PCI functions on IRQ {irq}: {drivers_text}" if sharers else "")
        let_go = f"{', '.join(sorted({d.driver for d in sharers}))} would have to let go" if sharers \
            else f"{holders_text} would have to let go (no PCI function with a driver on IRQ {irq})"
        fix_cmd = (f"{unbind} (or {move})" if sharers else move)
        if masking == "controller":
            out.append(Check("irq_exclusive", FAIL, f"EBUSY predicted: vfio-pci masks this card at "
                             f"the controller ({why}) and requests IRQ {irq} exclusively, but it is "
                             f"shared: {let_go}", ev, fix_cmd))
        else:
            out.append(Check("irq_exclusive", OK, f"IRQ {irq} is shared, which DisINTx masking allows; "
                             f"with nointxmask=1 it would give EBUSY ({let_go})", ev))

    # -- will it stall? --
    if masking == "device":
        out.append(Check("stall_prediction", OK, "vfio masks at the card (DisINTx): the genirq "
                         "disable policy does not apply", why))
    else:
        lazy = {True: False, False: True}.get(fix.present)
        live = (policy_module(root) or {}).get(irq)
        # A fixed kernel rewrites the flag at request_irq: the live flag speaks for the
        # next run only while vfio holds the line, or on a kernel that never sets it.
        held = line is not None and interrupts.vfio_intx_name(dev.bdf) in line.actions
        if live in ("lazy", "unlazy") and (held or fix.present is not True):
            # the flag itself, read live: better evidence than the module or the version
            lazy = live == "lazy"
            fix = unlazy_fix.Finding(not lazy, "policy-module",
                                     f"pyvfio_policy reads IRQ {irq} {live} (the live flag)")
        how = fix.evidence if fix.basis == "policy-module" else f"by {fix.basis}"
        if family == "xive" and lazy:
            out.append(Check("stall_prediction", FAIL, "INTx will stall after one interrupt: "
                             "lazy disable on XIVE leaves the source at PQ=10",
                             f"controller masking ({why}), XIVE, unlazy fix absent ({how})",
                             f"echo {irq} unlazy > /{POLICY_PARAM}" if fix.basis == "policy-module" else
                             "boot a kernel with 8b9f128947dd (v6.18+, Debian 6.12.95+), or apply "
                             "IRQ_DISABLE_UNLAZY with tools/policy; pyvfio run --recover survives it"))
        elif family == "xive" and lazy is None:
            out.append(Check("stall_prediction", WARN, "INTx may stall after one interrupt (XIVE, "
                             "unlazy fix unknown)", f"controller masking ({why})",
                             "run `pyvfio run BDF -l 100 --watchdog 500` and look for 'stall after 1'"))
        elif lazy is False:
            out.append(Check("stall_prediction", OK, "expected to deliver: unlazy disable masks and "
                             f"unmasks at {cname}", f"controller masking ({why}), unlazy fix present "
                             f"({how})"))
        elif family == "ioapic":
            out.append(Check("stall_prediction", OK, f"expected to deliver: the {cname} re-delivers a "
                             "still-asserted line at EOI, at the cost of a spurious interrupt per "
                             "cycle under lazy disable", f"controller masking ({why}), unlazy fix "
                             f"{'absent' if lazy else 'unknown'} ({how})"))
        elif family == "xics":
            out.append(Check("stall_prediction", WARN, "expected to deliver: QEMU's XICS re-sends an "
                             "asserted line at EOI (lazy disable); unverified on XICS silicon",
                             f"controller masking ({why}), unlazy fix "
                             f"{'absent' if lazy else 'unknown'} ({how})",
                             "run `pyvfio run BDF -l 100 --watchdog 500` to see"))
        else:
            out.append(Check("stall_prediction", WARN, f"no prediction for controller {cname}",
                             f"controller masking ({why})"))

    # -- binding, group, permissions --
    if dev.driver != "vfio-pci":
        out.append(Check("driver", FAIL, f"bound to {dev.driver or 'no driver'}, not vfio-pci",
                         f"/sys/bus/pci/devices/{dev.bdf}/driver", f"pyvfio bind {dev.bdf}"))
    else:
        out.append(Check("driver", OK, "bound to vfio-pci", f"/sys/bus/pci/devices/{dev.bdf}/driver"))
    if dev.iommu_group is not None:
        members = [pci.device(m, root) for m in pci.group_members(dev.iommu_group, root) if m != dev.bdf]
        loose = [m for m in members if not m.is_bridge and m.driver not in (None, "vfio-pci")]
        gtype = paths.read_text(paths.under(root, pci.IOMMU_GROUPS, str(dev.iommu_group), "type"))
        ev = f"group {dev.iommu_group}: {', '.join([dev.bdf] + [m.bdf for m in members])}" + (
            f"; domain type {gtype}" if gtype else "")
        if loose:
            out.append(Check("iommu_group", FAIL, f"IOMMU group {dev.iommu_group} is not viable: "
                             + ", ".join(f"{m.bdf} ({m.driver})" for m in loose) + " stay on host drivers",
                             ev, f"pyvfio bind --group {dev.bdf}"))
        else:
            out.append(Check("iommu_group", OK, f"IOMMU group {dev.iommu_group} is viable", ev))
        node = paths.under(root, "dev/vfio", str(dev.iommu_group))
        if not os.path.exists(node):
            if dev.driver == "vfio-pci":
                out.append(Check("group_access", FAIL, f"/dev/vfio/{dev.iommu_group} does not exist",
                                 "the device is on vfio-pci but its group node is missing",
                                 "check dmesg for vfio-pci probe errors"))
        elif not os.access(node, os.R_OK | os.W_OK):
            out.append(Check("group_access", FAIL, f"/dev/vfio/{dev.iommu_group} is not readable and "
                             "writable by you", f"access(2) on {node}",
                             f"sudo chown $USER /dev/vfio/{dev.iommu_group} (or run as root)"))
        else:
            out.append(Check("group_access", OK, f"/dev/vfio/{dev.iommu_group} is usable", f"access(2) on {node}"))
    elif s.iommu_groups:
        out.append(Check("iommu_group", FAIL, "the device has no IOMMU group",
                         f"/sys/bus/pci/devices/{dev.bdf}/iommu_group is missing",
                         "check that the IOMMU covers this bus (dmesg | grep -i iommu)"))
    return out, facts


def diagnose(bdf=None, root="/", kvm_probe=kvm_irqfd_resample):
    """Every check for this host (and the card at `bdf`, when given)."""
    dev = pci.device(bdf, root) if bdf else None     # UsageError for a bad/absent address
    s = system.probe(root)
    lines = interrupts.read(root)
    fix = unlazy_fix.detect(s.kernel, root)
    d = Diagnosis(s, dev.bdf if dev else None)
    d.facts["unlazy_fix"] = fix.to_json()
    d.facts["controller"] = controller_of(_legacy_chip(lines))[1]
    d.checks = _system_checks(s, root, lines, fix, kvm_probe)
    if dev is not None:
        d.facts["device"] = dev.to_json()
        checks, facts = _device_checks(dev, s, root, lines, fix)
        d.checks += checks
        d.facts.update(facts)
    return d


_MARK = {OK: "ok", WARN: "warn", FAIL: "FAIL"}


ALWAYS_EVIDENCE = ("unlazy_fix", "irq_controller", "card_controller", "disintx", "irq_exclusive")


def render(d, verbose=False):
    """The human-readable report: one line per check; evidence (for problems, the
    facts doctor exists to show, or everything when verbose) and fix indented."""
    s = d.system
    out = [f"pyvfio doctor: Linux {s.kernel} {s.machine}" + (f", card {d.bdf}" if d.bdf else "")]
    width = max((len(c.name) for c in d.checks), default=10)
    for c in d.checks:
        out.append(f"  {_MARK[c.status]:<4}  {c.name:<{width}}  {c.summary}")
        if c.evidence and (verbose or c.status != OK or c.name in ALWAYS_EVIDENCE):
            out.append(f"  {'':<4}  {'':<{width}}  evidence: {c.evidence}")
        if c.fix and c.status != OK:
            out.append(f"  {'':<4}  {'':<{width}}  fix: {c.fix}")
    fails = d.failures
    warns = [c for c in d.checks if c.status == WARN]
    if fails:
        out.append(f"{len(fails)} problem(s) stop INTx passthrough here: "
                   + ", ".join(c.name for c in fails))
    elif warns:
        out.append(f"ready, with {len(warns)} warning(s): " + ", ".join(c.name for c in warns))
    else:
        out.append("ready")
    return "\n".join(out)
