"""A lab machine's disk: a Debian bookworm install made with mmdebstrap from
Debian's packages, as a raw ext4 image plus the kernels and initrds it installed.

The kernels are the lab's own (kernels.prepare picks the package, so there is one
home for "which Debian package is the lab kernel"), with their matching
linux-headers.  The image is built into a temporary folder and renamed into the
cache with a manifest like every other artefact; machines boot it read-only
through a throwaway qcow2 overlay each (machine.py), so they start clean.

mmdebstrap writes a directory (we are root, as the lab is) and `mke2fs -d` turns
it into an ext4 image without loop mounts.  ppc64el's maintainer scripts run under
qemu-user through binfmt_misc (qemu-user-static).
"""
import hashlib
import os
import pathlib
import shutil
import subprocess
import time

from . import apt as labapt, cache, progress
from .config import ARCHES, LabConfig
from .errors import LabError, LabUnavailable

# What a user's lab machine has (issue 10), plus what installing pyvfio offline needs:
# the cffi backend and psutil come from Debian (no ppc64le psutil wheel on PyPI), the
# extension compiles on the machine against its own <linux/vfio.h> (linux-libc-dev).
PACKAGES = [
    "systemd-sysv", "udev", "openssh-server", "kmod", "iproute2", "pciutils", "procps",
    "python3", "python3-venv", "python3-dev", "python3-cffi", "python3-psutil",
    "python3-setuptools", "python3-wheel", "libffi-dev", "gcc", "make",
]
# Kernel series installed per arch: x86_64 carries 6.1 and 6.12, ppc64le 6.12.
SERIES = {"x86_64": ("6.1", "6.12"), "ppc64le": ("6.12",)}
EXCLUDE = ["/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*"]
# Every line the lab machine's initrd needs to find its root (Debian builds these as modules).
INITRD_MODULES = ["virtio_pci", "virtio_blk", "ext4"]
SPARE_MB = 1024    # room for the venv, a policy build and results
USER = "lab"       # the non-root user, in group vfio
RECIPE = 1         # bump when _build or _configure changes what an image holds


def kernel_packages(arch, cache_root):
    """{series: {package, kver, headers, vmlinux}} for the lab's kernels on this arch
    (vmlinux: the lab's kernel folder's, which machines boot)."""
    from . import kernels

    out = {}
    for series in SERIES[arch]:
        folder, info = kernels.prepare(LabConfig(arch, kernel=series), cache_root)
        out[series] = {"package": info["package"], "kver": info["kver"],
                       "headers": f"linux-headers-{info['kver']}", "vmlinux": str(folder / "vmlinux")}
    return out


def _key(arch, kpkgs, pubkey):
    h = hashlib.sha256()
    recipe = [PACKAGES, EXCLUDE, INITRD_MODULES, sorted((s, k["package"]) for s, k in kpkgs.items()),
              pubkey, RECIPE]
    h.update(repr(recipe).encode())
    return h.hexdigest()[:12]


def prepare(arch, cache_root, pubkey, kpkgs=None):
    """The image folder for arch (root.img, boot/vmlinuz-KVER, boot/initrd.img-KVER),
    built if missing or damaged.  pubkey: the machines' authorized key (machine.py);
    kpkgs: kernel_packages(), when the caller has them."""
    cache_root = pathlib.Path(cache_root)
    kpkgs = kpkgs or kernel_packages(arch, cache_root)
    folder = cache_root / f"image-{arch}-{_key(arch, kpkgs, pubkey)}"
    step = f"{arch} machine image"
    hashed = tuple(f"boot/initrd.img-{k['kver']}" for k in kpkgs.values())

    def build(out):
        return _build(arch, kpkgs, pubkey, cache_root, out, step)

    folder = cache.ensure(folder, step, build, hashed=hashed)
    return folder, cache.info(folder)


def _tool(name, package):
    if shutil.which(name) is None:
        raise LabUnavailable("machine image", f"{name} is not installed",
                             hint=f"install the lab's packages ({package}): tools/setup --lab")


def _build(arch, kpkgs, pubkey, cache_root, out, step):
    _tool("mmdebstrap", "mmdebstrap")
    _tool("mke2fs", "e2fsprogs")
    debarch = ARCHES[arch]["debarch"]
    if arch != "x86_64":
        _foreign_ready(debarch)
    debs = cache_root / "apt" / debarch / "archives-image"   # kept: a rebuild downloads nothing
    debs.mkdir(parents=True, exist_ok=True)
    rootdir = out / "rootfs"
    names = PACKAGES + [n for k in kpkgs.values() for n in (k["package"], k["headers"])]
    mirrors = [f"deb {url} {suite} main" for url, suites in labapt.SUITES[debarch] for suite in suites.split()]
    modules_d = "/usr/share/initramfs-tools/modules.d"
    mods = "\\n".join(INITRD_MODULES)
    essential_hook = (f"--essential-hook=mkdir -p \"$1\"{modules_d} \"$1\"/etc/initramfs-tools/conf.d && "
                      f"printf '{mods}\\n' > \"$1\"{modules_d}/pyvfio-lab && "
                      f"echo MODULES=list > \"$1\"/etc/initramfs-tools/conf.d/pyvfio-lab.conf")
    cmd = ["mmdebstrap", "--variant=apt", f"--architectures={debarch}", "--mode=root",
           "--format=directory", "--aptopt=Acquire::Languages \"none\";",
           "--skip=download/empty",
           "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives",
           f"--setup-hook=sync-in {debs} /var/cache/apt/archives",
           # Before the kernels' postinst makes the initrds: the root's drivers, the rest left out.
           essential_hook,
           f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
           "--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb",
           f"--include={','.join(names)}"]
    cmd += [f"--dpkgopt=path-exclude={p}" for p in EXCLUDE]
    cmd += ["--dpkgopt=path-include=/usr/share/doc/*/copyright", "bookworm", str(rootdir), *mirrors]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-12:])
        hint = labapt._network_hint(p.stderr)
        raise (LabUnavailable if hint else LabError)(step, f"mmdebstrap failed (exit {p.returncode})",
                                                     tail, hint=hint)
    progress.say(f"{step}: mmdebstrap {time.monotonic() - t0:.0f} s")
    _configure(rootdir, pubkey)
    boot = out / "boot"
    boot.mkdir()
    # The kernel itself boots from the lab's kernel folder (the same package; on x86
    # its extracted vmlinux boots faster); the initrd is the one the image made.
    for k in kpkgs.values():
        src = rootdir / "boot" / f"initrd.img-{k['kver']}"
        if not src.exists():
            raise LabError(step, f"the image has no /boot/initrd.img-{k['kver']}")
        shutil.copyfile(src, boot / f"initrd.img-{k['kver']}")
    used = int(subprocess.run(["du", "-sm", str(rootdir)], capture_output=True, text=True).stdout.split()[0])
    img = out / "root.img"
    p = subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", "pyvfio-root", "-E", "root_owner=0:0",
                        "-d", str(rootdir), str(img), f"{used + SPARE_MB}M"], capture_output=True, text=True)
    if p.returncode != 0:
        raise LabError(step, "mke2fs -d failed", p.stderr.strip()[-800:])
    shutil.rmtree(rootdir)
    return {"arch": arch, "kernels": kpkgs, "packages": names, "user": USER,
            "seconds": round(time.monotonic() - t0, 1)}


def _foreign_ready(debarch):
    """ppc64el's maintainer scripts run under qemu-user: binfmt_misc must be mounted
    and qemu-ppc64le registered (qemu-user-static + binfmt-support)."""
    _tool("qemu-ppc64le-static", "qemu-user-static")
    misc = pathlib.Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "status").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(misc)], capture_output=True)
    if not (misc / "qemu-ppc64le").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-ppc64le"], capture_output=True)
    if not (misc / "qemu-ppc64le").exists():
        raise LabUnavailable("machine image", "qemu-ppc64le is not registered with binfmt_misc",
                             hint="install qemu-user-static and binfmt-support (tools/setup --lab), as root")


def _write(path, text, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _configure(root, pubkey):
    """What makes the install a reachable lab machine: the management NIC (virtio-net,
    never a test card model) on QEMU's user network, root and `lab` with the cache's
    key, vfio device nodes for group vfio, and nothing that waits at boot."""
    _write(root / "etc/hostname", "pyvfio-machine\n")
    _write(root / "etc/hosts", "127.0.0.1 localhost\n127.0.1.1 pyvfio-machine\n")
    # Static address on slirp's network (no DHCP wait); only the virtio NIC is managed,
    # the test cards' interfaces stay as their drivers leave them.
    _write(root / "etc/systemd/network/10-mgmt.network",
           "[Match]\nDriver=virtio_net\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n"
           "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
    _write(root / "etc/ssh/sshd_config.d/pyvfio-lab.conf",
           "PasswordAuthentication no\nUseDNS no\nPermitRootLogin prohibit-password\n")
    # What an admin sets up for users in group vfio (docs/usage.md "On your lab machines").
    _write(root / "etc/udev/rules.d/60-vfio.rules", 'SUBSYSTEM=="vfio", GROUP="vfio", MODE="0660"\n')
    _write(root / "etc/fstab", "LABEL=pyvfio-root / ext4 defaults 0 0\n")
    for cmd in (["groupadd", "-f", "vfio"], ["useradd", "-m", "-s", "/bin/bash", "-G", "vfio", USER]):
        p = subprocess.run(["chroot", str(root), *cmd], capture_output=True, text=True)
        if p.returncode != 0:
            raise LabError("machine image", f"{' '.join(cmd)} failed", p.stderr.strip())
    for home, owner in (("root", "0:0"), (f"home/{USER}", None)):
        ssh = root / home / ".ssh"
        _write(ssh / "authorized_keys", pubkey.strip() + "\n", 0o600)
        ssh.chmod(0o700)
        if owner is None:
            uid = gid = _uid(root, USER)
            for p in (ssh, ssh / "authorized_keys"):
                os.chown(p, uid, gid)
    systemctl = ["systemctl", f"--root={root}"]
    subprocess.run(systemctl + ["enable", "systemd-networkd.service", "ssh.service"], capture_output=True)
    # Nothing that waits or works in the background of a 2-core TCG host.
    subprocess.run(systemctl + ["mask", "systemd-networkd-wait-online.service", "apt-daily.timer",
                                "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
                                "man-db.timer", "dpkg-db-backup.timer", "systemd-timesyncd.service",
                                "e2scrub_reap.service", "getty@tty1.service"], capture_output=True)


def _uid(root, user):
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2])
    raise LabError("machine image", f"no user {user} in the image")
