"""A Debian kernel for a lab guest: vmlinux plus the few modules the lab loads."""
import pathlib
import tempfile

from .. import unlazy_fix
from . import cache, debs, modules, vmlinux
from .apt import Apt
from .errors import LabError


def _fetch_image(apt, regex, step):
    apt.update()
    names = apt.names(regex)
    if not names:
        raise LabError(step, f"no package matches {regex} in Debian's indexes")
    name = names[-1]
    try:
        return name, apt.download([name], step)[0]
    except LabError:
        # The mirror moved on since our lists were fetched: refresh and retry once.
        apt.update(force=True)
        name = apt.names(regex)[-1]
        return name, apt.download([name], step)[0]


def prepare(cfg, cache_root):
    arch, series = cfg.arch, cfg.kernel
    step = f"{arch} {series} kernel"

    def build(out):
        apt = Apt(cache_root, cfg.spec["debarch"], archives="archives-kernel")
        pkg, deb = _fetch_image(apt, cfg.spec["kernels"][series], step)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp = pathlib.Path(tmp)
            debs.unpack(deb, tmp, step)
            moddirs = sorted((tmp / "lib/modules").iterdir())
            if not moddirs:
                raise LabError(step, f"{pkg} has no /lib/modules")
            kver = moddirs[-1].name
            boot = tmp / "boot"
            if arch == "x86_64":
                elf = vmlinux.extract((boot / f"vmlinuz-{kver}").read_bytes())
                if elf is None:
                    raise LabError(step, f"no vmlinux payload found in vmlinuz-{kver}")
                (out / "vmlinux").write_bytes(elf)
            else:
                (out / "vmlinux").write_bytes((boot / f"vmlinux-{kver}").read_bytes())
            idx = modules.index(moddirs[-1])
            try:
                order, blobs = modules.closure(cfg.spec["modules"], idx,
                                               modules.builtin(moddirs[-1]))
            except KeyError as exc:
                raise LabError(step, f"module {exc.args[0]} is neither built in nor in {pkg}")
            (out / "modules").mkdir()
            for name in order:
                (out / "modules" / f"{name}.ko").write_bytes(blobs[name])
            core = blobs.get("vfio_pci_core") or b""
        return {"package": pkg, "kver": kver, "modules": order,
                "unlazy_fix": unlazy_fix.elf_imports(core)}

    folder = cache.ensure(pathlib.Path(cache_root) / f"kernel-{arch}-{series}", step, build,
                          hashed=("vmlinux",))
    return folder, cache.info(folder)
