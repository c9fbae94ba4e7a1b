"""Linux's uapi headers of the lab's 6.12 series, for compiling pyvfio's extension
with <linux/iommufd.h> and vfio's device cdev ioctls where the host's own headers
lack them (Debian 12's linux-libc-dev is 6.1: neither).

They are Debian's linux-libc-dev of that series (bookworm-backports: 6.12.95, the
ppc64le lab kernel's upload; the x86_64 6.12 kernel comes from bookworm-security,
whose linux-6.12 builds no linux-libc-dev, and a stable series keeps its uapi),
unpacked into the lab cache through apt.py.  Since 6.x that package is
Architecture: all, with every architecture's asm/ under usr/include/TRIPLET, so
one unpacked copy serves the host build (tools/setup) and the ppc64le cross-build
(crossbuild.py).  They are put in front of the compiler's own with -isystem: the
rest of the system headers (glibc) stay the host's.

`python -m pyvfio.lab.uapi_headers` (tools/setup, before building the extension)
prints the CFLAGS for the host's compiler: nothing when its own headers have
iommufd, else the -isystem flags; when neither is possible it says why on stderr,
in one line, and exits 1 (the extension is then built without iommufd)."""
import os
import pathlib
import shlex
import subprocess
import sys
import sysconfig

from . import cache, debs
from .apt import Apt
from .errors import LabError

SERIES = "6.12"
PACKAGE = "linux-libc-dev"
PROBE = "#include <linux/iommufd.h>\n#include <linux/vfio.h>\nunsigned long n = VFIO_DEVICE_BIND_IOMMUFD;\n"


def prepare(cache_root=None):
    """(usr/include folder, version) of linux-libc-dev SERIES, unpacked in the cache."""
    cache_root = pathlib.Path(cache_root or cache.root())
    apt = Apt(cache_root, "amd64", archives="archives-uapi")     # Architecture: all
    apt.update()
    versions = [v for v in apt.versions(PACKAGE) if v.startswith(SERIES + ".")]
    if not versions:
        raise LabError(f"{PACKAGE} {SERIES}", f"no {PACKAGE} {SERIES}.x in Debian's lists")
    version = versions[0]
    step = f"{PACKAGE} {version} (uapi headers)"

    def build(out):
        deb = apt.download([f"{PACKAGE}={version}"], step)[0]
        debs.unpack(deb, out, step)
        if not (out / "usr/include/linux/iommufd.h").exists():
            raise LabError(step, f"{deb.name} has no linux/iommufd.h")
        return {"package": PACKAGE, "version": version}

    folder = cache.ensure(cache_root / f"uapi-{version}", step, build)
    return folder / "usr/include", version


def cflags(include, triplet):
    """The flags that put these headers (and TRIPLET's asm/) before the compiler's."""
    return ["-isystem", str(include / triplet), "-isystem", str(include)]


def _compiles(cc, flags):
    try:
        return subprocess.run(cc + flags + ["-fsyntax-only", "-x", "c", "-"], input=PROBE, text=True,
                              capture_output=True).returncode == 0
    except OSError:
        return False


def main():
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if _compiles(cc, []):
        return 0            # the host's own headers have it
    try:
        triplet = subprocess.run(cc + ["-dumpmachine"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        include, version = prepare()
    except (OSError, subprocess.CalledProcessError, LabError) as exc:
        print(f"no <linux/iommufd.h>: the host's kernel headers lack it and Debian's {PACKAGE} "
              f"{SERIES} could not be had ({str(exc).splitlines()[0] if str(exc) else exc!r})",
              file=sys.stderr)
        return 1
    flags = cflags(include, triplet)
    if not _compiles(cc, flags):
        print(f"no <linux/iommufd.h>: {PACKAGE} {version}'s headers do not compile with {cc[0]}",
              file=sys.stderr)
        return 1
    print(" ".join(shlex.quote(f) for f in flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
