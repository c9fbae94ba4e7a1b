"""Lab machines: Debian installs (image.py) booted in QEMU (TCG, the lab's machine
models and cards from qemu.py) and reached over SSH on 127.0.0.1, as a user's lab
machine is.  The cards start on their own host drivers; vfio-pci is not loaded.

A machine lives beyond the process that starts it (`pyvfio lab machine start`
returns once sshd answers).  Its state is `<cache>/machines/<name>/machine.json`;
QEMU itself holds the VM slot (session.acquire_slot: the flock's file is passed
to QEMU), so the slot is free exactly when QEMU is gone.  A machine started with
an owner (a test session) dies with it (PR_SET_PDEATHSIG) and, should it not,
`list_machines` finds the owner gone and stops it; one whose QEMU died is cleaned.
"""
import ctypes
import dataclasses
import json
import os
import pathlib
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from ..cardlock import waiting
from ..errors import UsageError, os_error
from ..results import check_writable, write_atomic
from . import cache, image, machine_keys, progress, qemu, session, sshmux
from .config import CARDS, PROFILES, LabConfig
from .errors import LabError

SSH_HOST = "127.0.0.1"
# Boot to sshd under TCG; ppc64le boots slower.
BOOT_TIMEOUT = {"x86_64": 180, "ppc64le": 420}
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6"]


def machines_dir(cache_root=None):
    return pathlib.Path(cache_root or cache.root()) / "machines"


@dataclasses.dataclass
class LabMachine:
    name: str
    arch: str
    kernel: str             # series (6.1, 6.12)
    release: str            # uname -r
    ic: str
    ssh_host: str
    ssh_port: int
    user: str
    key: str
    cards: list             # [{card, bdf, profile, driver, bridge, qdev_id}]
    pid: int                # QEMU's
    monitor_path: str
    owner: int = None       # the pid the machine dies with, None when detached
    bridge: bool = False
    dir: str = None
    console: str = None
    started: float = None
    boot_seconds: float = None
    ready: bool = False     # sshd answered and the cards were found
    starter: int = None     # the pid booting it, until ready

    # --- reaching it -------------------------------------------------------------
    def _ssh(self):
        return ["ssh", *SSH_OPTS, "-i", self.key, "-p", str(self.ssh_port)]

    def _shared(self, user):
        """The options that take the machine's shared connection for user (sshmux)."""
        return sshmux.options(self._ssh(), f"{user}@{self.ssh_host}", self.dir, user) if self.dir else []

    def ssh_args(self, user=None, shared=True):
        """The argv prefix of ssh to this machine (append the remote command); shared:
        over the machine's one connection for that user (sshmux), made on first use."""
        user = user or self.user
        return ["ssh", *(self._shared(user) if shared else []), *self._ssh()[1:], f"{user}@{self.ssh_host}"]

    def run(self, cmd, timeout=120, check=False, user=None, input=None):
        """Run a shell command line on the machine; CompletedProcess with text output."""
        argv = self.ssh_args(user) + ["--", cmd]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"machine {self.name}", f"`{cmd}` took longer than {timeout} s",
                           (exc.stderr or b"").decode(errors="replace")[-800:]
                           if isinstance(exc.stderr, bytes) else (exc.stderr or ""))
        if check and p.returncode != 0:
            raise LabError(f"machine {self.name}", f"`{cmd}` exited {p.returncode}",
                           (p.stdout + p.stderr)[-1500:])
        return p

    def _scp(self, src, dst, recursive=False):
        argv = ["scp", *SSH_OPTS, *self._shared(self.user), "-q", "-i", self.key, "-P", str(self.ssh_port)]
        argv += ["-r"] if recursive else []
        p = subprocess.run(argv + [src, dst], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise LabError(f"machine {self.name}", f"copy {src} -> {dst} failed", p.stderr.strip()[-800:])

    def put(self, local, remote):
        """Copy a local file or folder to the machine."""
        self._scp(str(local), f"{self.user}@{self.ssh_host}:{remote}", recursive=os.path.isdir(local))

    def get_file(self, remote, local):
        """Copy a file or folder from the machine to `local` (a new or regular file, or
        a folder to copy into, as scp).  scp writes its destination in place and
        through a link: it writes into a temporary folder beside it instead, and the
        copy is renamed into place after the one writer's checks (a link, FIFO,
        device or folder there is refused, never written through)."""
        local = str(local)
        if os.path.isdir(local) and not os.path.islink(local):
            local = os.path.join(local, os.path.basename(remote.rstrip("/")) or "copy")
        check_writable(local, "copy to")
        tmp = tempfile.mkdtemp(prefix=".pyvfio-copy-", dir=os.path.dirname(os.path.abspath(local)))
        try:
            self._scp(f"{self.user}@{self.ssh_host}:{remote}", os.path.join(tmp, "copy"), recursive=True)
            os.replace(os.path.join(tmp, "copy"), local)
        except OSError as exc:
            raise os_error("copy to", local, exc) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def monitor(self, cmd, timeout=10):
        """One QEMU human-monitor command (e.g. `device_del card1`); its output."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.monitor_path)
            _read_prompt(s)
            s.sendall(cmd.encode() + b"\n")
            out = _read_prompt(s)
        lines = out.replace("\r", "").splitlines()
        # QEMU echoes the command line first.
        return "\n".join(line for line in lines[1:] if not line.startswith("(qemu)")).strip()

    def alive(self):
        return _qemu_alive(self.pid, self.dir)

    def to_json(self):
        return dataclasses.asdict(self)


def _read_prompt(s):
    buf = b""
    while not buf.endswith(b"(qemu) "):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


# --- starting ------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind((SSH_HOST, 0))
        return s.getsockname()[1]


def _name_taken(name, cache_root):
    return (machines_dir(cache_root) / name).exists()


def _pick_name(arch, cache_root):
    n = 1
    while _name_taken(f"{arch}-{n}", cache_root):
        n += 1
    return f"{arch}-{n}"


def _check_name(name):
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise UsageError(f"bad machine name {name!r}", "use letters, digits, '-', '_' and '.'")


def command(cfg, qemu_bin, vmlinux, initrd, overlay, port, monitor_path, console, bridge):
    """The QEMU command line of a machine: the lab's machine model and cards
    (qemu.machine_args) plus a disk and a management NIC that is no test card model."""
    x86 = cfg.arch == "x86_64"
    append = ["root=/dev/vda", "rw", "quiet", "fsck.mode=skip", "panic=-1",
              "systemd.show_status=0", "console=ttyS0" if x86 else "console=hvc0"]
    if x86:
        append += ["intel_iommu=on", qemu.X86_TIMER]
    # The disk and NIC sit on the default bus; on pseries that keeps them off the
    # cards' PHB (and so out of the cards' IOMMU group).
    bus = "" if x86 else ",bus=pci.0"
    cmd = [qemu_bin, "-nodefaults", "-display", "none", "-no-reboot",
           "-smp", "1", "-m", "1G", "-accel", "tcg",
           "-kernel", str(vmlinux), "-initrd", str(initrd), "-append", " ".join(append),
           "-drive", f"file={overlay},if=none,id=disk,format=qcow2",
           "-device", f"virtio-blk-pci,drive=disk{bus}",
           # restrict=on: the guest reaches nothing; only the forward reaches it, on
           # 127.0.0.1 only.
           "-netdev", f"user,id=mgmt,restrict=on,hostfwd=tcp:{SSH_HOST}:{port}-:22",
           "-device", f"virtio-net-pci,netdev=mgmt{bus}",
           "-serial", f"file:{console}",
           "-monitor", f"unix:{monitor_path},server=on,wait=off"]
    return cmd + qemu.machine_args(cfg, bridge=bridge, ids=True)


def _set_pdeathsig():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def prepare(arch, cache_root=None):
    """The machines' key and arch's image, built if missing: (key path, image folder,
    image info).  The image is built under its own lock, not the cache's: a busybox
    lab boot need not wait minutes for an image another process is building (the
    test session builds both arches' images in the background: tests/conftest.py)."""
    LabConfig(arch)    # an unknown arch is one line
    session.require_root()
    cache_root = pathlib.Path(cache_root or cache.root()).resolve()
    cache_root.mkdir(parents=True, exist_ok=True)
    with waiting(cache_root / ".lock", "lock the lab cache"):
        key, pub = machine_keys.ensure(cache_root)
        kpkgs = image.kernel_packages(arch, cache_root)   # the lab's kernel artefacts
    with waiting(cache_root / f".lock-image-{arch}", "lock the lab cache"):
        folder, info = image.prepare(arch, cache_root, pub, kpkgs)
    return key, folder, info


def start(arch, cards=("edu",), kernel=None, ic=None, name=None, bridge=False, owner=None,
          cache_root=None, timeout=None):
    """Boot a machine and wait for its sshd.  owner: a pid whose death stops it
    (None: it runs until `stop`).  Returns the LabMachine."""
    session.require_root()
    cfg = LabConfig(arch, kernel=kernel, cards=tuple(cards), ic=ic)
    qemu_bin = cfg.qemu_binary()
    session.vm_slots()
    for c in cfg.cards:
        if c not in CARDS:
            raise UsageError(f"unknown card '{c}'")
    cache_root = pathlib.Path(cache_root or cache.root()).resolve()
    cache_root.mkdir(parents=True, exist_ok=True)
    list_machines(cache_root)    # clean what killed runs left
    if name is not None:
        _check_name(name)
        if _name_taken(name, cache_root):
            raise UsageError(f"a machine named {name} exists", f"stop it first: pyvfio lab machine stop {name}")
    t0 = time.monotonic()
    key, folder, info = prepare(arch, cache_root)
    k = info["kernels"][cfg.kernel]
    # The slot first, the machine's folder after: a folder always has a QEMU, or a
    # starter about to start one, so `list` anywhere can judge it.
    slot = session.acquire_slot()
    try:
        with waiting(cache_root / ".lock", "lock the lab cache"):
            if name is not None and _name_taken(name, cache_root):
                raise UsageError(f"a machine named {name} exists",
                                 f"stop it first: pyvfio lab machine stop {name}")
            name = name or _pick_name(arch, cache_root)
            mdir = machines_dir(cache_root) / name
            mdir.mkdir(parents=True)
    except BaseException:
        slot.close()
        raise
    monitor_path = mdir / "monitor.sock"
    console = mdir / "console.log"
    m = LabMachine(name=name, arch=arch, kernel=cfg.kernel, release=k["kver"], ic=cfg.ic,
                ssh_host=SSH_HOST, ssh_port=None, user="root", key=str(key),
                cards=_card_list(cfg, bridge), pid=None, monitor_path=str(monitor_path),
                owner=owner, bridge=bridge, dir=str(mdir), console=str(console),
                started=time.time(), starter=os.getpid())
    overlay = mdir / "overlay.qcow2"
    p = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                        "-b", str(folder / "root.img"), str(overlay)], capture_output=True, text=True)
    if p.returncode != 0:
        slot.close()
        shutil.rmtree(mdir, ignore_errors=True)
        raise LabError("machine", "qemu-img create failed", p.stderr.strip())
    progress.say(f"machine {name}: booting {arch} {k['kver']} ({', '.join(cfg.cards)}"
                 f"{'; bridge: edu + edu' if bridge else ''}; ic {cfg.ic}), "
                 f"prepared in {time.monotonic() - t0:.1f} s")
    # The port is picked once the slot is ours, so that it is still free when QEMU binds it.
    port = m.ssh_port = _free_port()
    cmd = command(cfg, qemu_bin, k["vmlinux"], folder / "boot" / f"initrd.img-{k['kver']}",
                  overlay, port, monitor_path, console, bridge)
    (mdir / "qemu.cmd").write_text(shlex.join(map(str, cmd)) + "\n")
    t_boot = time.monotonic()
    try:
        with open(mdir / "qemu.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=(slot.fileno(),),
                                    preexec_fn=_set_pdeathsig if owner else None)
    except OSError as exc:
        slot.close()
        shutil.rmtree(mdir, ignore_errors=True)
        raise LabError("machine", f"cannot start {qemu_bin}: {exc}")
    slot.close()   # QEMU holds the slot's lock from here on
    m.pid = proc.pid
    _save(m)    # starting: list_machines leaves it to its starter while that lives
    try:
        _wait_ssh(m, proc, timeout or BOOT_TIMEOUT[arch])
        m.boot_seconds = round(time.monotonic() - t_boot, 1)
        _discover(m)
        m.ready, m.starter = True, None
        _save(m)
    except BaseException:
        if os.environ.get("PYVFIO_LAB_KEEP") != "1":   # kept for a look, as the busybox lab's runs
            _kill(m.pid)
            shutil.rmtree(mdir, ignore_errors=True)
        raise
    progress.say(f"machine {name}: sshd up after {m.boot_seconds} s: "
                 f"pyvfio lab machine ssh {name} (or ssh -p {port} -i {key} root@{SSH_HOST})")
    return m


def _card_list(cfg, bridge):
    out = [{"card": c, "bdf": None, "profile": PROFILES.get(c), "driver": None, "bridge": False,
            "qdev_id": qemu.card_id(i)} for i, c in enumerate(cfg.cards)]
    if bridge:
        out += [{"card": "edu", "bdf": None, "profile": PROFILES["edu"], "driver": None, "bridge": True,
                 "qdev_id": qemu.card_id(j, bridge=True)} for j in range(len(qemu.BRIDGE_SLOTS))]
    return out


def _wait_ssh(m, proc, timeout):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LabError(f"machine {m.name}", f"QEMU exited {proc.returncode} during boot",
                           _tail(m.dir))
        if time.monotonic() > deadline:
            raise LabError(f"machine {m.name}", f"no sshd after {timeout} s", _tail(m.dir))
        if _banner(m.ssh_port):
            p = subprocess.run(m.ssh_args(shared=False) + ["--", "true"], capture_output=True, timeout=60)
            if p.returncode == 0:
                return
        time.sleep(1)


def _banner(port):
    """sshd answers with its banner (slirp accepts the TCP connection earlier)."""
    try:
        with socket.create_connection((SSH_HOST, port), timeout=2) as s:
            s.settimeout(3)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _tail(mdir, n=30):
    out = []
    for f in ("qemu.log", "console.log"):
        try:
            out += pathlib.Path(mdir, f).read_text(errors="replace").splitlines()[-n:]
        except OSError:
            pass
    return "\n".join(out)


# Where each card sits, read from the machine's sysfs: the bridge cards are the
# edu functions one bus below a bridge.
_DISCOVER = r"""
import json, os
out = []
for bdf in sorted(os.listdir('/sys/bus/pci/devices')):
    d = '/sys/bus/pci/devices/' + bdf
    rd = lambda f: open(d + '/' + f).read().strip()
    drv = os.path.basename(os.readlink(d + '/driver')) if os.path.exists(d + '/driver') else None
    out.append({'bdf': bdf, 'id': rd('vendor')[2:] + ':' + rd('device')[2:],
                            'driver': drv})
print(json.dumps(out))
"""


def _discover(m):
    m.run("udevadm settle -t 30", timeout=60)
    p = m.run("python3 -", input=_DISCOVER, timeout=60, check=True)
    devs = json.loads(p.stdout)
    cfg = LabConfig(m.arch, kernel=m.kernel, cards=tuple(c["card"] for c in m.cards if not c["bridge"]))
    direct = [_direct_bdf(m.arch, i) for i in range(len(cfg.cards))]
    by_bdf = {d["bdf"]: d for d in devs}
    behind = sorted((d for d in devs if d["id"] == CARDS["edu"][1] and d["bdf"] not in direct
                     and d["bdf"].split(":")[1] != "00"), key=lambda d: d["bdf"])
    i_bridge = 0
    for i, c in enumerate(m.cards):
        if c["bridge"]:
            d = behind[i_bridge] if i_bridge < len(behind) else None
            i_bridge += 1
        else:
            d = by_bdf.get(direct[i])
        if d is None or d["id"] != CARDS[c["card"]][1]:
            raise LabError(f"machine {m.name}", f"card {c['card']} is not where it was put "
                           f"(expected at {direct[i] if not c['bridge'] else 'a bus behind the bridge'})",
                           json.dumps(devs, indent=0)[-1500:])
        c["bdf"], c["driver"] = d["bdf"], d["driver"]


def _direct_bdf(arch, i):
    if arch == "x86_64":
        return f"0000:00:{qemu.x86_slot(i):02x}.0"
    return f"0001:00:{i + 1:02x}.0"


# --- state ----------------------------------------------------------------------------

def _save(m):
    write_atomic(os.path.join(m.dir, "machine.json"), json.dumps(m.to_json(), indent=1) + "\n",
                 "record the lab machine in")


def _load(mdir):
    try:
        data = json.loads((mdir / "machine.json").read_text())
    except (OSError, ValueError):
        return None
    fields = {f.name for f in dataclasses.fields(LabMachine)}
    return LabMachine(**{k: v for k, v in data.items() if k in fields})


def _qemu_alive(pid, mdir):
    """Is pid still this machine's QEMU (not a reused pid)?"""
    try:
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(mdir).encode() in cmdline


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill(pid, grace=10):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            if not _pid_alive(pid) or _zombie(pid):
                return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _zombie(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _clean(mdir, m):
    if m is not None and m.dir:
        sshmux.close(m._ssh(), m.ssh_host, m.dir)
    if m is not None and m.pid and _qemu_alive(m.pid, mdir):
        _kill(m.pid)
    shutil.rmtree(mdir, ignore_errors=True)


def list_machines(cache_root=None):
    """The running machines; a machine whose QEMU died, whose owner is gone, or that
    never finished starting (and whose starter is gone) is stopped and removed."""
    root = machines_dir(cache_root)
    out = []
    if not root.is_dir():
        return out
    for mdir in sorted(p for p in root.iterdir() if p.is_dir()):
        m = _load(mdir)
        if m is None:
            # A wreck (start writes machine.json before anything else); give a
            # start that is just making its folder a minute.
            if time.time() - mdir.stat().st_mtime > 60:
                _clean(mdir, None)
            continue
        if not m.ready:
            if m.starter and _pid_alive(m.starter):
                continue    # booting, or waiting for a VM slot
            why = "its start was interrupted"
        else:
            why = ("QEMU is gone" if not _qemu_alive(m.pid, mdir)
                   else "its owner is gone" if m.owner and not _pid_alive(m.owner) else None)
        if why:
            progress.say(f"machine {m.name}: {why}; cleaning it up")
            _clean(mdir, m)
            continue
        out.append(m)
    return out


def get(name, cache_root=None):
    for m in list_machines(cache_root):
        if m.name == name:
            return m
    raise UsageError(f"no lab machine named {name}", "see pyvfio lab machine list")


def stop(name, cache_root=None):
    m = get(name, cache_root)
    _clean(pathlib.Path(m.dir), m)
    return m


def stop_all(cache_root=None):
    stopped = []
    for m in list_machines(cache_root):
        _clean(pathlib.Path(m.dir), m)
        stopped.append(m.name)
    return stopped
