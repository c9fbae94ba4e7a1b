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


def _children_named(devdir, name, depth=5):
    """Entries of every directory called `name` in the device's own subtree
    (net/eth0, block/vda, tty/ttyS4); symlinks (driver, subsystem...) are not followed."""
    found = []
    base = devdir.rstrip("/").count("/")
    for dirpath, dirnames, _files in os.walk(devdir):
        if dirpath.count("/") - base >= depth:
            dirnames[:] = []
            continue
        if name in dirnames:
            found += sorted(os.listdir(os.path.join(dirpath, name)))
            dirnames.remove(name)
    return found


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
    for ifname in _children_named(devdir, "net"):
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


def _block_tree(name, root, seen):
    """`name` (a disk), its partitions and, recursively, their holders (dm, md):
    name -> "major:minor"."""
    if name in seen:
        return {}
    cls = paths.under(root, "sys/class/block", name)
    devs = {name: paths.read_text(os.path.join(cls, "dev"))}
    seen.add(name)
    try:
        entries = sorted(os.listdir(cls))
    except OSError:
        entries = []
    for part in entries:          # partitions are subdirectories with a `partition` file
        if os.path.exists(os.path.join(cls, part, "partition")):
            devs.update(_block_tree(part, root, seen))
    try:
        holders = sorted(os.listdir(os.path.join(cls, "holders")))
    except OSError:
        holders = []
    for holder in holders:
        devs.update(_block_tree(holder, root, seen))
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
    out = []
    disks = _children_named(devdir, "block")
    if not disks:
        return out
    mounts = _mounts(root)
    swaps = {os.path.basename(line.split()[0]) for line in
             paths.read_text(paths.under(root, "proc/swaps"), "").splitlines()[1:] if line.split()}
    seen = set()
    for disk in disks:
        for name, devno in _block_tree(disk, root, seen).items():
            if devno in mounts:
                where = ", ".join(mounts[devno])
                via = "" if name == disk else f" (on {disk})"
                out.append(f"block device {name}{via} is mounted on {where}")
            if name in swaps:
                out.append(f"block device {name} is in use as swap")
    return out


def console_uses(devdir, root):
    out = []
    active = set(paths.read_text(paths.under(root, "sys/class/tty/console/active"), "").split())
    for tty in _children_named(devdir, "tty"):
        if tty in active:
            out.append(f"{tty} is the system console")
    if paths.read_text(os.path.join(devdir, "boot_vga")) == "1":
        out.append("it is the boot VGA device (the console's display)")
    return out


def host_uses(bdf, root="/"):
    """Every way the host is using `bdf` right now, one sentence each."""
    devdir = pci.device_dir(bdf, root)
    return net_uses(devdir, root) + block_uses(devdir, root) + console_uses(devdir, root)
