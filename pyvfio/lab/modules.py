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
