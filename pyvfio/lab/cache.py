"""The lab cache: one folder per prepared artefact, each with a manifest.

An artefact is built in a temporary folder beside its final place and renamed
into place only when complete, so an interrupted build leaves nothing that looks
finished.  The manifest records every file's size and, for the files a boot
depends on byte for byte (kernel, initramfs, extension), a SHA-256; `verify`
checks it before each use, so a truncated or overwritten file is detected and the
artefact rebuilt instead of booting garbage.
"""
import hashlib
import json
import os
import pathlib
import shutil
import time

from ..checkout import CHECKOUT
from ..errors import UsageError, os_error
from . import progress

MANIFEST = ".pyvfio-manifest.json"


def root():
    env = os.environ.get("PYVFIO_CACHE")
    if env:
        lab = pathlib.Path(env).resolve() / "lab"
        try:   # made here, where the variable is read: a file or /proc is one line, not a bug
            lab.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error("use the lab cache", f"PYVFIO_CACHE={env}", exc,
                           "point PYVFIO_CACHE at a folder (the lab's download cache), or unset it",
                           cls=UsageError) from None
        return lab
    return CHECKOUT / ".cache" / "lab"


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder, hashed=(), info=None):
    folder = pathlib.Path(folder)
    files = {}
    for dirpath, _dirs, names in os.walk(folder):
        for n in names:
            p = pathlib.Path(dirpath) / n
            rel = str(p.relative_to(folder))
            if rel == MANIFEST or p.is_symlink():
                continue
            entry = {"size": p.stat().st_size}
            if rel in hashed:
                entry["sha256"] = _sha256(p)
            files[rel] = entry
    (folder / MANIFEST).write_text(json.dumps({"files": files, "info": info or {}}, indent=0))


def verify(folder):
    """None if the artefact is intact, else why it is not."""
    folder = pathlib.Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return "no manifest (never finished)"
    except (ValueError, OSError) as exc:
        return f"unreadable manifest ({exc})"
    for rel, entry in manifest.get("files", {}).items():
        p = folder / rel
        try:
            size = p.stat().st_size
        except OSError:
            return f"{rel} is missing"
        if size != entry["size"]:
            return f"{rel} has {size} bytes, expected {entry['size']}"
        if "sha256" in entry and _sha256(p) != entry["sha256"]:
            return f"{rel} does not match its checksum"
    return None


def info(folder):
    return json.loads((pathlib.Path(folder) / MANIFEST).read_text()).get("info", {})


def ensure(folder, step, build, hashed=()):
    """Return folder, building it with build(tmpdir) -> info dict if missing or corrupt.

    `hashed` lists the files (relative paths) whose content is checksummed."""
    folder = pathlib.Path(folder).resolve()
    if folder.exists():
        why = verify(folder)
        if why is None:
            return folder
        progress.say(f"cache: {step} is corrupted ({why}); rebuilding it")
        shutil.rmtree(folder)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.monotonic()
    progress.say(f"preparing {step} ...")
    try:
        meta = build(tmp) or {}
        write_manifest(tmp, hashed=hashed, info=meta)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    progress.say(f"prepared {step} in {time.monotonic() - t0:.1f} s")
    return folder
