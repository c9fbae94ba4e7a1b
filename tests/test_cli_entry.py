"""The entry point's one handler (pyvfio.cli.main): whatever a user types or does,
one line on stderr and an exit status, never a traceback."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pyvfio import cli
from pyvfio.cli import main

PYVFIO = os.path.join(os.path.dirname(sys.executable), "pyvfio")


def call(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    return len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv,needle", [
    (["run", "0000:00:00.0", "-a", "99999999999999999999"], "CPU 99999999999999999999 is out of range"),
    (["run", "0000:00:00.0", "-a", "-1"], "CPU -1 is out of range"),
    (["run", "0000:00:00.0", "-p", "100"], "SCHED_FIFO priority 100 is out of range: use 1 to 99"),
    (["run", "0000:00:00.0", "-p", "0"], "SCHED_FIFO priority 0 is out of range"),
    (["run", "0000:00:00.0", "-l", "99999999999999999999"], "loop count 99999999999999999999 is out of range"),
    (["run", "0000:00:00.0", "-D", "nan"], "duration nan s is out of range: use a finite number"),
    (["run", "0000:00:00.0", "-D", "inf"], "duration inf s is out of range"),
    (["run", "0000:00:00.0", "-D", "-1"], "duration -1 s is out of range"),
    (["run", "0000:00:00.0", "--threshold", "nan"], "threshold nan us is out of range"),
    (["run", "0000:00:00.0", "--threshold", "0"], "use more than 0 to"),
    (["run", "0000:00:00.0", "--watchdog", "1e3"], "'1e3' is not a whole number"),
    (["run", "0000:00:00.0", "--watchdog", "600001"], "watchdog 600001 ms is out of range"),
    (["repro", "--model", "--timeout=-inf"], "timeout -inf s is out of range"),
    (["lab", "x86_64", "--timeout", "nan"], "timeout nan s is out of range"),
    (["fleet", "run", "--timeout", "inf"], "timeout inf s is out of range"),
])
def test_numbers_beyond_the_kernels_are_usage_errors(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, out, err = call(capsys, *argv)
    assert code == 2 and needle in err and one_line(err), err
    assert err.startswith("pyvfio: error: ") and "see pyvfio" in err and out == ""
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv", [[], ["bogus"], ["run"], ["profile"], ["report", "a", "b"],
                                  ["lab", "machine", "start"], ["compare", "--nope"]])
def test_argparse_usage_errors_are_one_line_and_exit_2(capsys, argv):
    code, out, err = call(capsys, *argv)
    assert code == 2 and one_line(err) and err.rstrip().endswith("--help"), err


def test_an_unexpected_exception_is_one_line_and_exit_70(capsys, monkeypatch):
    from pyvfio.cli import list_cmd

    def boom(args):
        raise TypeError("a bug\nover two lines")
    monkeypatch.setattr(list_cmd, "run", boom)
    monkeypatch.delenv("PYVFIO_DEBUG", raising=False)
    code, _, err = call(capsys, "list")
    assert code == cli.EXIT_BUG and one_line(err)
    assert "TypeError: a bug over two lines: this is a bug" in err and "PYVFIO_DEBUG=1" in err
    monkeypatch.setenv("PYVFIO_DEBUG", "1")
    code, _, err = call(capsys, "list")
    assert code == cli.EXIT_BUG and "Traceback" in err    # for the one who reports it


def test_a_full_stdout_is_one_line_and_no_traceback_at_exit():
    # Before: a traceback from the interpreter's last flush, and exit 120.
    with open("/dev/full", "w") as full:
        p = subprocess.run([PYVFIO, "repro", "--model", "--ic", "xive"], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == cli.EXIT_IO and one_line(p.stderr), p.stderr
    assert "cannot write to standard output: No space left on device (ENOSPC)" in p.stderr


def test_a_closed_stdout_or_stderr_is_one_line_or_silence_not_a_traceback():
    # `>&-`: Python starts with sys.stdout None; before, AttributeError reached the user
    p = subprocess.run(["sh", "-c", f"{PYVFIO} repro --model --ic xive >&-"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == cli.EXIT_IO and one_line(p.stderr), p.stderr
    assert "cannot write to standard output: Bad file descriptor (EBADF)" in p.stderr
    p = subprocess.run(["sh", "-c", f"{PYVFIO} bogus 2>&-"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""     # the usage error, told to no one


def test_a_closed_pipe_is_quiet_and_not_success():
    p = subprocess.Popen([PYVFIO, "repro", "--model"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()       # the reader went away (`| head` after its lines)
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == cli.EXIT_IO and "Traceback" not in err and err == "", err


def test_ctrl_c_during_the_imports_is_one_line_and_130(capsys, monkeypatch):
    import importlib

    def interrupted(name):
        raise KeyboardInterrupt
    monkeypatch.setattr(importlib, "import_module", interrupted)
    code, out, err = call(capsys, "repro", "--model")
    assert code == 130 and err == "pyvfio: interrupted\n" and out == ""


def test_ctrl_c_soon_after_start_is_one_line_and_130(tmp_path, capsys):
    # 0.1 s after the start: pyvfio's own imports, or reading a result that takes
    # about a second.  (Before the entry point's first line, the interpreter's own
    # start-up, about 30 ms, is beyond any handler.)
    delay = 0.1
    big = tmp_path / "big.json"
    assert main(["repro", "--model", "--ic", "xive", "--json", str(big)]) == 0
    capsys.readouterr()
    doc = json.loads(big.read_text())
    doc["cells"] *= 300
    big.write_text(json.dumps(doc))
    p = subprocess.Popen([PYVFIO, "report", str(big)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    # counted from the entry point's first line (it catches SIGTERM: SigCgt), not from
    # exec: on a loaded machine (load 8 on 2 cores) the interpreter's start-up and the
    # console script's own `from pyvfio.cli import main`, both before any handler, took
    # longer than the delay, and the signal killed it there (-2, a traceback).  The
    # child is looked at once it has exec'd (its command line is pyvfio's): between
    # fork and exec it still has the dispositions of this process.
    until = time.monotonic() + 20
    while time.monotonic() < until and p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                execd = str(big).encode() in f.read()
            with open(f"/proc/{p.pid}/status") as f:
                caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
        except (OSError, StopIteration):
            break
        if execd and caught & (1 << (signal.SIGTERM - 1)):
            break
        time.sleep(0.002)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == "pyvfio: interrupted\n", (p.returncode, err)


@pytest.mark.parametrize("argv", [["profile", "check", "{f}"], ["repro", "--model", "--scenario", "{f}"],
                                  ["compare", "{f}", "{f}"], ["report", "{f}"],
                                  ["report", "{good}", "--baseline", "{f}"]])
def test_a_fifo_where_a_file_is_expected_is_refused_never_read(capsys, tmp_path, argv):
    fifo = tmp_path / "in.toml"
    os.mkfifo(fifo)      # opened without O_NONBLOCK, a read would wait for a writer forever
    good = tmp_path / "good.json"
    assert main(["repro", "--model", "--ic", "xive", "--card-kind", "2.3", "--json", str(good)]) == 0
    capsys.readouterr()
    code, out, err = call(capsys, *[a.format(f=fifo, good=good) for a in argv])
    assert code == 2 and "is a FIFO, not a file" in err and one_line(err), err


def test_a_file_a_non_root_user_cannot_read_is_one_line(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    (secret / "p.toml").write_text("name = 'x'\n")
    call(capsys, "profile", "check", str(tmp_path / "none.toml"))   # the modules imported as root
    os.seteuid(65534)     # nobody, for the read only
    try:
        code, out, err = call(capsys, "profile", "check", str(secret / "p.toml"))
    finally:
        os.seteuid(0)
    assert code == 2 and one_line(err), err
    assert "cannot read profile" in err and "Permission denied (EACCES)" in err


@pytest.mark.parametrize("argv,needle", [
    # an empty path was read as "not given": the default scenario ran, exit 0
    (["repro", "--model", "--scenario", ""], "an empty path where a scenario file is expected"),
    (["compare", "", ""], "an empty path where a result file is expected"),
    (["compare", "x.json", "--split", ""], "--split : give one file and AXIS=A,B"),
    (["profile", "check", ""], "an empty path where a profile is expected"),
])
def test_an_empty_path_is_an_error_not_the_default(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, out, err = call(capsys, *argv)
    assert code == 2 and needle in err and one_line(err), err
