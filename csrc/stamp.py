"""The source stamp: a hash of csrc/ that the extension carries and pyvfio checks."""
import hashlib
import pathlib


def source_stamp(folder):
    h = hashlib.sha256()
    for path in sorted(pathlib.Path(folder).iterdir()):
        if path.is_file() and path.suffix in (".py", ".c", ".h"):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
