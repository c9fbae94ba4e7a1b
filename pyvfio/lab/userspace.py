"""The ppc64le guest's userspace: Python 3.11 with cffi's backend, psutil and
pytest from Debian ppc64el packages, unpacked (never installed) into a folder that
the guest mounts read-only over 9p.  The host's x86 Python cannot run on POWER;
pyvfio itself comes from the checkout, its extension cross-built (crossbuild.py)."""
import hashlib
import json
import shutil
import pathlib
import subprocess
import sys

from . import cache, debs
from .apt import Apt
from .errors import LabError

PACKAGES = ["python3", "python3-cffi-backend", "python3-psutil", "python3-pytest", "dash",
            "busybox-static",
            # the real lspci (with pci.ids), which tests/lab/test_lspci_habits.py compares
            # list/info with: busybox's applet knows no -vv, -nn or -t
            "pciutils"]
# Shell tools for commands run in the guest, from busybox (no coreutils: smaller).
APPLETS = """cat ls uname grep egrep sed awk head tail dmesg ps sleep env find xargs wc cut tr
sort uniq mkdir rmdir rm cp mv ln readlink realpath dd od hexdump xxd lspci mount umount
true false printf echo test [ id date stat chmod touch basename dirname free kill tee which
seq expr timeout nproc lsmod insmod rmmod modprobe sync""".split()
# Mount points the guest needs; the root is read-only in the guest.
DIRS = ["proc", "sys", "dev", "tmp", "run", "lab"]


def _ioctl_opt_source():
    """pyvfio's one pure-Python dependency missing from Debian: copied from the host."""
    import ioctl_opt

    return pathlib.Path(ioctl_opt.__file__)


def prepare(cache_root):
    step = "ppc64el userspace"

    def build(out):
        apt = Apt(cache_root, "ppc64el", archives="archives-root")
        apt.update()
        for deb in apt.download_closure(PACKAGES, step):
            debs.unpack(deb, out, step)
        for d in DIRS:
            (out / d).mkdir(exist_ok=True)
        site = out / "usr/local/lib/python3.11/dist-packages"
        site.mkdir(parents=True, exist_ok=True)
        src = _ioctl_opt_source()
        dest = site / ("ioctl_opt" if src.name == "__init__.py" else src.name)
        if src.name == "__init__.py":
            dest.mkdir()
            dest = dest / "__init__.py"
        dest.write_bytes(src.read_bytes())
        (out / "bin/sh").unlink(missing_ok=True)
        (out / "bin/sh").symlink_to("dash")
        (out / "usr/local/bin").mkdir(parents=True, exist_ok=True)
        for applet in APPLETS:
            if not any((out / d / applet).exists() for d in ("bin", "usr/bin", "sbin", "usr/sbin")):
                (out / "usr/local/bin" / applet).symlink_to("/bin/busybox")
        (out / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        # Debian byte-compiles at install time, which never happens here; without
        # .pyc files every import in the read-only root would parse source.
        p = subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0",
                            str(out / "usr/lib/python3.11"), str(out / "usr/lib/python3"),
                            str(site)], capture_output=True, text=True)
        if p.returncode not in (0, 1):  # 1: some test files in the stdlib do not compile
            raise LabError(step, "byte-compiling the guest's Python failed", p.stderr[-800:])
        return {"packages": PACKAGES,
                "cffi_backend": _cffi_backend_version(out)}

    # The recipe is the key: a changed package list gets a new root.
    recipe = json.dumps([PACKAGES, APPLETS, DIRS, _ioctl_opt_source().read_text()])
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    folder = cache.ensure(pathlib.Path(cache_root) / f"userspace-ppc64le-{key}", step, build)
    for old in folder.parent.glob("userspace-ppc64le-*"):
        if old != folder and ".tmp" not in old.name:
            shutil.rmtree(old, ignore_errors=True)
    return folder, cache.info(folder)


def _cffi_backend_version(root):
    for p in (root / "usr/share/doc/python3-cffi-backend").glob("changelog.Debian*"):
        import gzip

        head = gzip.decompress(p.read_bytes()).decode().splitlines()[0]
        return head.split("(")[1].split("-")[0]
    return None
