"""Where the host's files are, under a root that tests can replace."""

import os

ROOT_ENV = "PYVFIO_SYSROOT"


def host_root():
    """The root the commands read (and bind writes): "/" unless PYVFIO_SYSROOT names a
    fabricated or saved tree (tests use it; so can a look at another machine's dump)."""
    return os.environ.get(ROOT_ENV) or "/"


def under(root, *parts):
    """`root`/`parts` joined, with the parts' leading slashes ignored."""
    return os.path.join(root, *(p.lstrip("/") for p in parts))


def read_text(path, default=None):
    """The stripped text of a small sysfs/procfs file, or `default` if absent/unreadable."""
    try:
        with open(path) as f:
            return f.read().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError, OSError):
        return default


def read_int(path, base=0, default=None):
    """An integer sysfs attribute ("0x8086", "11"), or `default`."""
    text = read_text(path)
    if text is None or text == "":
        return default
    try:
        return int(text, base)
    except ValueError:
        return default


def link_name(path):
    """The last component of a symlink's target (a driver's or group's name), or None."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None
