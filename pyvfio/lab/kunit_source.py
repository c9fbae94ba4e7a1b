"""The kernel's own KTAP parser (tools/testing/kunit/kunit_parser.py and the
kunit_printer.py it imports), out of Debian's linux-source, for the test that
reads `pyvfio ... --format ktap` with it.

The .deb is the one the lab downloads for `--vfio` builds (vfio_build.source, in
the lab cache's apt/amd64/archives-source): when one is there it is used as it is,
so no second download; otherwise the newest linux-source-SERIES of the lists is
fetched the same way.  Only the two files are streamed out of the tarball, into
the cache (kunit-VERSION/), once.
"""

import pathlib
import re

from . import cache
from .apt import Apt

SERIES = "6.12"
PATHS = ("tools/testing/kunit/kunit_parser.py", "tools/testing/kunit/kunit_printer.py")


def _cached_deb(apt, name):
    debs = sorted(apt.archives.glob(f"{name}_*_all.deb"))
    return debs[-1] if debs else None


def parser_dir(cache_root=None, series=SERIES):
    """The folder holding kunit_parser.py and kunit_printer.py (fetched once).
    LabUnavailable when there is no cached source and no network to fetch one."""
    from .vfio_build import _unpack   # one streaming unpacker for linux-source
    cache_root = pathlib.Path(cache_root or cache.root())
    name = f"linux-source-{series}"
    apt = Apt(cache_root, "amd64", archives="archives-source")   # Architecture: all
    deb = _cached_deb(apt, name)
    if deb is not None:
        version = deb.name.split("_")[1]
    else:
        apt.update()
        version = apt.version(name)
    step = f"{name} {version} (tools/testing/kunit)"

    def build(out):
        src = deb or apt.download([f"{name}={version}"], step)[0]
        n = _unpack(src, out, step, paths=PATHS)
        return {"package": name, "version": version, "files": n}

    safe = re.sub(r"[^\w.+~-]", "_", version)
    folder = cache.ensure(cache_root / f"kunit-{safe}", step, build)
    return folder / "tools" / "testing" / "kunit"
