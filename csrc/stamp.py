"""The source stamp: a hash of csrc/ (and of the op table the build compiles in)
that the extension carries and pyvfio checks."""
import hashlib
import pathlib

# The one file outside csrc/ the build reads (the op kinds' codes: build.py), from
# the checkout's root.
OP_TABLE = "pyvfio/profiles/ops.py"


def source_stamp(folder):
    h = hashlib.sha256()
    folder = pathlib.Path(folder)
    for path in sorted(folder.iterdir()) + [folder.parent / OP_TABLE]:
        if path.is_file() and path.suffix in (".py", ".c", ".h"):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
