"""Lab machines for the tests that run pyvfio on them over SSH, as a user does
(tests/machines here, and the fleet's): each booted once per pytest session,
pyvfio installed on it from this checkout (pyvfio/deploy.py), stopped at the end.

Booting holds one of the machine's VM slots for the machine's life
(pyvfio/lab/machine.py); two slots by default, so both machines stay up; with
PYVFIO_LAB_VMS=1 the two arches' tests take turns: `machine_x86` is stopped as soon
as the first test needing `machine_ppc` starts (see _boot); with two, the machine
the session needs next boots in the background (_Ahead) while the first one's tests
run.  Tests that damage a machine (device_del, rmmod) restore it or run last in
their file.  Skipped with the lab's own reason where QEMU cannot run here (not root,
QEMU missing, no network on the first image build)."""
import os
import threading
import time

import pytest

import prefetch

from pyvfio.lab import machine as labmachine
from pyvfio.lab.errors import LabUnavailable

# x86_64 6.12: edu, an e1000 on its e1000 driver, and two edus behind a PCIe-to-PCI bridge.
X86 = dict(arch="x86_64", kernel="6.12", cards=("edu", "e1000"), bridge=True)
# ppc64le XIVE: edu, and two edus behind a PCI bridge on the cards' PHB.
PPC = dict(arch="ppc64le", kernel="6.12", ic="xive", cards=("edu",), bridge=True)

_live = {}
_ahead = {}  # key -> _Ahead: a machine booting in the background
TIMES = {}   # what the session measured: boot and deploy seconds per arch
FIXTURES = {"x86_64": "machine_x86", "ppc64le": "machine_ppc"}
SPECS = {"x86_64": X86, "ppc64le": PPC}


def _start_and_deploy(key, spec):
    from pyvfio import deploy

    prefetch.wait()   # the images the session began building at its start
    try:
        m = labmachine.start(**spec, name=f"pytest-{os.getpid()}-{key}", owner=os.getpid())
    except LabUnavailable as exc:
        pytest.skip(f"lab machines cannot run here: {exc}")
    TIMES[f"{key} boot to ssh"] = m.boot_seconds
    t0 = time.monotonic()
    try:
        m.pyvfio = deploy.deploy_machine(m)
    except BaseException:
        labmachine.stop(m.name)
        raise
    TIMES[f"{key} deploy"] = round(time.monotonic() - t0, 1)
    return m


class _Ahead(threading.Thread):
    """Boots and deploys a machine the session will need next while the tests of the
    first one run (it waits for sshd and builds its wheel under TCG: minutes, on the
    critical path otherwise).  It lives as long as its machine: PR_SET_PDEATHSIG is
    the starting thread's, so QEMU would get SIGTERM when the thread ended."""

    def __init__(self, key):
        super().__init__(name=f"boot-{key}", daemon=True)
        self.key, self.machine, self.error = key, None, None
        self.done, self.stopped = threading.Event(), threading.Event()

    def run(self):
        try:
            self.machine = _start_and_deploy(self.key, SPECS[self.key])
        except BaseException as exc:   # pytest.skip's too: raised again where it is used
            self.error = exc
        self.done.set()
        self.stopped.wait()

    def result(self):
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.machine


def _boot(key, request):
    # Two VM slots, as the lab suite's batches use (tests/test_lab_vms.py BATCH_VMS):
    # the fleet needs both machines up.  The tier runs last (tests/conftest.py).
    os.environ.setdefault("PYVFIO_LAB_VMS", "2")
    for other in [k for k in _live if k != key]:
        # One slot: give it back before taking another (PYVFIO_LAB_VMS=1 waits otherwise).
        if os.environ["PYVFIO_LAB_VMS"] == "1":
            labmachine.stop(_live.pop(other).name)
    if key not in _live:
        if os.environ["PYVFIO_LAB_VMS"] != "1":
            needed = {k for k, f in FIXTURES.items() for i in request.session.items if f in i.fixturenames}
            for other in needed - {key} - set(_live) - set(_ahead):
                _ahead[other] = _Ahead(other)
                _ahead[other].start()
        ahead = _ahead.get(key)
        _live[key] = ahead.result() if ahead else _start_and_deploy(key, SPECS[key])
    return _live[key]


@pytest.fixture(scope="session", autouse=False)
def _machines():
    yield _live
    for ahead in _ahead.values():   # booted for a test that never came
        if ahead.done.is_set() and ahead.machine is not None and ahead.key not in _live:
            labmachine.stop(ahead.machine.name)
    for m in list(_live.values()):
        labmachine.stop(m.name)
    _live.clear()
    for ahead in _ahead.values():   # their QEMUs are gone: the threads may end
        ahead.stopped.set()
    _ahead.clear()


@pytest.fixture
def machine_x86(_machines, request):
    return _boot("x86_64", request)


@pytest.fixture
def machine_ppc(_machines, request):
    return _boot("ppc64le", request)


def pytest_terminal_summary(terminalreporter):
    if TIMES:
        terminalreporter.write_line("lab machines: " + ", ".join(f"{k} {v} s" for k, v in TIMES.items()))
