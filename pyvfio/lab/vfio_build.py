"""vfio-pci from the kernel's own source, rebuilt for a lab guest (`--vfio`).

Variants:
    shipped              the distribution's modules, untouched (no build)
    prefix               the code before the fix: 8b9f128947dd (patches/) reversed
    patch:FILE           FILE, a unified diff against drivers/vfio/ (-p1, a/ b/ paths),
                         applied to the source as shipped
    prefix+patch:FILE    FILE applied to the prefix (e.g. a fix of one's own)

The source is Debian's `linux-source-SERIES` at the version of the guest's kernel
package (the same upload the headers come from); only drivers/vfio/ is unpacked
from it.  drivers/vfio/pci is then built out of tree with Kbuild (kbuild.py)
through a Kbuild file that includes the kernel's own Makefile and drops its
subdirectories (the vendor variant drivers): vfio-pci-core.ko, and vfio-pci.ko,
which imports vfio-pci-core's symbols with their CRCs, so the two must come from
one build.  Debian's kernels load unsigned modules (taint E, O: out of tree).
The build carries a srcversion (the shipped modules have none), which the guest
reads back from /sys/module/vfio_pci_core: the module loaded is the one built.

On a kernel whose shipped vfio-pci lacks the fix (x86 6.1) `prefix` is the
shipped module.  Cached per kernel, source version, variant and patch hash.
"""
import dataclasses
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import tarfile
import tempfile

from .. import unlazy_fix
from ..errors import UsageError
from . import cache, kbuild
from .apt import Apt
from .errors import LabError

FIX = pathlib.Path(__file__).with_name("patches") / "8b9f128947dd.patch"
BASES = ("shipped", "prefix")
# Keep the kernel's object lists (and its CONFIG_ conditions), drop subdirectories.
KBUILD = "include $(src)/Makefile\nobj-m := $(filter-out %/,$(obj-m))\n"
# What the initramfs calls them (pyvfio/lab/modules.py normalises - to _) and the
# files Kbuild writes.
MODULES = {"vfio_pci_core": "vfio-pci-core.ko", "vfio_pci": "vfio-pci.ko"}
SYNTAX = "use shipped, prefix, patch:FILE or prefix+patch:FILE"


@dataclasses.dataclass(frozen=True)
class Variant:
    base: str                   # "shipped" or "prefix"
    patch: str | None = None    # the user's patch file
    patch_sha: str | None = None

    @property
    def name(self):
        """How reports name it: the base, and the patch by file name and hash."""
        if not self.patch:
            return self.base
        tag = f"patch:{os.path.basename(self.patch)}@{self.patch_sha[:8]}"
        return tag if self.base == "shipped" else f"{self.base}+{tag}"

    @property
    def rebuilt(self):
        return self.base != "shipped" or self.patch is not None


def parse(text, read=True):
    """A Variant from its command-line/scenario spelling; UsageError if bad.  `read`
    False checks the spelling only (no patch file read, no hash)."""
    text = str(text)
    if text.startswith("patch:"):
        base, rest = "shipped", text
    else:
        base, _, rest = text.partition("+")
    if base not in BASES or (rest and not rest.startswith("patch:")):
        raise UsageError(f"unknown vfio-pci variant {text!r}", SYNTAX)
    if not rest:
        return Variant(base)
    path = rest[len("patch:"):]
    if not path:
        raise UsageError(f"vfio-pci variant {text!r} names no patch file", SYNTAX)
    if not read:
        return Variant(base, path)
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the patch {path}: {exc.strerror}") from None
    targets = patched_files(data.decode(errors="replace"))
    if not targets:
        raise UsageError(f"{path} is not a unified diff (no ---/+++ file lines)",
                         "make it with git diff or diff -u, paths a/drivers/vfio/...")
    outside = [t for t in targets if not t.startswith("drivers/vfio/")]
    if outside:
        raise UsageError(f"{path} patches {outside[0]}: only drivers/vfio/ is rebuilt",
                         "a patch for --vfio changes files under drivers/vfio/ (paths a/drivers/vfio/...)")
    return Variant(base, str(pathlib.Path(path).resolve()), hashlib.sha256(data).hexdigest())


def patched_files(text):
    """The files a unified diff changes, with the a/ b/ prefix taken off (-p1)."""
    out = []
    for m in re.finditer(r"^\+\+\+ (\S+)", text, re.M):
        path = m.group(1)
        if path != "/dev/null":
            out.append(path.split("/", 1)[1] if "/" in path else path)
    return out


def apply(tree, patch, reverse=False, what=None):
    """Apply a -p1 patch to tree (a folder holding drivers/vfio).  Returns None, or
    a one-line reason naming the first hunk or file that did not apply."""
    cmd = ["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-r", "-",
           "-d", str(tree), "-i", str(patch)] + (["--reverse"] if reverse else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode == 0:
        return None
    current = None
    for line in (p.stdout + p.stderr).splitlines():
        m = re.match(r"patching file (\S+)", line)
        if m:
            current = m.group(1)
        m = re.match(r"Hunk #(\d+) FAILED at (\d+)", line)
        if m:
            return f"hunk #{m.group(1)} of {current} does not apply (at line {m.group(2)})"
        if "Reversed (or previously applied) patch detected" in line:
            return f"{current or 'a file'}: already applied, or reversed"
        m = re.search(r"can't find file to patch|No file to patch", line)
        if m:
            return f"a file it patches is not in the source ({line.strip()})"
        if re.search(r"malformed patch|Only garbage", line):
            return line.strip()
    return (p.stdout + p.stderr).strip().splitlines()[-1] if (p.stdout + p.stderr).strip() else \
        f"patch exited {p.returncode}"


def source(cfg, cache_root, kernel_info):
    """(folder holding drivers/vfio, version) of linux-source for the guest's kernel."""
    pkg = kernel_info["package"]
    apt = Apt(cache_root, cfg.spec["debarch"], archives="archives-kernel")
    apt.update()
    version = apt.version(pkg)
    series = re.match(r"\d+\.\d+", kernel_info["kver"]).group(0)
    name = f"linux-source-{series}"
    step = f"{name} {version} (drivers/vfio)"

    def build(out):
        src = Apt(cache_root, "amd64", archives="archives-source")   # Architecture: all
        src.update()
        deb = src.download([f"{name}={version}"], step)[0]
        n = _unpack_vfio(deb, out, step)
        return {"package": name, "version": version, "files": n}

    folder = cache.ensure(pathlib.Path(cache_root) / f"source-{version}-vfio", step, build)
    return folder, version


def _unpack_vfio(deb, out, step):
    """drivers/vfio/ out of the package's linux-source-X.tar.xz, streamed (never the
    1.5 GB tree): a directory's members are contiguous, so stop after it."""
    feed = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    n = 0
    try:
        with tarfile.open(fileobj=feed.stdout, mode="r|") as outer:
            for member in outer:
                if not member.name.endswith(".tar.xz"):
                    continue
                with tarfile.open(fileobj=outer.extractfile(member), mode="r|xz") as inner:
                    for m in inner:
                        parts = m.name.split("/")[1:]          # linux-source-X.Y/...
                        if parts[:2] != ["drivers", "vfio"]:
                            if n:
                                break
                            continue
                        if m.isfile() or m.isdir():
                            m.name = "/".join(parts)
                            inner.extract(m, out, filter="data")
                            n += m.isfile()
                break
    finally:
        feed.kill()
        feed.wait()
    if not n:
        raise LabError(step, f"{pathlib.Path(deb).name} has no drivers/vfio")
    return n


def _key(variant, patch_bytes):
    h = hashlib.sha256(variant.base.encode() + FIX.read_bytes() + KBUILD.encode() + patch_bytes)
    return h.hexdigest()[:12]


def prepare(cfg, cache_root, kernel_info):
    """The run's vfio-pci modules: None for the shipped ones, else
    {"variant", "modules": {name: path}, "info": {...}}."""
    variant = parse(cfg.vfio)
    if not variant.rebuilt:
        return None
    if variant.base == "prefix" and not variant.patch and not kernel_info["unlazy_fix"]:
        return {"variant": variant.name, "modules": {},
                "info": {"rebuilt": False, "why": f"{kernel_info['kver']}'s vfio-pci lacks 8b9f128947dd: "
                                                  "the shipped module is the prefix"}}
    kver = kernel_info["kver"]
    patch_bytes = pathlib.Path(variant.patch).read_bytes() if variant.patch else b""
    step = f"vfio-pci {variant.name} for {kver}"

    def build(out):
        tree, version = source(cfg, cache_root, kernel_info)
        kdir = kbuild.headers(cfg, cache_root, kver)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            shutil.copytree(tree / "drivers", tmp / "drivers")
            if variant.base == "prefix" and kernel_info["unlazy_fix"]:
                why = apply(tmp, FIX, reverse=True)
                if why:
                    raise LabError(step, f"8b9f128947dd does not revert on linux-source {version}: {why}")
            if variant.patch:
                why = apply(tmp, variant.patch)
                if why:
                    raise UsageError(f"{os.path.basename(variant.patch)} does not apply to "
                                     f"linux-source {version}: {why}")
            mdir = tmp / "drivers/vfio/pci"
            (mdir / "Kbuild").write_text(KBUILD)
            try:
                # a srcversion (modpost -a) names the build in /sys/module/*/srcversion
                kbuild.make(kdir, cfg.arch, mdir, step, relative_to=tmp,
                            extra=["CONFIG_MODULE_SRCVERSION_ALL=y"])
            except kbuild.KbuildError as exc:
                if variant.patch:
                    raise UsageError(f"{os.path.basename(variant.patch)} does not build on "
                                     f"linux-source {version}: {exc.first}") from None
                raise
            info = {"rebuilt": True, "variant": variant.name, "source": version, "kver": kver,
                    "patch": variant.patch, "patch_sha256": variant.patch_sha}
            for name, built in MODULES.items():
                shutil.copyfile(mdir / built, out / f"{name}.ko")
            elf = (out / "vfio_pci_core.ko").read_bytes()
            info["srcversion"] = unlazy_fix.modinfo(elf).get("srcversion")
            info["unlazy_fix"] = unlazy_fix.SYMBOL in unlazy_fix.undefined_symbols(elf)
            return info

    folder = cache.ensure(pathlib.Path(cache_root) / f"vfio-{kver}-{variant.base}"
                          f"{'+patch' if variant.patch else ''}-{_key(variant, patch_bytes)}",
                          step, build, hashed=tuple(f"{n}.ko" for n in MODULES))
    return {"variant": variant.name, "modules": {n: folder / f"{n}.ko" for n in MODULES},
            "info": cache.info(folder)}

