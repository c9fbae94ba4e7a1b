"""The lab machines the tests run pyvfio on over SSH (tests/machines, the fleet's
tests), booted once per pytest session, pyvfio installed on each from this
checkout (pyvfio/deploy.py); tests/machines/conftest.py's fixtures hand them out
and stop them at the session's end.

Booting holds one of the machine's VM slots for the machine's life
(pyvfio/lab/machine.py); two slots by default, so both machines stay up; with
PYVFIO_LAB_VMS=1 the two arches' tests take turns: `machine_x86` is stopped as soon
as the first test needing `machine_ppc` starts (see boot); with two, a machine the
session needs next boots in the background (_Ahead): the ppc64le one while the
x86_64 one's tests run, and the x86_64 one while the busybox lab's last single-VM
tests run (tests/conftest.py), so neither boot and deploy is on the critical path.
Skipped with the lab's own reason where QEMU cannot run here (not root, QEMU
missing, no network on the first image build)."""
import os
import threading
import time

import pytest

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


def boot(key, session):
    # Two VM slots, as the lab suite's batches use (tests/test_lab_vms.py BATCH_VMS):
    # the fleet needs both machines up.  The tier runs last (tests/conftest.py).
    os.environ.setdefault("PYVFIO_LAB_VMS", "2")
    for other in [k for k in _live if k != key]:
        # One slot: give it back before taking another (PYVFIO_LAB_VMS=1 waits otherwise).
        if os.environ["PYVFIO_LAB_VMS"] == "1":
            labmachine.stop(_live.pop(other).name)
    if key not in _live:
        if os.environ["PYVFIO_LAB_VMS"] != "1":
            needed = {k for k, f in FIXTURES.items() for i in session.items if f in i.fixturenames}
            for other in needed - {key} - set(_live):
                ahead(other)
        booting = _ahead.get(key)
        _live[key] = booting.result() if booting else _start_and_deploy(key, SPECS[key])
    return _live[key]


def ahead(key):
    """Boot and deploy the machine `key` in the background, once (two VM slots only)."""
    os.environ.setdefault("PYVFIO_LAB_VMS", "2")
    if os.environ["PYVFIO_LAB_VMS"] != "1" and key not in _live and key not in _ahead:
        _ahead[key] = _Ahead(key)
        _ahead[key].start()


def stop_all():
    """The session's end: every machine stopped, the background threads let go."""
    for booting in _ahead.values():   # booted for a test that never came
        if booting.done.is_set() and booting.machine is not None and booting.key not in _live:
            labmachine.stop(booting.machine.name)
    for m in list(_live.values()):
        labmachine.stop(m.name)
    _live.clear()
    for booting in _ahead.values():   # their QEMUs are gone: the threads may end
        booting.stopped.set()
    _ahead.clear()
