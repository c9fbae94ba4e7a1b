"""Build tools/policy (the masking-policy module) for a lab guest's kernel with
Kbuild, against Debian's linux-headers for that kernel plus linux-kbuild for the
host's architecture (cross-compiled for ppc64el).  Nothing is installed: the
packages are unpacked into the cache and the headers' Makefile, which names the
-common headers by absolute path, is pointed at the unpacked copy."""
import hashlib
import pathlib
import re
import shutil
import subprocess
import tempfile

from . import cache, debs
from .apt import Apt
from .errors import LabError

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "tools" / "policy"


def _packages(kver):
    """(headers, common, kbuild) package names for a Debian kernel release."""
    m = re.fullmatch(r"(6\.1\.0-\d+|6\.12\.\d+\+deb12)-(amd64|powerpc64le)", kver)
    if not m:
        raise LabError("policy module", f"cannot name the headers packages of kernel {kver}")
    base = m.group(1)
    kbuild = "linux-kbuild-6.1" if base.startswith("6.1.0") else f"linux-kbuild-{base}"
    return f"linux-headers-{kver}", f"linux-headers-{base}-common", kbuild


def _headers(cfg, cache_root, kver):
    step = f"linux-headers {kver}"
    headers, common, kbuild = _packages(kver)

    def build(out):
        target = Apt(cache_root, cfg.spec["debarch"], archives="archives-headers")
        target.update()
        host = Apt(cache_root, "amd64", archives="archives-headers")
        host.update()
        try:
            found = target.download([headers, common], step) + host.download([kbuild], step)
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
        return {"packages": [headers, common, kbuild]}

    folder = cache.ensure(pathlib.Path(cache_root) / f"headers-{kver}", step, build)
    return folder / "usr/src" / f"linux-headers-{kver}"


def build_module(kdir, arch, outdir):
    """Run Kbuild on a copy of tools/policy; returns the .ko path."""
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "policy"
        shutil.copytree(SOURCE, src, ignore=shutil.ignore_patterns("*.o", "*.ko", ".*", "*.mod*"))
        cmd = ["make", "-C", str(kdir), f"M={src}", "modules",
               # No pahole here: skip BTF for the module.
               "CONFIG_DEBUG_INFO_BTF_MODULES="]
        if arch == "ppc64le":
            cmd += ["ARCH=powerpc", "CROSS_COMPILE=powerpc64le-linux-gnu-"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise LabError("policy module", "Kbuild failed", (p.stdout + p.stderr)[-2000:])
        ko = pathlib.Path(outdir) / "pyvfio_policy.ko"
        shutil.copyfile(src / "pyvfio_policy.ko", ko)
        return ko


def prepare(cfg, cache_root, kernel_info):
    kver = kernel_info["kver"]
    h = hashlib.sha256()
    for f in sorted(SOURCE.iterdir()):
        if f.name in ("Kbuild", "Makefile") or f.suffix in (".c", ".h"):
            h.update(f.name.encode() + f.read_bytes())
    key = h.hexdigest()[:12]
    step = f"policy module for {kver}"

    def build(out):
        kdir = _headers(cfg, cache_root, kver)
        build_module(kdir, cfg.arch, out)
        return {"kver": kver}

    folder = cache.ensure(pathlib.Path(cache_root) / f"policy-{kver}-{key}", step, build,
                          hashed=("pyvfio_policy.ko",))
    return folder / "pyvfio_policy.ko"
