"""One SSH connection per lab machine and user, shared by every command to it
(OpenSSH's ControlMaster).  Under TCG a new connection's key exchange costs the
guest ~1.2 s of CPU; a session on the shared connection ~0.1 s (measured on the
x86_64 machine), and the tests and a fleet run send hundreds.

The master is started on its own (`-M -N -f`, stdio on /dev/null, a session of its
own): a master forked by a ControlPersist client whose output is captured would hold
the caller's pipes open, and one in the caller's process group would die of the
caller's Ctrl-C before its teardown commands ran.  It is checked (`-O check`, a
local call) under a lock before each use; it ends with its machine's connection
(QEMU gone) or at stop (`-O exit`).  Where it cannot be had, a command connects on
its own, as it did before."""

import fcntl
import hashlib
import os
import pathlib
import subprocess
import tempfile


def _folder():
    """A short folder of ours: a unix socket's path has 108 bytes, and ssh adds a
    16-character suffix while it makes one; a cache path can be longer than that."""
    d = pathlib.Path(tempfile.gettempdir()) / f"pyvfio-ssh-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    st = d.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None      # not ours alone: no shared connection rather than a leaky one
    return d


def _prefix(machine_dir):
    return hashlib.sha1(str(machine_dir).encode()).hexdigest()[:12]


def options(ssh, target, machine_dir, user):
    """The ssh options that send a command over the shared connection to target
    (user@host), the connection made first if it is not there; [] if it cannot be.
    ssh: the argv of ssh up to the target (options, key, port)."""
    folder = _folder()
    if folder is None:
        return []
    sock = folder / f"{_prefix(machine_dir)}-{user}"
    use = ["-o", f"ControlPath={sock}", "-o", "ControlMaster=no"]
    with open(f"{sock}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _alive(ssh, target, sock):
            return use
        sock.unlink(missing_ok=True)     # a master killed with SIGKILL leaves its socket
        try:
            p = subprocess.run([*ssh, "-o", f"ControlPath={sock}", "-M", "-N", "-f", target],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True, timeout=60)
        except subprocess.TimeoutExpired:
            return []
        return use if p.returncode == 0 else []


def _alive(ssh, target, sock):
    if not sock.exists():
        return False
    try:
        p = subprocess.run([*ssh, "-o", f"ControlPath={sock}", "-O", "check", target],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False     # a master that does not answer is replaced
    return p.returncode == 0


def close(ssh, host, machine_dir):
    """Ends every shared connection to the machine (each user's) and removes its files."""
    folder = _folder()
    if folder is None:
        return
    for sock in folder.glob(f"{_prefix(machine_dir)}-*"):
        if sock.suffix == ".lock":
            sock.unlink(missing_ok=True)
            continue
        user = sock.name.split("-", 1)[1]
        try:
            subprocess.run([*ssh, "-o", f"ControlPath={sock}", "-O", "exit", f"{user}@{host}"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            pass         # it ends with its connection: the machine is being stopped
        sock.unlink(missing_ok=True)
