"""Lab failures: which step failed, what it printed, and what to do."""
from ..errors import EXIT_MACHINE, EXIT_UNAVAILABLE, PyvfioError


class LabError(PyvfioError):
    """A lab step failed.  `detail` (a console or tool tail) is printed below the line."""

    exit_code = EXIT_MACHINE

    def __init__(self, step, message, detail="", hint=None):
        super().__init__(f"lab: {step}: {message}", hint)
        self.step = step
        self.detail = detail


class LabUnavailable(LabError):
    """The lab cannot run on this machine at all (not root, no QEMU, no network to
    fetch its packages on the first run): nothing is wrong with what was asked.
    Exit 77, the status test harnesses read as "skipped"; the lab tests skip on it
    and print the reason."""

    exit_code = EXIT_UNAVAILABLE
