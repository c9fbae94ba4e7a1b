"""The one writer of result files (pyvfio/results.py): atomic, never through a link
or into a device, FIFO or folder, `-` for standard output, no output that is an
input, and a failed write that keeps what was measured.  Through the functions and
through the commands as a user types them."""

import errno
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from pyvfio.checkout import CHECKOUT
from pyvfio import results
from pyvfio.errors import PyvfioError, UsageError
from test_host_cli import one_line_error   # one wording of "one line, no traceback"
from pyvfio.errors import EXIT

REPO = str(CHECKOUT)
REPORT = os.path.join(REPO, "tests", "fixtures", "reports", "lab-ppc64le-seed.json")
OTHER_REPORT = os.path.join(REPO, "tests", "fixtures", "reports", "lab-ppc64le-seed-vfio.json")
MODEL_CELL = ["repro", "--model", "--ic", "xive", "--card-kind", "non-2.3", "--policy", "lazy", "--unmask", "ioctl"]


def pyvfio(*args, stdout=subprocess.PIPE, env=None):
    return subprocess.run([sys.executable, "-m", "pyvfio", *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=60, cwd=REPO, env={**os.environ, **(env or {})})


def listing(folder):
    return sorted(os.listdir(folder))


@pytest.fixture
def victim(tmp_path):
    v = tmp_path / "victim.json"
    v.write_text("precious\n")
    return v


# --- the writer itself ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "dir", "symlink", "dangling"])
def test_write_atomic_refuses_what_is_not_a_regular_file(tmp_path, victim, kind):
    path = tmp_path / "out"
    {"fifo": lambda: os.mkfifo(path), "dir": lambda: path.mkdir(),
     "symlink": lambda: os.symlink(victim, path),
     "dangling": lambda: os.symlink(tmp_path / "nowhere", path)}[kind]()
    before = listing(tmp_path)
    with pytest.raises(UsageError, match="not a regular file") as exc:
        results.write_atomic(str(path), "data", keep=False)
    assert "\n" not in str(exc.value)
    with pytest.raises(UsageError, match="not a regular file"):
        results.check_writable(str(path))
    assert listing(tmp_path) == before and victim.read_text() == "precious\n"
    assert not (tmp_path / "nowhere").exists()


def test_a_device_node_is_refused():
    with pytest.raises(UsageError, match="a character device, not a regular file"):
        results.check_outputs([("--json", "/dev/null")])


def test_dash_is_standard_output(capsys):
    results.write_atomic("-", "hello\n")
    assert capsys.readouterr().out == "hello\n"
    assert results.check_outputs([("--json", "-"), ("--svg", None)]) is True
    with pytest.raises(UsageError, match="--json and --svg both name -"):
        results.check_outputs([("--json", "-"), ("--svg", "-")])


def test_an_empty_path_is_refused():
    with pytest.raises(UsageError, match="empty path"):
        results.check_outputs([("--json", "")])
    with pytest.raises(UsageError, match="empty path"):
        results.write_atomic("", "x")


def test_an_output_that_is_an_input_or_another_output_is_refused(tmp_path, victim):
    with pytest.raises(UsageError, match="--html .* is also the result file"):
        results.check_outputs([("--html", str(victim))], [("the result file", str(victim))])
    os.link(victim, tmp_path / "hard")                 # same inode, another name
    with pytest.raises(UsageError, match="is also the result file"):
        results.check_outputs([("--html", str(tmp_path / "hard"))], [("the result file", str(victim))])
    out = str(tmp_path / "new.json")
    with pytest.raises(UsageError, match="--hgrm .* is also the --json output"):
        results.check_outputs([("--json", out), ("--hgrm", os.path.join(str(tmp_path), ".", "new.json"))])
    assert not os.path.exists(out)


def test_a_full_disk_keeps_what_was_measured_and_says_where(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(results.os, "fsync", full)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    os.mkdir(tmp_path / "tmp")
    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(PyvfioError, match="ENOSPC") as exc:
        results.write_json(str(tmp_path / "r.json"), {"cells": [1, 2, 3]})
    text = str(exc.value)
    kept = text.split("kept in ")[1]
    assert "\n" not in text and kept.startswith(str(tmp_path / "tmp"))
    monkeypatch.undo()
    with open(kept) as f:
        assert json.load(f) == {"cells": [1, 2, 3]}
    assert listing(tmp_path) == ["tmp"]                 # no temp file, no partial r.json


def test_write_outputs_writes_the_rest_after_one_fails(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError, match="FIFO"):
        results.write_outputs([(str(tmp_path / "fifo"), "a", "write"), (str(tmp_path / "b"), lambda: "b", "write")])
    assert (tmp_path / "b").read_text() == "b"


# --- through the commands -------------------------------------------------------------------

@pytest.fixture
def report_copy(tmp_path):
    p = tmp_path / "a.json"
    shutil.copy(REPORT, p)
    return p


def test_report_html_onto_its_own_input_is_refused(report_copy):
    before = report_copy.read_bytes()
    one_line_error(pyvfio("report", str(report_copy), "--html", str(report_copy)), "is also the result file")
    assert report_copy.read_bytes() == before


def test_compare_json_onto_an_input_is_refused(report_copy):
    before = report_copy.read_bytes()
    one_line_error(pyvfio("compare", str(report_copy), OTHER_REPORT, "--json", str(report_copy)), "is also A")
    assert report_copy.read_bytes() == before


def test_repro_json_and_svg_onto_one_file_is_refused_before_any_cell(tmp_path):
    out = str(tmp_path / "x")
    r = pyvfio(*MODEL_CELL, "--json", out, "--svg", out)
    one_line_error(r, "--svg", "is also the --json output")
    assert r.stdout == "" and listing(tmp_path) == []


@pytest.mark.parametrize("kind", ["fifo", "device", "dir", "symlink", "empty"])
def test_report_refuses_an_output_that_is_not_a_regular_file(report_copy, tmp_path, victim, kind):
    out = tmp_path / "out.html"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "dir":
        out.mkdir()
    elif kind == "symlink":
        os.symlink(victim, out)
    target = {"device": "/dev/null", "empty": ""}.get(kind, str(out))
    before = listing(tmp_path)
    r = pyvfio("report", str(report_copy), "--html", target)     # a FIFO would hang a reader
    one_line_error(r, "empty path" if kind == "empty" else "not a regular file")
    assert listing(tmp_path) == before and victim.read_text() == "precious\n"


def test_repro_json_dash_is_standard_output_and_the_summary_goes_to_stderr(tmp_path):
    r = pyvfio(*MODEL_CELL, "--json", "-")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kind"] == "repro"
    assert "1 cell(s)" in r.stderr
    assert not os.path.exists(os.path.join(REPO, "-"))


def test_repro_json_to_a_full_stdout_keeps_the_cells(tmp_path):
    with open("/dev/full", "w") as full:
        r = pyvfio(*MODEL_CELL, "--json", "-", stdout=full, env={"TMPDIR": str(tmp_path)})
    assert r.returncode == EXIT['IO'] and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert "1 cell(s)" in lines[-2]                  # the summary, on stderr as stdout is the JSON
    line = lines[-1]
    assert line.startswith("pyvfio: error: cannot write results to standard output") and "ENOSPC" in line
    kept = line.split("kept in ")[1]
    assert kept.startswith(str(tmp_path))
    with open(kept) as f:
        assert json.load(f)["kind"] == "repro"


def test_a_full_disk_at_the_end_of_report_keeps_the_page(report_copy, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        with open(disk / "filler", "wb") as f:
            try:
                f.write(b"x" * 65536)
            except OSError:
                pass
        keep = tmp_path / "keep"
        keep.mkdir()
        r = pyvfio("report", str(report_copy), "--html", str(disk / "page.html"), env={"TMPDIR": str(keep)})
        line = one_line_error(r, "ENOSPC", "kept in")
        assert "1 cell" in r.stdout or "cell" in r.stdout          # the summary came first
        assert not (disk / "page.html").exists() and not glob.glob(str(disk / ".pyvfio-*"))
        kept = line.split("kept in ")[1]
        with open(kept) as f:
            assert "<html" in f.read()
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize("args, words", [
    (["--json", "{out}", "--hgrm", "{out}"], ("--hgrm", "is also the --json output")),
    (["--json", ""], ("empty path",)),
    (["--hgrm", "/dev/null"], ("character device",)),
    (["--json", "-", "--hgrm", "-"], ("both name -",)),
])
def test_run_refuses_bad_outputs_before_the_card_is_touched(tmp_path, args, words):
    out = str(tmp_path / "x")
    r = pyvfio("run", "0000:00:00.0", "-l", "1", "-q", *[a.format(out=out) for a in args])
    one_line_error(r, *words)
    assert listing(tmp_path) == []


def test_a_log_is_never_opened_through_a_link_or_on_a_fifo(tmp_path, victim):
    os.symlink(victim, tmp_path / "link.log")
    os.mkfifo(tmp_path / "fifo.log")
    for name, why in (("link.log", "symbolic link"), ("fifo.log", "FIFO")):
        with pytest.raises(UsageError, match=why):
            results.open_log(str(tmp_path / name))
    assert victim.read_text() == "precious\n"
    (tmp_path / "old.log").write_text("old\n")
    with results.open_log(str(tmp_path / "old.log"), append=True) as f:
        f.write(b"new\n")
    with results.open_log(str(tmp_path / "fresh.log")) as f:
        f.write(b"x")
    assert (tmp_path / "old.log").read_text() == "old\nnew\n" and (tmp_path / "fresh.log").read_text() == "x"
