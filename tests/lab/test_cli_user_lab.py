"""`pyvfio` as a user types it in the guest: on PATH, and its clean failures on a
real card (a read-only lock folder, a results path that cannot be written), each
one line, a non-zero exit, no traceback, and the card untouched (the next run works)."""

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab


def pyvfio(*args, env=None):
    p = subprocess.run([sys.executable, "-m", "pyvfio", *args], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, **(env or {})))
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_pyvfio_is_on_path():
    assert shutil.which("pyvfio"), os.environ.get("PATH")
    p = subprocess.run(["pyvfio", "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("pyvfio "), p.stdout + p.stderr


def one_line(p):
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture
def readonly_run(tmp_path):
    """A read-only tmpfs over the lock folder, as on a host whose /run is read-only."""
    folder = "/run/pyvfio"
    os.makedirs(folder, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "none", folder], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", folder], check=True)


def test_run_with_a_read_only_lock_folder_is_one_line(one_card, readonly_run):
    card = one_card
    p = pyvfio("run", card["bdf"], "-l", "10", "-q")
    assert p.returncode == 2
    line = one_line(p)
    assert "card lock" in line and "EROFS" in line and "PYVFIO_LOCK_DIR" in line, line
    assert "warning" not in p.stderr  # the not-pinned warning does not precede a refusal


def test_lock_dir_can_be_moved(one_card, readonly_run, tmp_path):
    card = one_card
    p = pyvfio("run", card["bdf"], "-l", "10", "-q", env={"PYVFIO_LOCK_DIR": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert (tmp_path / f"card-{card['bdf']}.lock").exists()


@pytest.mark.parametrize("target, code", [
    ("/nonexistent-folder/r.json", "ENOENT"),
    ("READONLY/r.json", "EROFS"),
    ("/", "it is a folder, not a regular file"),
])
def test_unwritable_results_refused_before_the_run(one_card, target, code, tmp_path):
    card = one_card
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "none", str(ro)], check=True)
    try:
        p = pyvfio("run", card["bdf"], "-l", "10", "-q", "--json", target.replace("READONLY", str(ro)))
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    assert p.returncode == 2
    line = one_line(p)
    assert line.startswith("pyvfio: error: cannot write --json to") and code in line, line
    assert "delivered" not in p.stdout  # refused before anything ran (the card is then
    # used by the next test: a card left armed or locked would fail it)


def test_the_card_still_runs_after_the_refusals(one_card):
    """(Runs last in this file.)  Nothing above left the card armed, masked or locked."""
    p = pyvfio("run", one_card["bdf"], "-l", "100", "-q")
    assert p.returncode == 0 and "verdict: ok" in p.stdout, p.stdout + p.stderr
