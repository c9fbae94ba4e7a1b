"""The guest's initramfs: a static busybox, the kernel's lab modules, and
init.sh.  It is per (arch, kernel) and knows nothing of a particular run: the run's
settings arrive over the 9p run share (see init.sh)."""
import os
import pathlib
import shutil
import tempfile
import time

from . import cache, cpio, debs
from .apt import Apt

INIT = pathlib.Path(__file__).with_name("init.sh")
STALE = 24 * 3600   # seconds unused before another key's initramfs is removed


def _busybox(cache_root, debarch):
    def build(out):
        apt = Apt(cache_root, debarch, archives="archives-busybox")
        apt.update()
        deb = apt.download(["busybox-static"], f"busybox-static ({debarch})")[0]
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            debs.unpack(deb, tmp, "busybox-static")
            (out / "busybox").write_bytes((pathlib.Path(tmp) / "bin/busybox").read_bytes())
    folder = cache.ensure(pathlib.Path(cache_root) / f"busybox-{debarch}",
                          f"busybox-static ({debarch})", build, hashed=("busybox",))
    return folder / "busybox"


def prepare(cfg, cache_root, kernel_dir, kernel_info):
    step = f"{cfg.arch} {cfg.kernel} initramfs"
    busybox = _busybox(cache_root, cfg.spec["debarch"])
    # The init script is part of the key: editing it must rebuild the initramfs.
    import hashlib
    key = hashlib.sha256(INIT.read_bytes() + busybox.read_bytes()
                         + kernel_info["kver"].encode()).hexdigest()[:12]

    def build(out):
        w = cpio.Writer()
        for d in ("bin", "sbin", "dev", "proc", "sys", "newroot", "labrun", "modules", "tmp"):
            w.dir(d)
        w.file("bin/busybox", busybox.read_bytes(), 0o755)
        w.symlink("bin/sh", "busybox")
        w.file("init", INIT.read_bytes(), 0o755)
        order = kernel_info["modules"]
        for name in order:
            w.file(f"modules/{name}.ko", (kernel_dir / "modules" / f"{name}.ko").read_bytes())
        w.file("modules/order", ("\n".join(order) + "\n").encode())
        (out / "initramfs.cpio").write_bytes(w.finish())
        return {"key": key}

    folder = pathlib.Path(cache_root) / f"initramfs-{cfg.arch}-{cfg.kernel}-{key}"
    folder = cache.ensure(folder, step, build, hashed=("initramfs.cpio",))
    # Several checkouts may share one cache, each with its own init.sh: an other
    # key's initramfs is removed only once unused for a day (each use touches it),
    # never under a VM that is about to boot it.
    os.utime(folder)
    for old in folder.parent.glob(f"initramfs-{cfg.arch}-{cfg.kernel}-*"):
        if old != folder and ".tmp" not in old.name and time.time() - old.stat().st_mtime > STALE:
            shutil.rmtree(old, ignore_errors=True)
    return folder / "initramfs.cpio"
