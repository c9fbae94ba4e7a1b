"""Lab machines for the tests that run pyvfio on them over SSH, as a user does
(tests/machines here, and the fleet's): `machine_x86` and `machine_ppc`, each
booted once per pytest session and stopped at its end (tests/machine_boot.py).
Tests that damage a machine (device_del, rmmod) restore it or run last in their
file."""
import pytest

import machine_boot


@pytest.fixture(scope="session", autouse=False)
def _machines():
    yield machine_boot._live
    machine_boot.stop_all()


@pytest.fixture
def machine_x86(_machines, request):
    return machine_boot.boot("x86_64", request.session)


@pytest.fixture
def machine_ppc(_machines, request):
    return machine_boot.boot("ppc64le", request.session)


def pytest_terminal_summary(terminalreporter):
    if machine_boot.TIMES:
        terminalreporter.write_line("lab machines: " + ", ".join(f"{k} {v} s" for k, v in machine_boot.TIMES.items()))
