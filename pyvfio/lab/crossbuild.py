"""Cross-build pyvfio's cffi extension for the ppc64le guest.

The whole `ffibuilder` of csrc/build.py is emitted as C by the cffi version the
guest's backend has (Debian bookworm: 1.15.1; generated C must match its backend),
then compiled with powerpc64le-linux-gnu-gcc against the ppc64el Python headers and
Debian's 6.12 uapi headers (uapi_headers.py: <linux/iommufd.h>, which the 6.1 cross
headers lack, so that the guest's extension declares what the host's does).  The
result is keyed by the csrc stamp that pyvfio checks at import, and copied into the
checkout as
pyvfio/_ffi.cpython-311-powerpc64le-linux-gnu.so (the x86 Python never loads it).
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys

from ..checkout import CHECKOUT
from . import cache, debs, uapi_headers
from .apt import Apt
from .errors import LabError, LabUnavailable

TARGET_NAME = "_ffi.cpython-311-powerpc64le-linux-gnu.so"
CC = "powerpc64le-linux-gnu-gcc"


def _stamp():
    sys.path.insert(0, str(CHECKOUT / "csrc"))
    try:
        from stamp import source_stamp
    finally:
        sys.path.pop(0)
    return source_stamp(CHECKOUT / "csrc")


def _cffi(cache_root, version):
    """A private copy of cffi==version used only to emit C."""
    def build(out):
        p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "--target", str(out), f"cffi=={version}"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            offline = re.search(r"Failed to establish a new connection|Temporary failure in name "
                                r"resolution|No matching distribution found", p.stderr)
            raise (LabUnavailable if offline else LabError)(
                f"cffi {version}", "pip install failed", p.stderr[-800:],
                hint="no network to PyPI: the first run needs it" if offline else "see pip's output above")
    return cache.ensure(pathlib.Path(cache_root) / f"cffi-{version}", f"cffi {version} (C emitter)",
                        build)


def _headers(cache_root):
    def build(out):
        apt = Apt(cache_root, "ppc64el", archives="archives-dev")
        apt.update()
        for deb in apt.download(["libpython3.11-dev", "python3.11-dev"], "ppc64el Python headers"):
            debs.unpack(deb, out, "ppc64el Python headers")
    return cache.ensure(pathlib.Path(cache_root) / "pyheaders-ppc64el", "ppc64el Python headers",
                        build)


def prepare(cache_root, cffi_version):
    """Build (or reuse) the ppc64le extension and install it into the checkout."""
    if shutil.which(CC) is None:
        raise LabError("ppc64le extension", f"{CC} is not installed",
                       hint="apt-get install $(cat tools/lab-packages.txt)")
    stamp = _stamp()
    include, uapi_version = uapi_headers.prepare(cache_root)
    uapi = uapi_headers.cflags(include, "powerpc64le-linux-gnu")
    step = f"ppc64le extension (csrc {stamp}, uapi {uapi_version})"

    def build(out):
        emitter = _cffi(cache_root, cffi_version)
        headers = _headers(cache_root)
        c_file = out / "_ffi.c"
        # CC, CFLAGS: the emitted C declares iommufd only if these headers have it
        env = dict(os.environ, PYTHONPATH=str(emitter), CC=CC, CFLAGS=" ".join(uapi))
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import build; "
                "build.ffibuilder.emit_c_code(sys.argv[2])")
        p = subprocess.run([sys.executable, "-c", code, str(CHECKOUT / "csrc"), str(c_file)],
                           env=env, capture_output=True, text=True, cwd=out)
        if p.returncode != 0:
            raise LabError(step, "cffi could not emit the C source", p.stderr[-1500:])
        cmd = [CC, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(out / TARGET_NAME), str(c_file),
               f"-I{CHECKOUT / 'csrc'}", f"-I{headers / 'usr/include/python3.11'}",
               f"-I{headers / 'usr/include'}", *uapi]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise LabError(step, "cross-compiling the extension failed", p.stderr[-1500:])
        return {"stamp": stamp, "uapi": uapi_version,
                "iommufd": "#define PYVFIO_UAPI_IOMMUFD 1" in c_file.read_text()}

    folder = cache.ensure(pathlib.Path(cache_root) / "ext-ppc64le" / f"{stamp}-uapi{uapi_version}", step, build,
                          hashed=(TARGET_NAME,))
    dest = CHECKOUT / "pyvfio" / TARGET_NAME
    built = folder / TARGET_NAME
    if not dest.exists() or dest.read_bytes() != built.read_bytes():
        shutil.copyfile(built, dest)
    return dest
