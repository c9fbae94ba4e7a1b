"""tests/lab runs inside lab VMs (tests/test_lab_vms.py boots them and runs it
there); on the host it is not collected at all, rather than listed as skipped."""

import pytest

from pyvfio.lab import guest

collect_ignore = [] if guest.in_lab() else ["lab"]


@pytest.fixture
def efds():
    """A trigger and an unmask eventfd, as VFIO's INTx uses them (the C loop's host tests)."""
    from pyvfio.eventfd import EventFd
    trigger, unmask = EventFd(), EventFd()
    yield trigger, unmask
    trigger.close()
    unmask.close()
