"""PCI devices as sysfs shows them: /sys/bus/pci/devices/BDF/...

A device's address (BDF) is written as lspci -D writes it: DDDD:BB:DD.F, four
hex digits of domain, two of bus, two of device (0-1f) and one function (0-7).
"""

import os
import re
from dataclasses import dataclass, field

from ..errors import UsageError
from . import paths
from .classes import class_name
from ..uapi import PCI_HEADER_TYPE_NORMAL
from .config import Config

DEVICES = "sys/bus/pci/devices"
DRIVERS = "sys/bus/pci/drivers"
IOMMU_GROUPS = "sys/kernel/iommu_groups"

_BDF = re.compile(r"^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$")

# VFIO's group viability, as the kernel decides it (since 5.19).  A driver bound to
# a device calls iommu_device_use_default_domain() at probe, which counts the group
# as owned by the kernel (group->owner_cnt), unless the driver sets
# driver_managed_dma (pci_dma_configure, drivers/pci/pci-driver.c).  VFIO reports
# the group viable (VFIO_GROUP_FLAGS_VIABLE) only while !iommu_group_dma_owner_claimed(),
# and VFIO_GROUP_SET_CONTAINER's iommu_group_claim_dma_owner() fails with EPERM
# otherwise (drivers/vfio/group.c, drivers/iommu/iommu.c).  Drivers with
# driver_managed_dma: vfio-pci and its variant drivers (mlx5_vfio_pci,
# xe-vfio-pci...), pci-stub (pci-stub.c), pcieport (portdrv.c).  A bridge is no
# exception: before 5.19 vfio_dev_driver_allowed() let any driver on a
# non-normal header pass; today only the driver's flag counts.
DRIVER_MANAGED_DMA = ("vfio-pci", "pci-stub", "pcieport")


def driver_managed_dma(driver):
    """Does this PCI driver set driver_managed_dma?  sysfs does not show the flag:
    the kernel's own drivers that set it, by name."""
    name = driver.replace("_", "-")
    return name in DRIVER_MANAGED_DMA or name.endswith("-vfio-pci")


def breaks_viability(dev):
    """Does this member of an IOMMU group claim the group's DMA ownership for the
    kernel (a driver bound without driver_managed_dma), so that VFIO cannot use
    the group?  The one viability rule: doctor, info and bind all ask it."""
    return dev.driver is not None and not driver_managed_dma(dev.driver)


def group_type(group, root="/"):
    """The group's default domain type (sysfs iommu_groups/N/type: DMA, identity...)."""
    return paths.read_text(paths.under(root, IOMMU_GROUPS, str(group), "type"))


def parse_bdf(text):
    """The canonical DDDD:BB:DD.F for an address typed by a user ("00:03.0" gets
    domain 0000).  Raises UsageError, in one line, for anything else."""
    m = _BDF.match(text.strip().lower()) if isinstance(text, str) else None
    if not m or int(m.group(3), 16) > 0x1F:
        raise UsageError(f"malformed PCI address {text!r}",
                         "write it as DDDD:BB:DD.F, e.g. 0000:00:03.0 (see `pyvfio list` or lspci -D)")
    domain, bus, dev, fn = m.groups()
    return f"{int(domain or '0', 16):04x}:{int(bus, 16):02x}:{int(dev, 16):02x}.{fn}"


def device_dir(bdf, root="/"):
    return paths.under(root, DEVICES, bdf)


def exists(bdf, root="/"):
    return os.path.isdir(device_dir(bdf, root))


def require(text, root="/"):
    """parse_bdf + the device must exist; UsageError otherwise."""
    bdf = parse_bdf(text)
    if not exists(bdf, root):
        raise UsageError(f"no PCI device {bdf} on this host",
                         "`pyvfio list --all` shows the devices there are")
    return bdf


def read_config(bdf, root="/"):
    """The physical config space from sysfs (64 bytes unless root)."""
    with open(os.path.join(device_dir(bdf, root), "config"), "rb") as f:
        return f.read()


def resource_sizes(bdf, root="/"):
    """BAR index -> size from sysfs `resource` (lines "start end flags"; 0..5 are
    the BARs).  Empty for an unreadable file."""
    text = paths.read_text(os.path.join(device_dir(bdf, root), "resource"), "")
    sizes = {}
    for index, line in enumerate(text.splitlines()[:6]):
        try:
            start, end, _flags = (int(x, 16) for x in line.split())
        except ValueError:
            continue
        if end:                 # unused lines read 0x0 0x0 0x0
            sizes[index] = end - start + 1
    return sizes


def resource_starts(bdf, root="/"):
    """BAR index -> the CPU's address of the window, from sysfs `resource`: what
    lspci shows, which on POWER (PHB windows at 0x2001...) is not config space's
    bus address."""
    text = paths.read_text(os.path.join(device_dir(bdf, root), "resource"), "")
    starts = {}
    for index, line in enumerate(text.splitlines()[:6]):
        try:
            start, end, _flags = (int(x, 16) for x in line.split())
        except ValueError:
            continue
        if end:
            starts[index] = start
    return starts


def group_members(group, root="/"):
    """The addresses of every device in IOMMU group `group`, sorted."""
    if group is None:
        return []
    try:
        return sorted(os.listdir(paths.under(root, IOMMU_GROUPS, str(group), "devices")))
    except OSError:
        return []


def iommu_groups(root="/"):
    """The IOMMU group numbers the kernel has made (none without an IOMMU)."""
    try:
        return sorted(int(g) for g in os.listdir(paths.under(root, IOMMU_GROUPS)) if g.isdigit())
    except OSError:
        return []


@dataclass
class PciDevice:
    """What sysfs says about one function.  `config` is the physical config space
    (None if unreadable); `irq` is sysfs `irq`, which is the firmware's line (or 0)
    until the device is first enabled (host/irq_route.py says which it is);
    `enabled` is sysfs `enable` (None if absent)."""
    bdf: str
    vendor: int
    device: int
    subsystem_vendor: int | None
    subsystem_device: int | None
    class_code: int
    revision: int | None
    driver: str | None
    driver_override: str | None
    iommu_group: int | None
    irq: int | None
    config: Config | None = field(default=None, repr=False)
    enabled: bool | None = None

    @property
    def class_name(self):
        return class_name(self.class_code)

    @property
    def is_bridge(self):
        """A bridge: base class 06 (host, ISA, PCI bridges...) or a non-normal header.
        vfio-pci refuses non-normal headers (vfio_pci_probe).  Group viability does
        not depend on it (see breaks_viability)."""
        hdr = self.config.header_type if self.config else PCI_HEADER_TYPE_NORMAL
        return (self.class_code >> 16) == 0x06 or hdr != PCI_HEADER_TYPE_NORMAL

    @property
    def interrupt_pin(self):
        return self.config.interrupt_pin if self.config else None

    @property
    def pin_text(self):
        return self.config.pin_text() if self.config else None

    def to_json(self):
        """Stable keys: bdf, vendor, device, subsystem_vendor, subsystem_device (ints
        or null), class (24-bit int), class_name, revision, driver, driver_override,
        iommu_group, irq (sysfs: see host/irq_route.py), enabled (sysfs enable, null
        if absent), interrupt_pin (0 none, 1..4 = A..D; null if unknown), is_bridge,
        disintx (COMMAND bit now, null if unknown), intx_mask
        ({supported: true|null, how}), hex (the IDs as lspci -nn writes them: vendor
        "8086", device, subsystem_vendor, subsystem_device (null without), class "0200",
        prog_if "00", revision "03")."""
        cfg = self.config
        return {
            "bdf": self.bdf, "vendor": self.vendor, "device": self.device,
            "subsystem_vendor": self.subsystem_vendor, "subsystem_device": self.subsystem_device,
            "class": self.class_code, "class_name": self.class_name,
            "revision": self.revision, "driver": self.driver,
            "driver_override": self.driver_override, "iommu_group": self.iommu_group,
            "irq": self.irq, "enabled": self.enabled, "interrupt_pin": self.interrupt_pin,
            "is_bridge": self.is_bridge,
            "disintx": cfg.disintx if cfg else None,
            "intx_mask": cfg.intx_mask_support().to_json() if cfg else None,
            "hex": self.hex_ids(),
        }

    def hex_ids(self):
        def h(value, width):
            return None if value is None else f"{value:0{width}x}"
        return {"vendor": h(self.vendor, 4), "device": h(self.device, 4),
                "subsystem_vendor": h(self.subsystem_vendor, 4),
                "subsystem_device": h(self.subsystem_device, 4),
                "class": h(self.class_code >> 8, 4), "prog_if": h(self.class_code & 0xFF, 2),
                "revision": h(self.revision, 2)}


def device(text, root="/"):
    """The PciDevice at a user-typed address; UsageError if malformed or absent."""
    bdf = require(text, root)
    d = device_dir(bdf, root)
    try:
        cfg = Config(read_config(bdf, root))
    except (OSError, ValueError):
        cfg = None
    group = paths.link_name(os.path.join(d, "iommu_group"))
    override = paths.read_text(os.path.join(d, "driver_override"))
    revision = paths.read_int(os.path.join(d, "revision"))
    enable = paths.read_int(os.path.join(d, "enable"))
    return PciDevice(
        bdf=bdf,
        vendor=paths.read_int(os.path.join(d, "vendor"), default=cfg.vendor if cfg else 0),
        device=paths.read_int(os.path.join(d, "device"), default=cfg.device if cfg else 0),
        subsystem_vendor=paths.read_int(os.path.join(d, "subsystem_vendor")),
        subsystem_device=paths.read_int(os.path.join(d, "subsystem_device")),
        class_code=paths.read_int(os.path.join(d, "class"),
                                  default=cfg.class_code if cfg else 0),
        revision=revision if revision is not None else (cfg.revision if cfg else None),
        driver=paths.link_name(os.path.join(d, "driver")),
        driver_override=None if override in (None, "(null)", "") else override,
        iommu_group=int(group) if group and group.isdigit() else None,
        irq=paths.read_int(os.path.join(d, "irq")),
        config=cfg,
        enabled=None if enable is None else enable > 0,
    )


def devices(root="/"):
    """Every PCI function on the host, in address order."""
    try:
        names = os.listdir(paths.under(root, DEVICES))
    except FileNotFoundError:
        return []
    return [device(n, root) for n in sorted(names) if _BDF.match(n)]
