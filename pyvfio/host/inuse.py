"""Is a PCI device in active use by the host?  (Before we take its driver away.)

Like dpdk-devbind.py's "Active" check, but wider: a network interface that is up
or has routes, a block device (a disk, a partition, or a dm/LVM/md device built on
them) that is mounted or used as swap, the active console's tty, the boot VGA
device.  Each finding is one sentence; an empty list means nothing was found.
Everything is read from sysfs/procfs under `root`.
"""

import os

from . import paths, pci

IFF_UP = 0x1


def class_members(cls, devdir, root):
    """Names in /sys/class/<cls> (net, block, tty) that belong to the device: their
    sysfs directory lies inside the device's own.  This finds a virtio disk
    (virtio1/block/vda), a SCSI one (host0/.../block/sda, with its partitions) and
    an NVMe namespace (nvme/nvme0/nvme0n1) alike."""
    top = os.path.realpath(devdir) + os.sep
    base = paths.under(root, "sys/class", cls)
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    return [n for n in names if os.path.realpath(os.path.join(base, n)).startswith(top)]


def _routes(ifname, root):
    """How many IPv4/IPv6 routes use ifname, and whether one is a default route."""
    count, default = 0, False
    v4 = paths.read_text(paths.under(root, "proc/net/route"), "").splitlines()[1:]
    for line in v4:
        f = line.split()
        if len(f) >= 8 and f[0] == ifname:
            count += 1
            default |= f[1] == "00000000" and f[7] == "00000000"
    for line in paths.read_text(paths.under(root, "proc/net/ipv6_route"), "").splitlines():
        f = line.split()
        if len(f) == 10 and f[9] == ifname and f[9] != "lo":
            count += 1
            default |= f[0] == "0" * 32 and f[1] == "00"
    return count, default


def net_uses(devdir, root):
    out = []
    for ifname in class_members("net", devdir, root):
        flags = paths.read_int(paths.under(root, "sys/class/net", ifname, "flags"), 16, 0)
        nroutes, default = _routes(ifname, root)
        why = []
        if flags & IFF_UP:
            why.append("is up")
        if nroutes:
            why.append(f"has {nroutes} route(s)" + (", the default route among them" if default else ""))
        if why:
            out.append(f"network interface {ifname} " + " and ".join(why))
    return out


def _with_holders(names, root):
    """The block devices `names` and, recursively, their holders (dm/LVM, md):
    name -> "major:minor"."""
    devs, todo = {}, list(names)
    while todo:
        name = todo.pop(0)
        if name in devs:
            continue
        cls = paths.under(root, "sys/class/block", name)
        devs[name] = paths.read_text(os.path.join(cls, "dev"))
        try:
            todo += sorted(os.listdir(os.path.join(cls, "holders")))
        except OSError:
            pass
    return devs


def _mounts(root):
    """major:minor -> mount points, from mountinfo (field 3 is the device number,
    which names dm/LVM devices as surely as disks)."""
    mounts = {}
    text = paths.read_text(paths.under(root, "proc/self/mountinfo"), "")
    for line in text.splitlines():
        f = line.split()
        if len(f) > 4:
            mounts.setdefault(f[2], []).append(f[4])
    return mounts


def block_uses(devdir, root):
    """Its disks and partitions (and what is built on them) that are mounted or swap."""
    own = class_members("block", devdir, root)
    if not own:
        return []
    mounts = _mounts(root)
    swaps = {os.path.basename(line.split()[0]) for line in
             paths.read_text(paths.under(root, "proc/swaps"), "").splitlines()[1:] if line.split()}
    out = []
    for name, devno in _with_holders(own, root).items():
        via = "" if name in own else f" (on {', '.join(own)})"
        if devno in mounts:
            out.append(f"block device {name}{via} is mounted on {', '.join(mounts[devno])}")
        if name in swaps:
            out.append(f"block device {name}{via} is in use as swap")
    return out


def console_uses(devdir, root):
    out = []
    active = set(paths.read_text(paths.under(root, "sys/class/tty/console/active"), "").split())
    for tty in class_members("tty", devdir, root):
        if tty in active:
            out.append(f"{tty} is the system console")
    if paths.read_text(os.path.join(devdir, "boot_vga")) == "1":
        out.append("it is the boot VGA device (the console's display)")
    return out


def own_irq_names(dev, root="/"):
    """The names a device's host driver gives its IRQ handlers, by convention: the
    driver's, the device's address, its network interfaces' (eth0).  None for a
    device on vfio-pci or on no driver."""
    if dev.driver in (None, "vfio-pci"):
        return set()
    return {dev.driver, dev.driver.replace("-", "_"), dev.bdf,
            *class_members("net", pci.device_dir(dev.bdf, root), root)}


def host_uses(bdf, root="/"):
    """Every way the host is using `bdf` right now, one sentence each."""
    devdir = pci.device_dir(bdf, root)
    return net_uses(devdir, root) + block_uses(devdir, root) + console_uses(devdir, root)
