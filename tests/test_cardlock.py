"""The card lock in a folder other users may write (PYVFIO_LOCK_DIR): never through a
link, never into a file pyvfio did not make, never in a folder others could swap
things in.  Each attack is planted in a temporary folder; tests run as root in CI."""

import os
import subprocess
import sys

import pytest

from pyvfio.checkout import CHECKOUT
from pyvfio import cardlock
from pyvfio.errors import PyvfioError, RefusedError
from pyvfio.errors import EXIT

BDF = "0000:02:05.0"
NAME = f"card-{BDF}.lock"
NOBODY = 65534
REPO = str(CHECKOUT)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "locks"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def victim(tmp_path):
    v = tmp_path / "victim"
    v.write_text("precious\n")
    return v


def take(folder):
    with cardlock.card_lock(BDF, str(folder)):
        pass


def one_line(exc):
    text = str(exc)
    assert "\n" not in text and ": " in text, text
    return text


def test_a_fresh_folder_and_file_are_made_and_hold_our_pid(tmp_path):
    d = tmp_path / "new" / "locks"
    with cardlock.card_lock(BDF, str(d)):
        with open(d / NAME) as f:
            assert f.read() == f"{os.getpid()}\n"
    assert oct(os.stat(d).st_mode & 0o7777) == oct(0o755)
    assert oct(os.stat(d / NAME).st_mode & 0o777) == oct(0o644)


def test_a_symlink_planted_as_the_lock_file_is_refused_and_its_target_untouched(folder, victim):
    os.symlink(victim, folder / NAME)
    before = os.stat(victim)
    with pytest.raises(RefusedError, match="symbolic link") as exc:
        take(folder)
    one_line(exc.value)
    assert victim.read_text() == "precious\n"
    assert os.stat(victim).st_mtime_ns == before.st_mtime_ns


def test_a_dangling_symlink_is_not_created_through(folder, tmp_path):
    target = tmp_path / "made-by-root"
    os.symlink(target, folder / NAME)
    with pytest.raises(RefusedError, match="symbolic link"):
        take(folder)
    assert not target.exists()


def test_a_hard_link_to_another_file_is_refused(folder, victim):
    os.link(victim, folder / NAME)
    with pytest.raises(RefusedError, match="2 hard links") as exc:
        take(folder)
    one_line(exc.value)
    assert victim.read_text() == "precious\n"


def test_a_fifo_or_device_planted_is_refused_without_opening_it(folder):
    os.mkfifo(folder / NAME)        # opening it for reading would block forever
    with pytest.raises(RefusedError, match="not a regular file"):
        take(folder)


def test_a_file_owned_by_another_user_is_only_refused(folder):
    (folder / NAME).write_text("theirs\n")
    os.chown(folder / NAME, NOBODY, NOBODY)
    if os.stat(folder / NAME).st_uid != NOBODY:
        pytest.skip("needs root to chown")
    with pytest.raises(RefusedError, match=f"owned by uid {NOBODY}"):
        take(folder)
    assert (folder / NAME).read_text() == "theirs\n"


def test_an_existing_file_of_ours_is_reused_and_keeps_its_mode(folder):
    (folder / NAME).write_text("1\n")
    os.chmod(folder / NAME, 0o600)
    with cardlock.card_lock(BDF, str(folder)):
        assert (folder / NAME).read_text() == f"{os.getpid()}\n"
    assert os.stat(folder / NAME).st_mode & 0o777 == 0o600    # never chmod-ed


@pytest.mark.parametrize("mode, why", [(0o775, "writable by its group"), (0o777, "writable by others")])
def test_a_folder_writable_by_others_without_sticky_is_refused(folder, mode, why):
    os.chmod(folder, mode)
    with pytest.raises(RefusedError, match=why) as exc:
        take(folder)
    assert "1777" in one_line(exc.value)
    assert not (folder / NAME).exists()
    assert os.stat(folder).st_mode & 0o7777 == mode          # not chmod-ed either


def test_a_sticky_world_writable_folder_like_tmp_is_fine(folder):
    os.chmod(folder, 0o1777)
    take(folder)
    assert (folder / NAME).exists()


def test_a_folder_owned_by_another_user_is_refused(folder):
    os.chown(folder, NOBODY, NOBODY)
    if os.stat(folder).st_uid != NOBODY:
        pytest.skip("needs root to chown")
    with pytest.raises(RefusedError, match=f"owned by uid {NOBODY}"):
        take(folder)
    assert not (folder / NAME).exists()


def test_a_lock_folder_that_is_a_symlink_is_refused(tmp_path, folder):
    link = tmp_path / "link"
    os.symlink(folder, link)
    with pytest.raises(RefusedError, match="symbolic link"):
        take(link)


def test_a_second_holder_is_refused_with_the_first_ones_pid(folder):
    with cardlock.card_lock(BDF, str(folder)):
        with pytest.raises(RefusedError, match=f"in use by another pyvfio run \\(pid {os.getpid()}\\)"):
            take(folder)
    take(folder)                     # released


def test_prepare_never_chmods_or_follows_what_is_there(folder, victim):
    os.symlink(victim, folder / NAME)
    os.chmod(victim, 0o600)
    cardlock.prepare(BDF, str(folder))
    assert os.stat(victim).st_mode & 0o777 == 0o600 and victim.read_text() == "precious\n"
    os.unlink(folder / NAME)
    cardlock.prepare(BDF, str(folder))
    assert os.stat(folder / NAME).st_mode & 0o777 == 0o644


def test_run_through_the_cli_refuses_a_planted_symlink_in_one_line(folder, victim):
    """As a user would meet it: `pyvfio run BDF` with a shared PYVFIO_LOCK_DIR."""
    devices = sorted(os.listdir("/sys/bus/pci/devices")) if os.path.isdir("/sys/bus/pci/devices") else []
    if not devices:
        pytest.skip("no PCI device on this machine to name")
    bdf = devices[0]
    os.symlink(victim, folder / f"card-{bdf}.lock")
    env = {**os.environ, "PYVFIO_LOCK_DIR": str(folder)}
    env.pop("PYVFIO_SYSROOT", None)
    r = subprocess.run([sys.executable, "-m", "pyvfio", "run", bdf, "-l", "1", "-q"],
                       capture_output=True, text=True, env=env, timeout=60, cwd=REPO)
    assert r.returncode == EXIT['REFUSED'], r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyvfio: error: ") and "symbolic link" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert victim.read_text() == "precious\n"


def test_a_read_only_folder_says_what_to_do(folder, monkeypatch):
    import errno

    real = os.open

    def rofs(path, flags, *a, **kw):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(path, flags, *a, **kw)
    monkeypatch.setattr(cardlock.os, "open", rofs)
    with pytest.raises(PyvfioError, match="EROFS.*PYVFIO_LOCK_DIR") as exc:
        take(folder)
    one_line(exc.value)


# -- the lab's shared locks: its cache (PYVFIO_CACHE may name a shared folder) and
# the VM slots in /tmp; opened "w" or "a" they followed a planted link as root, and
# "w" truncated its target

def test_a_link_planted_as_the_lab_cache_lock_is_refused_and_its_target_untouched(tmp_path, victim, monkeypatch):
    from pyvfio.lab import session
    monkeypatch.setattr(session, "require_root", lambda: None)
    monkeypatch.setattr(session, "_prepare", lambda cfg, root: "prepared")   # nothing downloaded
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ".lock").symlink_to(victim)
    with pytest.raises(RefusedError) as exc:
        session.prepare(None, cache)
    assert "symbolic link" in one_line(exc.value)
    assert victim.read_text() == "precious\n"
    (cache / ".lock").unlink()
    assert session.prepare(None, cache) == "prepared"          # the lock made afresh
    assert (cache / ".lock").is_file() and not (cache / ".lock").is_symlink()


def test_a_link_or_fifo_planted_as_a_vm_slot_is_refused_without_hanging(tmp_path, victim, monkeypatch):
    from pyvfio.lab import session
    slot = tmp_path / "pyvfio-lab-vm.lock"
    monkeypatch.setattr(session, "VM_LOCK", str(slot))
    slot.symlink_to(victim)
    with pytest.raises(RefusedError) as exc:
        session.acquire_slot()
    assert "symbolic link" in one_line(exc.value) and victim.read_text() == "precious\n"
    slot.unlink()
    os.mkfifo(slot)
    with pytest.raises(RefusedError) as exc:
        session.acquire_slot()
    assert "not a regular file" in one_line(exc.value)
    slot.unlink()
    lock = session.acquire_slot()                              # a slot of its own
    lock.close()
    assert slot.is_file()
