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

`--iommufd` (x86_64 6.12: Debian builds it with CONFIG_IOMMUFD unset) rebuilds,
with any variant, iommufd.ko (drivers/iommu/iommufd, CONFIG_IOMMUFD=m) and the
whole of vfio against that configuration: vfio.ko with the device cdev
(CONFIG_VFIO_DEVICE_CDEV=y) and its iommufd glue, and, since CONFIG_IOMMUFD adds
members to struct vfio_device (include/linux/vfio.h) and changes the CRCs of
vfio's exports, vfio_iommu_type1, vfio-pci-core and vfio-pci from the same build.
The container stays (CONFIG_VFIO_CONTAINER=y, as shipped).  The headers'
autoconf.h knows nothing of either option, so they are set twice: on make's
command line for the Makefiles' object lists, as -D for the C.  iommufd needs
interval_tree_span_iter_*() (lib/interval_tree.c under
CONFIG_INTERVAL_TREE_SPAN_ITER, which Debian's vmlinux lacks: Module.symvers has
no such export), so that part of lib/interval_tree.c is compiled into iommufd.ko,
unexported.  Every other symbol it takes from the kernel is exported (the iommu
core's under the IOMMUFD_INTERNAL namespace, drivers/iommu/iommu.c).  POWER has
none of this: drivers/vfio/Kconfig makes VFIO_DEVICE_CDEV depend on
!SPAPR_TCE_IOMMU, and spapr_tce_iommu_ops (arch/powerpc/kernel/iommu.c) offers no
paging domain for an IOAS.
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
# --iommufd: every module of the build, by name, and where Kbuild writes it (in
# load order: vfio takes iommufd's exports, the rest vfio's).
IOMMUFD_MODULES = {"iommufd": "drivers/iommu/iommufd/iommufd.ko", "vfio": "drivers/vfio/vfio.ko",
                   "vfio_iommu_type1": "drivers/vfio/vfio_iommu_type1.ko",
                   "vfio_pci_core": "drivers/vfio/pci/vfio-pci-core.ko",
                   "vfio_pci": "drivers/vfio/pci/vfio-pci.ko"}
IOMMUFD_CONFIG = ["CONFIG_IOMMUFD=m", "CONFIG_VFIO_DEVICE_CDEV=y",
                  "KCFLAGS=-DCONFIG_IOMMUFD_MODULE=1 -DCONFIG_VFIO_DEVICE_CDEV=1"]
# The Kbuild files of the --iommufd build: the top level descends into both drivers;
# drivers/vfio keeps its own objects and pci/ (not mdev/ and the other buses).
IOMMUFD_KBUILD = {
    "Kbuild": "obj-m += drivers/iommu/iommufd/ drivers/vfio/\n",
    "drivers/iommu/iommufd/Kbuild": "include $(src)/Makefile\niommufd-y += span_iter.o\n",
    "drivers/vfio/Kbuild": "include $(src)/Makefile\nobj-m := $(filter-out %/,$(obj-m)) pci/\n",
}
# What is unpacked from linux-source (a directory ends in /): vfio, and for --iommufd
# the iommufd driver, the iommu core's private header it includes and lib/interval_tree.c.
SOURCE_PATHS = ("drivers/iommu/iommu-priv.h", "drivers/iommu/iommufd/", "drivers/vfio/",
                "lib/interval_tree.c")
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
    from ..inputs import read_bytes
    data = read_bytes(path, "the patch")
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
    """(folder holding SOURCE_PATHS, version) of linux-source for the guest's kernel."""
    pkg = kernel_info["package"]
    apt = Apt(cache_root, cfg.spec["debarch"], archives="archives-kernel")
    apt.update()
    version = apt.version(pkg)
    series = re.match(r"\d+\.\d+", kernel_info["kver"]).group(0)
    name = f"linux-source-{series}"
    step = f"{name} {version} (drivers/vfio, drivers/iommu/iommufd)"

    def build(out):
        src = Apt(cache_root, "amd64", archives="archives-source")   # Architecture: all
        src.update()
        deb = src.download([f"{name}={version}"], step)[0]
        n = _unpack(deb, out, step)
        return {"package": name, "version": version, "files": n, "paths": list(SOURCE_PATHS)}

    folder = cache.ensure(pathlib.Path(cache_root) / f"source-{version}-vfio-iommufd", step, build)
    return folder, version


def _unpack(deb, out, step, paths=SOURCE_PATHS):
    """`paths` out of the package's linux-source-X.tar.xz, streamed (never the
    1.5 GB tree): a directory's members are contiguous, so stop once past the last."""
    feed = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    n, seen, left = 0, set(), set()
    try:
        with tarfile.open(fileobj=feed.stdout, mode="r|") as outer:
            for member in outer:
                if not member.name.endswith(".tar.xz"):
                    continue
                with tarfile.open(fileobj=outer.extractfile(member), mode="r|xz") as inner:
                    for m in inner:
                        rel = m.name.split("/", 1)[1] if "/" in m.name else ""   # linux-source-X.Y/...
                        want = next((p for p in paths
                                     if rel == p.rstrip("/") or (p.endswith("/") and rel.startswith(p))), None)
                        if want is None:
                            left |= seen
                            if left == set(paths):
                                break
                            continue
                        seen.add(want)
                        if m.isfile() or m.isdir():
                            m.name = rel
                            inner.extract(m, out, filter="data")
                            n += m.isfile()
                break
    finally:
        feed.kill()
        feed.wait()
    missing = [p for p in paths if p not in seen]
    if missing:
        raise LabError(step, f"{pathlib.Path(deb).name} has no {missing[0]}")
    return n


def _span_iter(tree):
    """lib/interval_tree.c's CONFIG_INTERVAL_TREE_SPAN_ITER part, unexported, as a
    file of iommufd.ko (the kernel it loads into was built without it)."""
    text = (tree / "lib/interval_tree.c").read_text()
    start = text.index("#ifdef CONFIG_INTERVAL_TREE_SPAN_ITER")
    body = text[text.index("\n", start) + 1:text.rindex("#endif")]
    body = re.sub(r"^EXPORT_SYMBOL_GPL\(\w+\);\n", "", body, flags=re.M)
    return ("// lib/interval_tree.c's span iterator (CONFIG_INTERVAL_TREE_SPAN_ITER), for iommufd.ko\n"
            "#include <linux/interval_tree.h>\n" + body)


def _key(variant, patch_bytes, iommufd=False):
    h = hashlib.sha256(variant.base.encode() + FIX.read_bytes() + KBUILD.encode() + patch_bytes)
    if iommufd:
        h.update(repr((IOMMUFD_MODULES, IOMMUFD_CONFIG, IOMMUFD_KBUILD)).encode())
    return h.hexdigest()[:12]


def iommufd_refusal(cfg):
    """Why `--iommufd` cannot be built for this lab configuration, or None."""
    if cfg.arch != "x86_64":
        return ("--iommufd: no vfio device cdev on POWER (drivers/vfio/Kconfig: VFIO_DEVICE_CDEV "
                "depends on !SPAPR_TCE_IOMMU; spapr_tce_iommu_ops has no paging domain)")
    if not cfg.kernel.startswith("6.12"):
        return f"--iommufd: kernel {cfg.kernel} has no iommufd (it came in 6.2, vfio's device cdev in 6.6)"
    return None


def prepare(cfg, cache_root, kernel_info):
    """The run's vfio-pci modules: None for the shipped ones, else
    {"variant", "modules": {name: path}, "info": {...}}."""
    variant = parse(cfg.vfio)
    iommufd = cfg.iommufd
    if not variant.rebuilt and not iommufd:
        return None
    if variant.base == "prefix" and not variant.patch and not kernel_info["unlazy_fix"] and not iommufd:
        return {"variant": variant.name, "modules": {},
                "info": {"rebuilt": False, "why": f"{kernel_info['kver']}'s vfio-pci lacks 8b9f128947dd: "
                                                  "the shipped module is the prefix"}}
    kver = kernel_info["kver"]
    patch_bytes = pathlib.Path(variant.patch).read_bytes() if variant.patch else b""
    name = variant.name + ("+iommufd" if iommufd else "")
    modules = IOMMUFD_MODULES if iommufd else {n: f"drivers/vfio/pci/{f}" for n, f in MODULES.items()}
    step = f"vfio-pci {name} for {kver}"

    def build(out):
        tree, version = source(cfg, cache_root, kernel_info)
        kdir = kbuild.headers(cfg, cache_root, kver)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            shutil.copytree(tree / "drivers", tmp / "drivers")
            shutil.copytree(tree / "lib", tmp / "lib")
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
            extra = ["CONFIG_MODULE_SRCVERSION_ALL=y"]
            if iommufd:
                for rel, text in IOMMUFD_KBUILD.items():
                    (tmp / rel).write_text(text)
                (tmp / "drivers/iommu/iommufd/span_iter.c").write_text(_span_iter(tmp))
                mdir, extra = tmp, extra + IOMMUFD_CONFIG
            try:
                # a srcversion (modpost -a) names the build in /sys/module/*/srcversion
                kbuild.make(kdir, cfg.arch, mdir, step, relative_to=tmp, extra=extra)
            except kbuild.KbuildError as exc:
                if variant.patch:
                    raise UsageError(f"{os.path.basename(variant.patch)} does not build on "
                                     f"linux-source {version}: {exc.first}") from None
                raise
            info = {"rebuilt": True, "variant": name, "source": version, "kver": kver,
                    "patch": variant.patch, "patch_sha256": variant.patch_sha, "iommufd": iommufd,
                    "modules": list(modules)}
            for mod, built in modules.items():
                shutil.copyfile(tmp / built, out / f"{mod}.ko")
            elf = (out / "vfio_pci_core.ko").read_bytes()
            info["srcversion"] = unlazy_fix.modinfo(elf).get("srcversion")
            info["unlazy_fix"] = unlazy_fix.SYMBOL in unlazy_fix.undefined_symbols(elf)
            return info

    folder = cache.ensure(pathlib.Path(cache_root) / f"vfio-{kver}-{variant.base}"
                          f"{'+patch' if variant.patch else ''}{'+iommufd' if iommufd else ''}"
                          f"-{_key(variant, patch_bytes, iommufd)}",
                          step, build, hashed=tuple(f"{n}.ko" for n in modules))
    return {"variant": name, "modules": {n: folder / f"{n}.ko" for n in modules},
            "info": cache.info(folder)}

