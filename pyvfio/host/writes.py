"""What pyvfio does to the running kernel besides VFIO: writes to its files (sysfs,
module knobs) and the tools it runs (modprobe, insmod, make).  Each failure becomes
one PyvfioError that names the errno and says what to do: a read-only /sys (a
container), no permission, a device or driver gone, a tool not installed."""

import errno
import subprocess

from ..errors import PyvfioError

HINTS = {errno.EROFS: "/sys is mounted read-only here (a container?): run on the host itself",
         errno.EACCES: "run as root", errno.EPERM: "run as root",
         errno.ENOENT: "the device or driver went away: check pyvfio list",
         errno.ENODEV: "the device or driver went away: check pyvfio list"}


def failure(what, exc, hint=None):
    """A PyvfioError for an OSError raised while doing `what` (a shell-like phrase)."""
    code = errno.errorcode.get(exc.errno, exc.errno)
    return PyvfioError(f"`{what}` failed: {exc.strerror or exc} ({code})",
                       hint or HINTS.get(exc.errno, "see dmesg for the kernel's reason"))


def write(path, value):
    """echo VALUE > PATH, as the kernel needs it: one write() of the whole value."""
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise failure(f"echo {value.strip()} > {path}", exc) from None


def run(argv, hint, timeout=300):
    """Run a tool; returns its CompletedProcess (the caller judges its status).
    A tool that is not installed or cannot start is a one-line error."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise PyvfioError(f"{argv[0]} is not installed here", hint) from None
    except subprocess.TimeoutExpired:
        raise PyvfioError(f"`{' '.join(argv)}` did not finish in {timeout} s", hint) from None
    except OSError as exc:
        raise failure(" ".join(argv), exc, hint) from None
