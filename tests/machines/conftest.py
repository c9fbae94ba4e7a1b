"""Lab machines for the tests that run pyvfio on them over SSH, as a user does
(tests/machines here, and the fleet's): each booted once per pytest session,
pyvfio installed on it from this checkout (pyvfio/deploy.py), stopped at the end.

Booting holds one of the machine's VM slots for the machine's life
(pyvfio/lab/machine.py); two slots by default, so both machines stay up; with
PYVFIO_LAB_VMS=1 the two arches' tests take turns: `machine_x86` is stopped as soon
as the first test needing `machine_ppc` starts (see _boot).  Tests that damage a
machine (device_del, rmmod) restore it or run last in their file.  Skipped with the
lab's own reason where QEMU cannot run here (not root, QEMU missing, no network on
the first image build)."""
import os
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
TIMES = {}   # what the session measured: boot and deploy seconds per arch


def _boot(key, spec):
    from pyvfio import deploy

    # Two VM slots, as the lab suite's batches use (tests/test_lab_vms.py BATCH_VMS):
    # the fleet needs both machines up.  The tier runs last (tests/conftest.py).
    os.environ.setdefault("PYVFIO_LAB_VMS", "2")
    for other in [k for k in _live if k != key]:
        # One slot: give it back before taking another (PYVFIO_LAB_VMS=1 waits otherwise).
        if os.environ["PYVFIO_LAB_VMS"] == "1":
            labmachine.stop(_live.pop(other).name)
    if key not in _live:
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
        _live[key] = m
    return _live[key]


@pytest.fixture(scope="session", autouse=False)
def _machines():
    yield _live
    for m in list(_live.values()):
        labmachine.stop(m.name)
    _live.clear()


@pytest.fixture
def machine_x86(_machines):
    return _boot("x86_64", X86)


@pytest.fixture
def machine_ppc(_machines):
    return _boot("ppc64le", PPC)


def pytest_terminal_summary(terminalreporter):
    if TIMES:
        terminalreporter.write_line("lab machines: " + ", ".join(f"{k} {v} s" for k, v in TIMES.items()))
