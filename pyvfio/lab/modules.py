"""Kernel modules out of a Debian linux-image package: find them by name, read
their dependencies from .modinfo (so no depmod is needed), decompress .ko.xz, and
order a closure so that busybox insmod can load it front to back."""
import lzma
import os
import pathlib
import re


def _norm(name):
    return name.replace("-", "_")


def index(moddir):
    """{module name: path} for every .ko / .ko.xz / .ko.zst under moddir."""
    found = {}
    for dirpath, _dirs, names in os.walk(moddir):
        for n in names:
            m = re.fullmatch(r"(.+)\.ko(\.xz)?", n)
            if m:
                found[_norm(m.group(1))] = pathlib.Path(dirpath) / n
    return found


def builtin(moddir):
    f = pathlib.Path(moddir) / "modules.builtin"
    if not f.exists():
        return set()
    return {_norm(pathlib.Path(line.strip()).name.removesuffix(".ko"))
            for line in f.read_text().splitlines() if line.strip()}


def read(path):
    data = pathlib.Path(path).read_bytes()
    if str(path).endswith(".xz"):
        data = lzma.decompress(data)
    return data


def depends(ko_bytes):
    m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", ko_bytes)
    if not m or not m.group(1):
        return []
    return [_norm(d) for d in m.group(1).decode().split(",") if d]


def closure(wanted, idx, builtins):
    """Modules to load, dependencies first.  Raises KeyError naming a missing one."""
    order, seen, blobs = [], set(), {}

    def visit(name):
        name = _norm(name)
        if name in seen or name in builtins:
            return
        seen.add(name)
        if name not in idx:
            raise KeyError(name)
        blobs[name] = read(idx[name])
        for dep in depends(blobs[name]):
            visit(dep)
        order.append(name)

    for w in wanted:
        visit(w)
    return order, blobs


def prepare_host_drivers(cfg, cache_root, kernel_info):
    """The modules of the guest drivers the run's host cards stay on (e1000.ko and
    what it needs beyond the boot modules).  Returns the .ko paths in load order."""
    from .config import HOST_DRIVERS

    names = sorted({HOST_DRIVERS[c] for c in cfg.host_cards})
    return prepare_run_modules(cfg, cache_root, kernel_info, names, "host-card drivers",
                               "hostdrivers")


def prepare_kvm(cfg, cache_root, kernel_info):
    """KVM for the in-guest KVM tests (x86_64: kvm_amd, which loads under TCG's
    `-cpu max` because QEMU emulates SVM; lab/qemu.py).  Returns the .ko paths."""
    if cfg.kernel.endswith("-rt"):
        # arch/x86/kvm/x86.c refuses PREEMPT_RT without a constant TSC ("RT requires
        # X86_FEATURE_CONSTANT_TSC"), and TCG's CPU has none: no /dev/kvm on 6.12-rt
        return []
    names = cfg.spec.get("kvm_modules", [])
    return prepare_run_modules(cfg, cache_root, kernel_info, names, "KVM modules", "kvm")


def prepare_run_modules(cfg, cache_root, kernel_info, names, what, prefix):
    """Modules beyond the boot ones (`names` and what they need), out of the
    kernel's package: a cache folder per kernel and module set.  They travel in the
    run share, so the initramfs stays per (arch, kernel).  Returns the .ko paths in
    load order."""
    from . import cache, debs
    from .apt import Apt
    from .errors import LabError
    import tempfile

    if not names:
        return []
    kver, pkg = kernel_info["kver"], kernel_info["package"]
    step = f"{what} ({', '.join(names)}) for {kver}"

    def build(out):
        apt = Apt(cache_root, cfg.spec["debarch"], archives="archives-kernel")
        apt.update()
        deb = apt.download([pkg], step)[0]
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            debs.unpack(deb, tmp, step)
            moddir = pathlib.Path(tmp) / "lib/modules" / kver
            try:
                order, blobs = closure(names, index(moddir), builtin(moddir))
            except KeyError as exc:
                raise LabError(step, f"module {exc.args[0]} is neither built in nor in {pkg}")
        order = [m for m in order if m not in kernel_info["modules"]]
        for name in order:
            (out / f"{name}.ko").write_bytes(blobs[name])
        return {"modules": order}

    folder = cache.ensure(pathlib.Path(cache_root) / f"{prefix}-{kver}-{'-'.join(names)}", step,
                          build, hashed=tuple(f"{n}.ko" for n in names))
    return [folder / f"{n}.ko" for n in cache.info(folder)["modules"]]
