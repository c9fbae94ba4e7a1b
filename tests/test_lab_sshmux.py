"""The lab machines' shared SSH connection (pyvfio/lab/sshmux.py), against a
throwaway sshd on 127.0.0.1 (tests/fleet_sshd.py; this host, not a lab machine):
commands and copies go over one master per user, a caller's captured output is
not held open by it, a dead master's socket is replaced, and close ends it."""
import signal
import socket

import psutil
import pytest

from pyvfio.lab import sshmux
from pyvfio.lab.machine import LabMachine

from fleet_sshd import LocalSshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    s = LocalSshd(tmp_path_factory.mktemp("sshmux") / "sshd").start()
    yield s
    s.stop()


@pytest.fixture
def machine(sshd, tmp_path):
    m = LabMachine(name="mux", arch="x86_64", kernel="6.12", release="x", ic="ioapic", ssh_host="127.0.0.1",
                ssh_port=sshd.port, user="root", key=sshd.key, cards=[], pid=0, monitor_path="",
                dir=str(tmp_path / "machine"))
    yield m
    sshmux.close(m._ssh(), m.ssh_host, m.dir)


def masters(m):
    return [p for p in psutil.process_iter(["cmdline"])
            if "-M" in (p.info["cmdline"] or []) and f"ControlPath={_sock(m)}" in " ".join(p.info["cmdline"])]


def _sock(m, user="root"):
    return sshmux._folder() / f"{sshmux._prefix(m.dir)}-{user}"


def test_commands_and_copies_share_one_connection(machine, tmp_path):
    m = machine
    for _ in range(3):
        p = m.run("echo out; echo err >&2", timeout=30)   # captured: a master holding the pipes would hang it
        assert p.returncode == 0 and (p.stdout, p.stderr) == ("out\n", "err\n"), p
    assert len(masters(m)) == 1
    src = tmp_path / "f"
    src.write_text("bytes")
    m.put(src, str(tmp_path / "g"))
    assert (tmp_path / "g").read_text() == "bytes"
    assert len(masters(m)) == 1
    sshmux.close(m._ssh(), m.ssh_host, m.dir)
    assert masters(m) == [] and not _sock(m).exists()
    assert m.run("true").returncode == 0          # made again on the next use


def test_a_dead_masters_socket_is_replaced(machine):
    m = machine
    assert m.run("true").returncode == 0
    (master,) = masters(m)
    master.send_signal(signal.SIGKILL)
    master.wait(10)
    assert _sock(m).exists()                        # left behind
    p = m.run("echo again")
    assert p.returncode == 0 and p.stdout.strip() == "again" and p.stderr == ""
    assert len(masters(m)) == 1


def test_a_stale_file_that_is_not_a_master_is_replaced(machine):
    m = machine
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(_sock(m)))
    s.close()                                       # a socket nobody listens on
    p = m.run("echo ok")
    assert p.returncode == 0 and p.stdout.strip() == "ok" and p.stderr == ""
    assert len(masters(m)) == 1


def test_without_a_machine_folder_each_command_connects_on_its_own(machine):
    m = machine
    m.dir = None
    assert "ControlPath" not in " ".join(m.ssh_args())
    assert m.run("true").returncode == 0


def test_no_shared_connection_where_sshd_is_not_there(machine):
    m = machine
    m.ssh_port = 1        # nothing listens: options() gives up, the command fails as it would alone
    assert "ControlPath" not in " ".join(m.ssh_args())
    assert m.run("true").returncode == 255  # not ours: ssh's 255, the connection failed
