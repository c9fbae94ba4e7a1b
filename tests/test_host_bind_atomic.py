"""bind and unbind as one sequence: one at a time under a lock, signals deferred,
the record validated, and every half-state a killed bind leaves repaired by unbind.
On fabricated sysfs trees with a simulated kernel (tests/fixtures/fakehost.py)."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from fixtures.fakehost import FakeHost, FakeKernel
from pyvfio.checkout import CHECKOUT
from pyvfio import cli
from pyvfio.errors import PyvfioError, RefusedError
from pyvfio.host import bind
from pyvfio.errors import EXIT

CARD = "0000:02:05.0"
TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = str(CHECKOUT)


@pytest.fixture
def host(tmp_path):
    h = FakeHost(tmp_path / "root")
    h.add_driver("vfio-pci")
    h.add_device(CARD, 0x10EC, 0x8139, driver="8139too", group=7)
    return h


def override(h):
    with open(h.dev(CARD, "driver_override")) as f:
        return f.read().strip()


def one_line_on_stderr(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyvfio: error: "), err
    return lines[0]


class Slow(FakeKernel):
    """Each sysfs write takes a while, as a driver's remove/probe does."""

    def write(self, path, value):
        time.sleep(0.05)
        super().write(path, value)


# --- two at once ----------------------------------------------------------------------

@pytest.mark.parametrize("attempt", range(3))   # a race: a few tries, each from nothing
def test_two_binds_of_one_card_at_once_one_wins_the_other_refuses(host, attempt):
    plans = [bind.plan_bind(CARD, root=host.root) for _ in range(2)]
    start = threading.Barrier(2)
    results = [None, None]

    def go(i):
        start.wait()
        try:
            bind.bind(plans[i], root=host.root, kernel=Slow(host))
            results[i] = "bound"
        except Exception as exc:  # anything but a RefusedError fails below, by name
            results[i] = exc
    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(map(type, results), key=str) == sorted([str, RefusedError], key=str), results
    refusal = next(r for r in results if isinstance(r, RefusedError))
    assert "\n" not in str(refusal)
    assert "another pyvfio bind" in str(refusal) or "changed while this bind was planned" in str(refusal)
    assert host.driver_of(CARD) == "vfio-pci" and override(host) == "vfio-pci"
    state = bind.load_state(host.root)
    assert list(state) == [CARD] and state[CARD]["driver"] == "8139too"


def test_a_bind_planned_before_another_finished_is_refused_not_replayed(host):
    first, second = (bind.plan_bind(CARD, root=host.root) for _ in range(2))
    bind.bind(first, root=host.root, kernel=FakeKernel(host))
    k = FakeKernel(host)
    with pytest.raises(RefusedError, match=f"{CARD} changed while this bind was planned: it is now on vfio-pci"):
        bind.bind(second, root=host.root, kernel=k)
    assert k.writes == [] and host.driver_of(CARD) == "vfio-pci"
    assert bind.load_state(host.root)[CARD]["driver"] == "8139too"   # not overwritten with vfio-pci


def test_bind_through_the_cli_while_another_holds_the_lock_is_one_line(host, monkeypatch, capsys):
    monkeypatch.setenv("PYVFIO_SYSROOT", host.root)
    monkeypatch.setattr(bind, "Kernel", lambda: FakeKernel(host))
    with bind.sequence_lock(host.root):      # a bind in another process, mid-sequence
        assert cli.main(["bind", CARD]) == EXIT['REFUSED']
        line = one_line_on_stderr(capsys)
    assert f"another pyvfio bind or unbind is changing drivers (pid {os.getpid()})" in line
    assert host.driver_of(CARD) == "8139too" and override(host) == "(null)"
    assert bind.load_state(host.root) == {}


# --- signals ----------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_between_two_sysfs_writes_waits_for_the_sequence(host, monkeypatch, capsys, signum):
    class CtrlC(FakeKernel):
        def write(self, path, value):
            super().write(path, value)
            if path.endswith("driver_override"):
                os.kill(os.getpid(), signum)
    monkeypatch.setenv("PYVFIO_SYSROOT", host.root)
    monkeypatch.setattr(bind, "Kernel", lambda: CtrlC(host))
    assert cli.main(["bind", CARD]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert host.driver_of(CARD) == "vfio-pci"                # the sequence was finished
    assert bind.load_state(host.root)[CARD]["driver"] == "8139too"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- a bind killed between two writes, repaired by unbind -------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys
    from fixtures.fakehost import FakeHost, FakeKernel
    from pyvfio.host import bind

    class Killed(FakeKernel):
        def write(self, path, value):
            super().write(path, value)
            if path.endswith(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    h = FakeHost.__new__(FakeHost)
    h.root, h.natural = sys.argv[1], {"%s": "8139too"}
    bind.bind(bind.plan_bind("%s", root=h.root), root=h.root, kernel=Killed(h))
""" % (CARD, CARD))


def killed_bind(h, after):
    """A real `bind` process SIGKILLed right after its write to a file ending in `after`."""
    r = subprocess.run([sys.executable, "-c", CHILD, h.root, after], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": TESTS}, cwd=REPO, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr


def test_unbind_repairs_a_bind_killed_after_driver_override(host, monkeypatch, capsys):
    killed_bind(host, "driver_override")
    assert host.driver_of(CARD) == "8139too" and override(host) == "vfio-pci"   # the half-state
    monkeypatch.setenv("PYVFIO_SYSROOT", host.root)
    monkeypatch.setattr(bind, "Kernel", lambda: FakeKernel(host))
    assert cli.main(["unbind", CARD]) == 0
    assert "interrupted bind" in capsys.readouterr().out
    assert host.driver_of(CARD) == "8139too" and override(host) == "(null)"
    assert bind.load_state(host.root) == {}


def test_unbind_repairs_a_bind_killed_with_the_card_on_no_driver(host, monkeypatch):
    killed_bind(host, "8139too/unbind")
    assert host.driver_of(CARD) is None and override(host) == "vfio-pci"
    monkeypatch.setenv("PYVFIO_SYSROOT", host.root)
    monkeypatch.setattr(bind, "Kernel", lambda: FakeKernel(host))
    assert cli.main(["unbind", CARD]) == 0
    assert host.driver_of(CARD) == "8139too" and override(host) == "(null)"
    assert bind.load_state(host.root) == {}


def test_unbind_repairs_an_override_on_no_driver_without_a_record(host):
    """The record lost too (removed by hand): the override still says it was ours."""
    killed_bind(host, "8139too/unbind")
    os.unlink(bind.state_path(host.root))
    plan = bind.plan_unbind(CARD, root=host.root)
    assert plan.targets[0]["known"] is False
    bind.unbind(plan, root=host.root, kernel=FakeKernel(host))
    assert host.driver_of(CARD) == "8139too" and override(host) == "(null)"


def test_a_bind_after_a_killed_one_keeps_the_driver_to_restore(host):
    killed_bind(host, "8139too/unbind")          # the card on no driver, the record names 8139too
    bind.bind(bind.plan_bind(CARD, root=host.root), root=host.root, kernel=FakeKernel(host))
    assert bind.load_state(host.root)[CARD]["driver"] == "8139too"
    bind.unbind(bind.plan_unbind(CARD, root=host.root), root=host.root, kernel=FakeKernel(host))
    assert host.driver_of(CARD) == "8139too"


# --- the record, validated on read ----------------------------------------------------

@pytest.mark.parametrize("text, why", [
    ("[]", "not a pyvfio bindings record"),
    ('{"version": 1, "devices": []}', "not a pyvfio bindings record"),
    ('{"version": 2, "devices": {}}', "version 2 is not 1"),
    ('{"version": 1, "devices": {"%s": 5}}' % CARD, "is not an object"),
    ('{"version": 1, "devices": {"%s": {"driver": 3, "bound_with": []}}}' % CARD, "driver is not a string"),
    ('{"version": 1, "devices": {"%s": {"driver": "e1000", "bound_with": "x"}}}' % CARD, "bound_with"),
    ("[" * 100000, "cannot read"),
])
def test_a_record_of_the_wrong_shape_is_one_line_naming_it(host, capsys, monkeypatch, text, why):
    os.makedirs(os.path.dirname(bind.state_path(host.root)), exist_ok=True)
    with open(bind.state_path(host.root), "w") as f:
        f.write(text)
    with pytest.raises(PyvfioError, match=why):
        bind.load_state(host.root)
    host.unlink_driver(CARD)
    host.link_driver(CARD, "vfio-pci")
    monkeypatch.setenv("PYVFIO_SYSROOT", host.root)
    assert cli.main(["unbind", CARD]) == 2
    line = one_line_on_stderr(capsys)
    assert "bindings.json" in line and "fix or remove it" in line
    assert host.driver_of(CARD) == "vfio-pci"


def test_the_record_is_not_written_through_a_planted_link(host, tmp_path):
    os.makedirs(os.path.dirname(bind.state_path(host.root)), exist_ok=True)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, bind.state_path(host.root))
    with pytest.raises(PyvfioError):
        bind.bind(bind.plan_bind(CARD, root=host.root), root=host.root, kernel=FakeKernel(host))
    assert victim.read_text() == "precious\n"
    assert host.driver_of(CARD) == "8139too" and override(host) == "(null)"
