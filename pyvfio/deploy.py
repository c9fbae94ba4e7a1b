"""Install pyvfio on a machine the way a user does (docs/usage.md "On your lab machines"):
an sdist of this checkout and the one pure-Python dependency Debian lacks
(ioctl-opt) are copied over, a venv is made with the system's site packages
(Debian's python3-cffi and python3-psutil: no ppc64le psutil wheel exists), a wheel
is built there (the cffi extension compiles against the machine's own
<linux/vfio.h>) and pip installs it, offline.

Any transport works: `run(cmd) -> (rc, stdout)` and `put(local, remote)` are
callables (the lab machines' SSH, labgrid's SSHDriver in the fleet).  An install
with the same stamp (a hash of the sdist's sources) is left as it is.
"""
import hashlib
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile

from .cardlock import waiting
from .checkout import CHECKOUT
from .errors import PyvfioError

DEFAULT_WORKDIR = "/opt/pyvfio"
# Pure-Python wheels from PyPI that the machine's Debian does not ship.
WHEELS = ["ioctl-opt>=1.3"]


class DeployError(PyvfioError):
    exit_code = 3


def _dist_cache():
    from .lab import cache

    return cache.root() / "dist"


def _sources():
    """The files an sdist of this checkout is made from: git's tracked and untracked,
    not ignored (so an edit is deployed before it is committed)."""
    p = subprocess.run(["git", "-C", str(CHECKOUT), "ls-files", "-z", "--cached", "--others",
                        "--exclude-standard"], capture_output=True)
    if p.returncode != 0:
        raise DeployError("cannot list the checkout's files (git ls-files failed)",
                          "deploy from a git checkout of pyvfio, or pass an sdist")
    return sorted(f for f in p.stdout.decode().split("\0") if f and (CHECKOUT / f).is_file())


def source_stamp(files=None):
    h = hashlib.sha256()
    for f in files or _sources():
        h.update(f.encode() + b"\0" + (CHECKOUT / f).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_dist(dest=None):
    """(sdist path, [wheel paths], stamp) for this checkout, cached by stamp; under a
    lock, so that deploys running at once (two machines booting) build it once."""
    files = _sources()
    stamp = source_stamp(files)
    root = pathlib.Path(dest or _dist_cache())
    root.mkdir(parents=True, exist_ok=True)
    with waiting(root / ".lock", "lock the dist cache"):
        return _sdist(files, root / stamp), wheelhouse(), stamp


def _sdist(files, folder):
    sdists = sorted(folder.glob("pyvfio-*.tar.gz"))
    if not sdists:
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="pyvfio-sdist-"))
        try:
            src = tmp / "src"
            for f in files:
                (src / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(CHECKOUT / f, src / f)
            p = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp / "out")],
                               cwd=src, capture_output=True, text=True)
            if p.returncode != 0:
                raise DeployError("building the sdist failed", p.stderr.strip().splitlines()[-1:][0])
            folder.mkdir(parents=True, exist_ok=True)
            for s in (tmp / "out").glob("*.tar.gz"):
                shutil.move(str(s), folder / s.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        sdists = sorted(folder.glob("pyvfio-*.tar.gz"))
    return sdists[-1]


def wheelhouse():
    """The pure-Python wheels the machine installs from (pip download once, cached)."""
    folder = _dist_cache() / "wheels"
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        folder.mkdir(parents=True, exist_ok=True)
        p = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            "--only-binary", ":all:", "-d", str(folder), *WHEELS],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise DeployError("pip download of " + ", ".join(WHEELS) + " failed",
                              (p.stderr.strip().splitlines() or ["no network to PyPI?"])[-1])
        wheels = sorted(folder.glob("*.whl"))
    return wheels


def deploy(run, put, *, workdir=DEFAULT_WORKDIR, sdist=None, link=None):
    """Install pyvfio under workdir on the machine behind run/put; returns the remote
    path of its `pyvfio`.  link: also symlink it there (e.g. /usr/local/bin/pyvfio)."""
    if sdist is None:
        sdist, wheels, stamp = build_dist()
    else:
        sdist = pathlib.Path(sdist)
        wheels = wheelhouse()
        stamp = hashlib.sha256(sdist.read_bytes()).hexdigest()[:16]
    w = shlex.quote(workdir)
    exe = f"{workdir}/venv/bin/pyvfio"
    rc, out = run(f"cat {w}/stamp 2>/dev/null && {shlex.quote(exe)} --version")
    if rc == 0 and out.split()[:1] == [stamp]:
        _link(run, exe, link)
        return exe
    rc, out = run(f"rm -rf {w}/dist {w}/wheels && mkdir -p {w}/dist {w}/wheels")
    if rc != 0:
        raise DeployError(f"cannot make {workdir} on the machine", out.strip()[-200:])
    for f in [sdist, *wheels]:
        put(str(f), f"{workdir}/dist/{f.name}")
    sd = f"{w}/dist/{shlex.quote(sdist.name)}"
    pip = f"{w}/venv/bin/pip --disable-pip-version-check -q"
    steps = [
        # The system's site packages: Debian's cffi (the extension's backend) and psutil.
        f"rm -rf {w}/venv && python3 -m venv --system-site-packages {w}/venv",
        # The machine's arch wheel, built there against its own <linux/vfio.h>.
        f"{pip} wheel --no-index --no-build-isolation --no-deps -w {w}/wheels {sd}",
        f"{pip} install --no-index --find-links {w}/dist --find-links {w}/wheels pyvfio",
        f"{shlex.quote(exe)} --version",
        f"echo {stamp} > {w}/stamp",
    ]
    for cmd in steps:
        rc, out = run(cmd + " 2>&1")
        if rc != 0:
            last = [line for line in out.strip().splitlines() if line.strip()][-3:]
            raise DeployError(f"installing pyvfio failed at `{cmd.split(' && ')[-1][:80]}`",
                              " / ".join(last) or f"exit {rc}")
    _link(run, exe, link)
    return exe


def _link(run, exe, link):
    if link:
        rc, out = run(f"ln -sfn {shlex.quote(exe)} {shlex.quote(link)}")
        if rc != 0:
            raise DeployError(f"cannot link {link} to {exe}", out.strip()[-200:])


def deploy_machine(m, **kw):
    """deploy() onto a lab machine (machine.py's LabMachine), pyvfio on every user's PATH."""
    def run(cmd):
        p = m.run(cmd, timeout=900)
        return p.returncode, p.stdout + p.stderr

    return deploy(run, m.put, link="/usr/local/bin/pyvfio", **kw)
