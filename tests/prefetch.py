"""The lab machines' images (and the sdist they install), built in the background
from the start of a test session that will boot machines: a cold x86_64 image
takes minutes and a ppc64el one longer (its maintainer scripts run under
qemu-user), and the machine tier runs last (tests/conftest.py), so the builds
overlap the busybox lab's batches instead of adding to them.  At nice 19: the
batches' VMs come first (on 2 cores a build at equal weight took a third of
their CPU), the build takes what they leave and, once they are done, the core
the x86_64 machine's tests leave.  Each image is built under its own lock
(pyvfio/lab/machine.py prepare), so a machine waits for its own image only, and
builds it itself, with its error, where the background build failed."""

import os
import pathlib
import shlex
import signal
import subprocess
import sys

_proc = None


def start(checkout):
    global _proc
    if _proc is not None:
        return
    from pyvfio.lab import cache

    log = pathlib.Path(cache.root()) / "machine-images.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    py = shlex.quote(sys.executable)
    cmd = (f"{py} -m pyvfio lab machine start x86_64 --prepare-only --deploy; "
           f"{py} -m pyvfio lab machine start ppc64le --prepare-only")
    with open(log, "w") as out:
        _proc = subprocess.Popen(["nice", "-n", "19", "sh", "-c", cmd], cwd=checkout, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop():
    if _proc is not None and _proc.poll() is None:
        os.killpg(_proc.pid, signal.SIGTERM)
        _proc.wait()
