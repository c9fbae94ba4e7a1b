"""The QEMU command line for a lab guest (docs/lab.md, "The machines QEMU emulates": why each option)."""

# The default PHB's group holds the 9p devices; pseries cards go on a second PHB so
# their IOMMU group holds nothing bound to a host driver.
PPC_CARD_BUS = "phb1.0"
X86_CARD_SLOT0 = 0x10
# The bridge machine: a root port at this q35 slot (x86_64), a PCI bridge at this slot
# of the cards' PHB (ppc64le); behind either, edu cards in slots 1 and 5: pin A of
# both swizzles onto the bridge's INTB ((slot + pin) % 4), one shared line.
BRIDGE_ROOT_PORT = 0x1c
PPC_BRIDGE_SLOT = 0x10
BRIDGE_SLOTS = (1, 5)


def x86_slot(i):
    """The q35 slot of vfio card i, and of host card i after them.  ICH9 routes a
    bus-0 slot's pin A to PIRQ (slot % 4) + 4 (hw/isa/lpc_ich9.c, ich9_cc_init:
    irr[slot][intx] = (slot + intx) % 4 + 4), that is GSI 20-23 (ich9_pirq_to_gsi:
    pirq + 16): slots four apart share one INTx line."""
    return X86_CARD_SLOT0 + i


def x86_host_slot(i, cfg):
    """Host card i: on the line of vfio card i, beyond the vfio cards' slots."""
    return x86_slot(i) + 4 * -(-len(cfg.cards) // 4)


def x86_host_bdf(i, cfg):
    return f"0000:00:{x86_host_slot(i, cfg):02x}.0"


def feed_socket(run_dir, i):
    """The unix socket of vfio card i's chardev (lab/feeder.py writes into it)."""
    return run_dir / f"card{i}.sock"


# The kernel's boot check that the timer interrupt arrives through the IO-APIC
# counts ticks over a calibrated busy loop; a TCG vCPU starved by a loaded host
# misses them and the kernel panics ("timer doesn't work through Interrupt-remapped
# IO-APIC"). QEMU's q35 timer does work: the check is skipped.
X86_TIMER = "no_timer_check"


def command(cfg, qemu, vmlinux, initrd, shares, run_dir):
    """shares: (tag, host path, read-only) in mount order; run_dir holds the sockets
    of the cards' chardevs."""
    cmd = [qemu, "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
           "-smp", "1", "-m", "1G", "-accel", "tcg",
           "-kernel", str(vmlinux), "-initrd", str(initrd)]
    # TCG everywhere: this host's /dev/kvm is not a hardware KVM and dies on a
    # stock kernel; one vCPU is faster than two under TCG.
    if cfg.arch == "x86_64":
        cmd += [# The guest's verdict: QEMU exits (v << 1) | 1; 0 means no verdict.
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-append", f"console=ttyS0 quiet panic=-1 intel_iommu=on {X86_TIMER} rdinit=/init"]
    else:
        cmd += ["-append", "console=hvc0 quiet panic=-1 rdinit=/init"]
    cmd += machine_args(cfg, run_dir)
    # Left alone, QEMU puts them on the newest bus (the cards' PHB).
    share_bus = ",bus=pci.0" if cfg.arch == "ppc64le" else ""
    for i, (tag, path, readonly) in enumerate(shares):
        # multidevs=remap: the root share spans several host filesystems; without
        # it the guest mixes up inodes across them.
        opt = f"local,id=fs{i},path={path},security_model=none,multidevs=remap"
        if readonly:
            opt += ",readonly=on"
        cmd += ["-fsdev", opt, "-device", f"virtio-9p-pci,fsdev=fs{i},mount_tag={tag}{share_bus}"]
    return cmd


def machine_args(cfg, run_dir=None, bridge=False, ids=False):
    """The machine model and its cards: the one home of both, for the busybox lab
    and for the lab machines (machine.py).  bridge: two more edu cards behind a
    conventional PCI bridge (BRIDGE_SLOTS), where legacy cards sit in a modern machine.
    ids: name the cards (card_id) for the monitor's device_del."""
    if cfg.arch == "x86_64":
        cmd = ["-machine", "q35",
               # max: TCG's every feature, SVM among them, so kvm_amd gives the
               # guest a /dev/kvm (the KVM guest's lab tests)
               "-cpu", "max",
               # Interrupt remapping: without it vfio's type1 SET_IOMMU fails (EPERM).
               "-device", "intel-iommu,intremap=on"]
        for i, card in enumerate(cfg.cards):
            cmd += _chardev(card, i, run_dir)
            cmd += ["-device", f"{_qdev(card, i)},addr={x86_slot(i):#x}{_id(i, ids)}"]
        for i, card in enumerate(cfg.host_cards):
            cmd += ["-device", f"{_qdev(card)},addr={x86_host_slot(i, cfg):#x}"]
        if bridge:
            # A PCIe-to-PCI bridge behind a root port: the cards behind it share its
            # DMA alias (one IOMMU group) and its swizzled INTx lines.
            cmd += ["-device", f"pcie-root-port,id=rp{BRIDGE_ROOT_PORT},chassis=1,addr={BRIDGE_ROOT_PORT:#x}",
                    "-device", f"pcie-pci-bridge,id=pcibr,bus=rp{BRIDGE_ROOT_PORT}"]
    else:
        # VOF (~4 s faster than SLOF) leaves buses behind a PCI bridge unnumbered in
        # the device tree (no bus-range), and Linux then never probes what sits
        # behind it: the bridge machine boots SLOF, which enumerates them.
        vof = "off" if bridge else "on"
        cmd = ["-machine", f"pseries,ic-mode={cfg.ic},x-vof={vof},"
               # TCG cannot provide these spectre mitigations; asking would only warn.
               "cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off",
               "-cpu", "POWER9",
               "-device", "spapr-pci-host-bridge,index=1,id=phb1"]
        for i, card in enumerate(cfg.cards):
            cmd += _chardev(card, i, run_dir)
            cmd += ["-device", f"{_qdev(card, i)},bus={PPC_CARD_BUS},addr={i + 1:#x}{_id(i, ids)}"]
        if bridge:
            cmd += ["-device", f"pci-bridge,id=pcibr,chassis_nr=1,bus={PPC_CARD_BUS},addr={PPC_BRIDGE_SLOT:#x}"]
    if bridge:
        for j, slot in enumerate(BRIDGE_SLOTS):
            cmd += ["-device", f"{_qdev('edu')},bus=pcibr,addr={slot:#x},id={card_id(j, bridge=True)}"]
    return cmd


def card_id(i, bridge=False):
    """The QEMU device id of card i (for the monitor: device_del)."""
    return f"brcard{i}" if bridge else f"card{i}"


def _id(i, ids):
    return f",id={card_id(i)}" if ids else ""


def _chardev(card, i, run_dir):
    from .config import FED_CARDS

    if card not in FED_CARDS:
        return []
    # A listening unix socket, never a network address; wait=off: the guest boots
    # whether or not the feeder has connected yet.
    return ["-chardev", f"socket,id=card{i},path={feed_socket(run_dir, i)},server=on,wait=off"]


def _qdev(card, i=None):
    from . import qdevice
    from .config import CARDS, FED_CARDS

    if qdevice.is_qemu_card(card):   # the user's own: bus, addr and id stay ours
        return qdevice.qdev(card)
    qdev = CARDS[card][0]
    if card in FED_CARDS and i is not None:
        qdev += f",{FED_CARDS[card]}=card{i}"
    return qdev
