"""tests/lab runs inside lab VMs (tests/test_lab_vms.py boots them and runs it
there); on the host it is not collected at all, rather than listed as skipped.

The lab machines' tier (tests/machines) runs last, with its images built in the
background from the session's start (prefetch.py) and the x86_64 machine booted
in the background after the busybox batches (machine_boot.py): the x86_64
machine's tests, then the ppc64le one's, then the fleet on both (two VM slots:
the x86_64 machine stays up), so each machine boots once."""

import os
import pathlib
import shutil
import signal

import pytest

import prefetch
from pyvfio.checkout import CHECKOUT
from pyvfio.lab import in_guest

collect_ignore = [] if in_guest.in_lab() else ["lab"]

# A shell starts a background job (`cmd &`, no job control) with SIGINT ignored, and an
# ignored signal stays ignored across exec: every pyvfio the tests start would then
# shrug off the Ctrl-C the Ctrl-C tests send it.  Handled here, it is the default again
# in each child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _tier(item):
    path = pathlib.Path(str(item.fspath))
    if path.parent.name != "machines":
        return 0
    # the fleet last: its bind loads vfio-pci, and the machines' own tests start from
    # a fresh machine (vfio-pci not loaded, cards on their host drivers)
    return 3 if path.name == "test_fleet.py" else 1 if "machine_x86" in item.fixturenames else 2


def pytest_collection_modifyitems(items):
    items.sort(key=_tier)   # stable: file order within each


_x86_ahead_after = None   # the node after which the x86_64 machine boots in the background


def pytest_collection_finish(session):
    global _x86_ahead_after
    machines = any(_tier(i) for i in session.items)
    if machines and not in_guest.in_lab() and os.geteuid() == 0 and shutil.which("mmdebstrap") \
            and shutil.which("qemu-system-x86_64"):
        prefetch.start(CHECKOUT)
        # Once the busybox batches are done, the lab's last tests boot one VM at a
        # time: the x86_64 machine boots and deploys (minutes) in the other slot.
        batches = [i for i in session.items if getattr(i, "originalname", None) == "test_guest_batch"]
        if batches and any("machine_x86" in getattr(i, "fixturenames", ()) for i in session.items):
            _x86_ahead_after = batches[-1].nodeid


def pytest_runtest_logfinish(nodeid):
    if nodeid == _x86_ahead_after:
        import machine_boot
        machine_boot.ahead("x86_64")


def pytest_sessionfinish(session):
    prefetch.stop()


def pytest_terminal_summary(terminalreporter):
    import sys
    batches = getattr(sys.modules.get("test_lab_vms"), "BATCH_TIMES", None)
    for name, line in (batches or {}).items():
        terminalreporter.write_line(f"guest batch {name}: {line}")


@pytest.fixture
def efds():
    """A trigger and an unmask eventfd, as VFIO's INTx uses them (the C loop's host tests)."""
    from pyvfio.eventfd import EventFd
    trigger, unmask = EventFd(), EventFd()
    yield trigger, unmask
    trigger.close()
    unmask.close()
