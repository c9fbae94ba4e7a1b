"""Does the running kernel's vfio-pci carry the unlazy fix, and how do we know?

The fix (upstream 8b9f128947dd, "vfio/pci: Fix INTx handling on legacy non-PCI 2.3
devices", v6.18, backported to stable) makes vfio-pci call
`irq_set_status_flags(irq, IRQ_DISABLE_UNLAZY)` for an INTx line it masks at the
controller.  That helper is a static inline around `irq_modify_status()`, so a
fixed vfio-pci module imports `irq_modify_status` and an unfixed one does not (the
Debian 6.1 build does not; 6.12.95 does).  The module's undefined symbols are the
strongest evidence short of running a probe; the kernel version is the fallback
when the module cannot be read (built in, no /lib/modules, undecompressable).

The module that counts is the one loaded: a rebuilt vfio-pci-core (pyvfio lab
--vfio, or a user's own build) has a srcversion and taint O in /sys/module, and when
it is not the file under /lib/modules the file says nothing about it.

`detect(release, root, loaded_file)` -> Finding(present: True|False|None, basis,
evidence, module, rebuilt).
"""

import lzma
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass

from .host import paths
from .host.system import loaded_module

SYMBOL = "irq_modify_status"
# vfio-pci-core holds the INTx code since 5.15; before that it was in vfio-pci.
MODULES = ("vfio-pci-core", "vfio-pci")
STD_DIR = "kernel/drivers/vfio/pci"
SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
UPSTREAM = (6, 18)
# (major, minor) -> first patch level known to carry the stable backport.  Only what
# has been seen: Debian's 6.12.95 carries it.  Other series are "unknown by version".
KNOWN_BACKPORTS = {(6, 12): 95}
# Series whose builds were seen without it (Debian bookworm's 6.1).
SEEN_WITHOUT = {(6, 1)}


@dataclass
class Finding:
    present: bool | None     # None: cannot tell
    basis: str               # "module-symbols", "kernel-version" or "none"
    evidence: str
    module: str | None = None
    rebuilt: bool = False    # the vfio-pci-core loaded was built out of tree

    def to_json(self):
        return {"present": self.present, "basis": self.basis, "evidence": self.evidence,
                "module": self.module, "rebuilt": self.rebuilt}


# -- the module file -----------------------------------------------------------------

def module_path(release, root="/"):
    """The vfio-pci module file of kernel `release`, or (None, why)."""
    moddir = paths.under(root, "lib/modules", release)
    if not os.path.isdir(moddir):
        return None, f"/lib/modules/{release} does not exist"
    dep = paths.read_text(os.path.join(moddir, "modules.dep"), "")
    listed = [line.split(":", 1)[0] for line in dep.splitlines()]
    for name in MODULES:
        for rel in listed:        # modules.dep knows updates/ and extra/ too
            base = os.path.basename(rel)
            if any(base == name + s for s in SUFFIXES) and os.path.exists(os.path.join(moddir, rel)):
                return os.path.join(moddir, rel), None
        for s in SUFFIXES:
            p = os.path.join(moddir, STD_DIR, name + s)
            if os.path.exists(p):
                return p, None
    builtin = paths.read_text(os.path.join(moddir, "modules.builtin"), "")
    if any(os.path.basename(line).startswith(MODULES) for line in builtin.splitlines()):
        return None, "vfio-pci is built into the kernel (modules.builtin): no module to inspect"
    return None, f"no vfio-pci-core.ko or vfio-pci.ko under /lib/modules/{release}"


def _decompress(path):
    """The module's ELF bytes; ValueError naming what is missing if it cannot be had."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        import gzip
        return gzip.decompress(data)
    if path.endswith(".zst"):
        try:
            from compression import zstd      # Python 3.14+
            return zstd.decompress(data)
        except ImportError:
            pass
        try:
            import zstandard
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except ImportError:
            pass
        tool = shutil.which("zstd")
        if tool is None:
            raise ValueError("cannot read a .zst module here (no Python zstd, no zstd tool): "
                             "apt-get install zstd")
        return subprocess.run([tool, "-dc", path], capture_output=True, check=True).stdout
    return data


def undefined_symbols(elf):
    """Names of the undefined (imported) symbols in an ELF object's .symtab.  Raises
    ValueError for something that is not a 64- or 32-bit ELF with a symbol table."""
    if elf[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    is64, end = elf[4] == 2, "<" if elf[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", elf, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", elf, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", elf, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", elf, 0x2E)
    sections = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if is64:
            _n, typ, _fl, _a, sh_off, size, link, _i, _al, entsize = struct.unpack_from(
                end + "IIQQQQIIQQ", elf, off)
        else:
            _n, typ, _fl, _a, sh_off, size, link, _i, _al, entsize = struct.unpack_from(
                end + "IIIIIIIIII", elf, off)
        sections.append((typ, sh_off, size, link, entsize))
    SHT_SYMTAB = 2
    symtabs = [s for s in sections if s[0] == SHT_SYMTAB]
    if not symtabs:
        raise ValueError("no symbol table")
    out = set()
    for _t, off, size, link, entsize in symtabs:
        _st, stroff, strsize, _l, _e = sections[link]
        strtab = elf[stroff:stroff + strsize]
        entsize = entsize or (24 if is64 else 16)
        for pos in range(off + entsize, off + size, entsize):   # entry 0 is the null symbol
            if is64:
                name, _info, _other, shndx = struct.unpack_from(end + "IBBH", elf, pos)
            else:
                name, = struct.unpack_from(end + "I", elf, pos)
                shndx, = struct.unpack_from(end + "H", elf, pos + 14)
            if shndx == 0 and name:
                out.add(strtab[name:strtab.index(b"\0", name)].decode("ascii", "replace"))
    return out


def _imports(path):
    """True/False: the module file imports SYMBOL."""
    return elf_imports(_decompress(path))


def elf_imports(elf):
    """True/False: the module's ELF bytes import SYMBOL (the one test of the fix, for
    a host's module file and a lab kernel's package alike).  Parses the ELF symbol
    table; a module too odd to parse falls back to looking for the name as a
    NUL-terminated string (it appears there, and in __versions, only when imported)."""
    try:
        return SYMBOL in undefined_symbols(elf)
    except (ValueError, struct.error, IndexError):
        return re.search(rb"(?<![A-Za-z0-9_])" + SYMBOL.encode() + rb"\x00", elf) is not None


# -- the version rule ----------------------------------------------------------------

def parse_release(release):
    """(major, minor, patch) from "6.12.95+deb12-amd64", "6.1.0-37-amd64", "6.18.44-fc"."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release or "")
    return tuple(int(x or 0) for x in m.groups()) if m else None


def by_version(release):
    v = parse_release(release)
    if v is None:
        return Finding(None, "none", f"kernel release {release!r} is not a version number")
    series = v[:2]
    if series >= UPSTREAM:
        return Finding(True, "kernel-version",
                       f"Linux {release} is v6.18 or later: upstream 8b9f128947dd is in")
    first = KNOWN_BACKPORTS.get(series)
    if first is not None and v[2] >= first:
        return Finding(True, "kernel-version",
                       f"Linux {release}: the {series[0]}.{series[1]} stable backport is in "
                       f"{series[0]}.{series[1]}.{first} and later")
    if series in SEEN_WITHOUT:
        return Finding(False, "kernel-version",
                       f"Linux {release}: {series[0]}.{series[1]} builds seen lack it "
                       "(a later stable update may carry the backport; the module would tell)")
    return Finding(None, "kernel-version",
                   f"Linux {release} predates v6.18 and no backport is known for "
                   f"{series[0]}.{series[1]}.{v[2]}: the kernel version cannot tell")


def of_series(series):
    """True/False/None: does the newest build of a kernel series ("6.12", "6.12-rt",
    "6.1") carry the fix, by the version rule above?  What the lab's Debian kernels
    carry (a lab boot takes the series' newest build, and reads the module itself)."""
    v = parse_release(series)
    if v is None:
        return None
    if v[:2] >= UPSTREAM or v[:2] in KNOWN_BACKPORTS:
        return True
    return False if v[:2] in SEEN_WITHOUT else None


def modinfo(elf):
    """The key=value strings of a module's .modinfo (srcversion, vermagic, depends, name)."""
    out = {}
    for m in re.finditer(rb"(?:^|\0)(srcversion|vermagic|depends|name)=([^\0]*)", elf):
        out.setdefault(m.group(1).decode(), m.group(2).decode(errors="replace"))
    return out


def detect(release, root="/", loaded_file=None):
    """The imports of the module loaded when its file is known (`loaded_file`, or the
    one under /lib/modules unless a rebuilt module runs instead), else the kernel
    version."""
    loaded = loaded_module(root)
    rebuilt = bool(loaded.get("srcversion")) or "O" in loaded.get("taint", "")
    if loaded_file is not None:
        path, why = loaded_file, None
    else:
        path, why = module_path(release, root) if release else (None, "no kernel release")
    if path is not None and rebuilt and loaded_file is None:
        try:
            same = modinfo(_decompress(path)).get("srcversion") == loaded["srcversion"]
        except (OSError, ValueError, lzma.LZMAError, subprocess.CalledProcessError):
            same = False
        if not same:
            return Finding(None, "loaded-module",
                           f"the {loaded['module']} loaded is a rebuilt module (srcversion "
                           f"{loaded['srcversion'] or 'none'}, taint {loaded['taint'] or 'none'}), not "
                           f"{path}: its INTx code cannot be read from a file", rebuilt=True)
    found = _from_file(path, root, rebuilt) if path is not None else None
    if isinstance(found, Finding):
        return found
    why = found or why
    found = by_version(release)
    found.evidence = f"{why}; by version: {found.evidence}"
    found.rebuilt = rebuilt
    return found


def _from_file(path, root, rebuilt):
    """A Finding from the module file's imports, or why it could not be read."""
    shown = "/" + os.path.relpath(path, root) if root != "/" else path
    try:
        has = _imports(path)
    except (OSError, ValueError, lzma.LZMAError, subprocess.CalledProcessError) as exc:
        return f"cannot read {shown}: {exc}"
    what = "the rebuilt " if rebuilt else ""
    if has:
        return Finding(True, "module-symbols",
                       f"{what}{shown} imports {SYMBOL} (irq_set_status_flags: "
                       "IRQ_DISABLE_UNLAZY is set for controller-masked INTx)", shown, rebuilt)
    return Finding(False, "module-symbols",
                   f"{what}{shown} does not import {SYMBOL}: vfio-pci never sets "
                   "IRQ_DISABLE_UNLAZY, so disable_irq_nosync() stays lazy", shown, rebuilt)
