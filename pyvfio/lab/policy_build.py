"""Build tools/policy (the masking-policy module) for a lab guest's kernel with
Kbuild (kbuild.py: Debian's linux-headers, cross for ppc64el)."""
import hashlib
import pathlib
import shutil
import tempfile

from ..checkout import CHECKOUT
from . import cache, kbuild

SOURCE = CHECKOUT / "tools" / "policy"


def build_module(kdir, arch, outdir):
    """Run Kbuild on a copy of tools/policy; returns the .ko path."""
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "policy"
        shutil.copytree(SOURCE, src, ignore=shutil.ignore_patterns("*.o", "*.ko", ".*", "*.mod*"))
        kbuild.make(kdir, arch, src, "policy module")
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
        kdir = kbuild.headers(cfg, cache_root, kver)
        build_module(kdir, cfg.arch, out)
        return {"kver": kver}

    folder = cache.ensure(pathlib.Path(cache_root) / f"policy-{kver}-{key}", step, build,
                          hashed=("pyvfio_policy.ko",))
    return folder / "pyvfio_policy.ko"
