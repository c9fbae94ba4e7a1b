"""Kbuild of out-of-tree modules for a lab guest's kernel, against Debian's
linux-headers for that kernel plus linux-kbuild for the host's architecture
(cross-compiled for ppc64el).  Nothing is installed: the packages are unpacked
into the cache and the headers' Makefile, which names the -common headers by
absolute path, is pointed at the unpacked copy.  Used by the masking-policy
module (policy_build.py) and the rebuilt vfio-pci (vfio_build.py)."""
import pathlib
import re
import subprocess

from . import cache, debs
from .apt import Apt
from .errors import LabError


def packages(kver):
    """(headers, common, kbuild) package names for a Debian kernel release."""
    m = re.fullmatch(r"(6\.1\.0-\d+|6\.12\.\d+\+deb12)-(amd64|rt-amd64|powerpc64le|powerpc64le-64k)", kver)
    if not m:
        raise LabError("kbuild", f"cannot name the headers packages of kernel {kver}")
    base, flavour = m.groups()
    kbuild = "linux-kbuild-6.1" if base.startswith("6.1.0") else f"linux-kbuild-{base}"
    common = f"linux-headers-{base}-common" + ("-rt" if flavour == "rt-amd64" else "")
    return f"linux-headers-{kver}", common, kbuild


def headers(cfg, cache_root, kver):
    """The unpacked linux-headers-KVER folder (Kbuild's -C directory)."""
    step = f"linux-headers {kver}"
    names = packages(kver)
    header, common, kbuild = names

    def build(out):
        target = Apt(cache_root, cfg.spec["debarch"], archives="archives-headers")
        target.update()
        host = Apt(cache_root, "amd64", archives="archives-headers")
        host.update()
        try:
            found = target.download([header, common], step) + host.download([kbuild], step)
        except LabError as exc:
            exc.hint = (f"the mirror may have moved past kernel {kver}: remove the lab cache's "
                        f"kernel-* folders (and apt/) to fetch the newest kernel and its headers")
            raise
        for deb in found:
            debs.unpack(deb, out, step)
        # The arch headers' Makefile includes the -common tree by absolute path;
        # make it relative (Kbuild runs with -C in that folder).
        for mk in (out / "usr/src").glob(f"linux-headers-{kver}/Makefile"):
            mk.write_text(mk.read_text().replace("/usr/src/", "../"))
        return {"packages": list(names)}

    folder = cache.ensure(pathlib.Path(cache_root) / f"headers-{kver}", step, build)
    return folder / "usr/src" / f"linux-headers-{kver}"


class KbuildError(LabError):
    """Kbuild failed; `first` is its first error line."""

    def __init__(self, step, first, detail):
        super().__init__(step, f"Kbuild failed: {first}", detail)
        self.first = first


def make(kdir, arch, mdir, step, relative_to=None, extra=()):
    """`make -C KDIR M=MDIR modules`; a failure is a LabError whose message is the
    compiler's (or modpost's) first error, its paths shown relative to
    `relative_to` (default MDIR)."""
    cmd = ["make", "-C", str(kdir), f"M={mdir}", "modules", "-j2",
           # No pahole here: skip BTF for the modules.
           "CONFIG_DEBUG_INFO_BTF_MODULES="]
    if arch == "ppc64le":
        cmd += ["ARCH=powerpc", "CROSS_COMPILE=powerpc64le-linux-gnu-"]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        out = p.stdout + p.stderr
        raise KbuildError(step, first_error(out, relative_to or mdir), out[-2000:])


def first_error(output, root=None):
    """The first `error:` line of a Kbuild run (the compiler's or modpost's)."""
    lines = output.splitlines()
    line = next((ln for ln in lines if re.search(r"\berror\b:", ln)), None) \
        or next((ln for ln in lines if ln.strip()), "no output")
    if root is not None:
        line = line.replace(f"{root}/", "")
    return line.strip()
