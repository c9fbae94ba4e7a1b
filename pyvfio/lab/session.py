"""One lab run: prepare what is missing, boot, run the command, read the verdict."""
import contextlib
import fcntl
import json
import os
import pathlib
import shlex
import shutil
import signal
import sys
import time
import uuid

from . import cache, crossbuild, feeder, initramfs, kernels, modules, progress, qemu, userspace, vm
from ..cardlock import open_shared, waiting
from ..checkout import CHECKOUT
from ..errors import UsageError
from ..vocabulary import Policy
from .errors import LabError, LabUnavailable



def require_root():
    """The guest's root and checkout come over 9p with security_model=none: QEMU
    must be able to read every file and write results as their owners."""
    if os.geteuid() != 0:
        raise LabUnavailable("root", "the lab runs as root (9p shares with security_model=none)",
                             hint="run it as root, as CI does")


def prepare(cfg, cache_root=None):
    """Everything a boot needs, from the cache or freshly built.  Returns a dict."""
    require_root()
    cache_root = pathlib.Path(cache_root or cache.root()).resolve()
    cache_root.mkdir(parents=True, exist_ok=True)
    # One preparer at a time per cache (several lab runs may start together).
    with waiting(cache_root / ".lock", "lock the lab cache"):
        return _prepare(cfg, cache_root)


def _prepare(cfg, cache_root):
    kdir, kinfo = kernels.prepare(cfg, cache_root)
    initrd = initramfs.prepare(cfg, cache_root, kdir, kinfo)
    prep = {"cache": cache_root, "vmlinux": kdir / "vmlinux", "initrd": initrd, "kernel": kinfo,
            "root": pathlib.Path("/"), "python_bin": str(pathlib.Path(sys.executable).parent),
            "python": sys.executable,
            "policy_ko": None, "host_drivers": modules.prepare_host_drivers(cfg, cache_root, kinfo),
            "kvm_modules": modules.prepare_kvm(cfg, cache_root, kinfo)}
    if cfg.arch == "x86_64":
        hidden = [d for d in ("/tmp/", "/run/") if prep["python_bin"].startswith(d)]
        if hidden and not prep["python_bin"].startswith(str(CHECKOUT) + "/"):
            raise LabError("guest userspace", f"the guest mounts its own {hidden[0]}, which hides "
                           f"this Python ({prep['python_bin']})",
                           hint="run pyvfio from a venv outside /tmp and /run, or inside the checkout")
    if cfg.arch == "ppc64le":
        root, uinfo = userspace.prepare(cache_root)
        crossbuild.prepare(cache_root, uinfo["cffi_backend"])
        prep["root"], prep["python_bin"], prep["python"] = root, "/usr/local/bin", "/usr/local/bin/python"
    if cfg.policy != Policy.KERNEL:
        from . import policy_build

        prep["policy_ko"] = policy_build.prepare(cfg, cache_root, kinfo)
    from . import vfio_build

    prep["vfio"] = vfio_build.prepare(cfg, cache_root, kinfo)
    return prep


def vfio_facts(prep):
    """What lab.json says of the run's vfio-pci: the variant, whether it was rebuilt
    (and from what), and whether the module loaded carries the unlazy fix."""
    built = prep["vfio"]
    if built is None:
        return {"variant": "shipped", "rebuilt": False}, prep["kernel"]["unlazy_fix"]
    info = dict(built["info"], variant=built["variant"])
    return info, info.get("unlazy_fix", prep["kernel"]["unlazy_fix"])


def src_cache(kver):
    """The checkout share's 9p cache mode.  Every Python import stats and reads it,
    a 9p round trip each with cache=none (seconds per `pyvfio` process in a TCG
    guest); 0x3 (CACHE_META|CACHE_FILE, fs/9p/v9fs.h) caches attributes and reads
    but writes through, so what the guest writes is on the host when it returns.
    Kernels before 6.6 take only named modes, of which none writes through."""
    major, minor = (int(x) for x in kver.split(".")[:2])
    return "0x3" if (major, minor) >= (6, 6) else "none"


def _write_run_dir(cfg, prep, run_dir):
    src = str(CHECKOUT)
    vfio, fix = vfio_facts(prep)
    facts = {"arch": cfg.arch, "kernel": cfg.kernel, "kver": prep["kernel"]["kver"],
             "kernel_package": prep["kernel"]["package"],
             "unlazy_fix": fix, "vfio": vfio, "iommufd": cfg.iommufd, "ic": cfg.ic,
             "nointxmask": cfg.nointxmask, "policy": cfg.policy, "cards": list(cfg.cards),
             "card_ids": {c: cfg.pci_id(c) for c in cfg.cards},
             "policy_module": prep["policy_ko"] is not None,
             "host_cards": _host_cards(cfg), "kvm": bool(prep["kvm_modules"])}
    (run_dir / "lab.json").write_text(json.dumps(facts, indent=1))
    env = {"LAB_SRC": src, "LAB_RUN": str(run_dir), "LAB_NOINTXMASK": str(cfg.nointxmask),
           # id first: a qemu: card's name may hold '=' (its properties)
           "LAB_CARDS": " ".join(f"{cfg.pci_id(c)}={c}" for c in cfg.cards),
           "LAB_HOST_CARDS": " ".join(f"{h['driver']}={h['bdf']}" for h in facts["host_cards"]),
           "LAB_SRC_CACHE": src_cache(prep["kernel"]["kver"])}
    (run_dir / "lab.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
    # `pyvfio` on PATH in every guest, as a user types it: a launcher for the guest's
    # Python (the ppc64le root has no console script; the x86 venv's would do).
    launcher = run_dir / "bin" / "pyvfio"
    launcher.parent.mkdir(exist_ok=True)
    launcher.write_text(f'#!/bin/sh\nexec {prep["python"]} -m pyvfio "$@"\n')
    launcher.chmod(0o755)
    path = (f"{run_dir}/bin:{prep['python_bin']}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
            ":/sbin:/bin")
    exports = {"PYVFIO_LAB": "1", "PYVFIO_LAB_DIR": str(run_dir), "PATH": path,
               "PYTHONPATH": src, "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
               "PYTHONUNBUFFERED": "1", "TERM": "dumb"}
    lines = ["# written by pyvfio lab for one run"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
    lines += [f"cd {shlex.quote(src)} || exit 125", " ".join(shlex.quote(a) for a in cfg.command)]
    (run_dir / "command.sh").write_text("\n".join(lines) + "\n")
    if prep["policy_ko"]:
        shutil.copyfile(prep["policy_ko"], run_dir / "pyvfio_policy.ko")
    if prep["vfio"] and prep["vfio"]["modules"]:
        (run_dir / "vfio").mkdir()
        for name, ko in prep["vfio"]["modules"].items():
            shutil.copyfile(ko, run_dir / "vfio" / f"{name}.ko")
    for key, folder in (("host_drivers", "host-drivers"), ("kvm_modules", "kvm")):
        if prep[key]:
            (run_dir / folder).mkdir()
            for ko in prep[key]:
                shutil.copyfile(ko, run_dir / folder / ko.name)
            (run_dir / folder / "order").write_text("".join(f"{ko.stem}\n" for ko in prep[key]))
    if cfg.arch == "ppc64le":
        # Mount points must exist in the read-only root before the guest mounts there.
        for p in (src, str(run_dir)):
            (prep["root"] / p.lstrip("/")).mkdir(parents=True, exist_ok=True)


def _host_cards(cfg):
    """Where each host card sits (its BDF), its driver, and whose line it shares."""
    from .config import HOST_DRIVERS

    return [{"card": c, "bdf": qemu.x86_host_bdf(i, cfg), "driver": HOST_DRIVERS[c],
             "shares_line_of": i} for i, c in enumerate(cfg.host_cards)]


def run(cfg, cache_root=None, echo=vm.echo_stdout, stop=None):
    """Prepare, boot, run cfg.command; returns (status, output lines).  `stop`: see vm.run."""
    qemu_bin = cfg.qemu_binary()
    if not cfg.command:
        raise UsageError("no command to run in the guest", "give one after --, e.g. -- python -c 'import pyvfio'")
    vm_slots()  # bad PYVFIO_LAB_VMS says so before minutes of preparing
    t0 = time.monotonic()
    qemu_ids(cfg, qemu_bin, cache_root)
    prep = prepare(cfg, cache_root)
    runs = prep["cache"] / "runs"
    _remove_orphan_runs(runs, prep["root"])
    run_dir = runs / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True)
    try:
        _write_run_dir(cfg, prep, run_dir)
        shares = [("labroot", prep["root"], True), ("labsrc", CHECKOUT, False),
                  ("labrun", run_dir, False)]
        cmd = qemu.command(cfg, qemu_bin, prep["vmlinux"], prep["initrd"], shares, run_dir)
        if cfg.verbose:
            progress.say("qemu: " + " ".join(shlex.quote(str(a)) for a in cmd))
        progress.say(f"booting {cfg.arch} {prep['kernel']['kver']} "
                     f"({', '.join(cfg.cards)}"
                     + "".join(f"; host {c}" for c in cfg.host_cards)
                     + f"; ic {cfg.ic}; nointxmask {cfg.nointxmask}; "
                     f"policy {cfg.policy}; vfio-pci {prep['vfio']['variant'] if prep['vfio'] else 'shipped'}"
                     f"), prepared in {time.monotonic() - t0:.1f} s")
        with _vm_slot(stop), feeder.Feeders(cfg, run_dir):
            out = vm.run(cmd, cfg.timeout, echo=echo, stop=stop)
        if cfg.verbose:
            sys.stderr.write("--- guest console ---\n" + "\n".join(out.console) + "\n")
        status = _verdict(cfg, out, run_dir)
        progress.say(f"guest finished in {out.seconds:.1f} s: command exited {status}")
        return status, out.output
    finally:
        if os.environ.get("PYVFIO_LAB_KEEP") != "1":
            _remove_run(run_dir, prep["root"])


def qemu_ids(cfg, qemu_bin, cache_root=None):
    """cfg's qemu: cards asked of QEMU (lab/qdevice.py): a device it does not know or
    that is not PCI is one line here, before minutes of preparing."""
    from . import qdevice

    root = pathlib.Path(cache_root or cache.root()).resolve()
    cfg.qemu_ids = qdevice.resolve(cfg, qemu_bin, root)


VM_LOCK = "/tmp/pyvfio-lab-vm.lock"
MAX_VMS = 2  # one vCPU each on this 2-core kind of machine


def vm_slots():
    """How many lab VMs may run at once on this machine: PYVFIO_LAB_VMS (1 unless
    set; at most MAX_VMS)."""
    text = os.environ.get("PYVFIO_LAB_VMS", "1")
    if not text.isdigit() or not 1 <= int(text) <= MAX_VMS:
        raise UsageError(f"PYVFIO_LAB_VMS={text!r} is not a number of lab VMs from 1 to {MAX_VMS}",
                         "unset it for one VM at a time, or set 2 to run two at once")
    return int(text)


@contextlib.contextmanager
def _vm_slot(stop=None):
    """TCG guests are CPU-bound and this kind of machine has 2 cores: lab VMs on
    one machine (any checkout, any user of the lab) take one of the machine's VM
    slots, a flock each (slot 0 is VM_LOCK itself, slot k VM_LOCK.k), so neither
    their timeouts nor their timings depend on who else is running.  A process
    allowed N slots takes the first of them to be free; it waits polling, so a
    set `stop` (see vm.run) ends the wait too."""
    with acquire_slot(stop):
        yield


def acquire_slot(stop=None):
    """Wait for a free VM slot; returns its locked file (the slot is held while that
    file, or a child it was passed to, stays open)."""
    slots = [VM_LOCK] + [f"{VM_LOCK}.{k}" for k in range(1, vm_slots())]
    said = False
    while (lock := _free_slot(slots)) is None:
        if stop is not None and stop.is_set():
            raise LabError("guest", "stopped while waiting for a lab VM slot: the run was interrupted")
        if not said:
            progress.say("waiting for another lab VM on this machine to finish ...")
            said = True
        time.sleep(0.5)
    return lock


def _free_slot(slots):
    """The first free slot's locked file, or None."""
    for path in slots:
        lock = os.fdopen(open_shared(path, "take a lab VM slot"), "rb")   # /tmp: anyone's
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            lock.close()
    return None


def _remove_run(run_dir, root):
    shutil.rmtree(run_dir, ignore_errors=True)
    if root != pathlib.Path("/"):  # the mount point made for it in the ppc64le root
        try:
            (root / str(run_dir).lstrip("/")).rmdir()
        except OSError:
            pass


def _remove_orphan_runs(runs, root):
    """Run folders left by a lab process that was killed (its pid is gone)."""
    places = [runs] + ([root / str(runs).lstrip("/")] if root != pathlib.Path("/") else [])
    for place in places:
        for d in place.glob("*-*") if place.exists() else ():
            pid = d.name.split("-")[0]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                _remove_run(runs / d.name, root)


def _ended(status):
    """How QEMU ended, in words: "exit 1", or "killed by SIGABRT" for a negative status."""
    if status is not None and status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit {status}"


def _verdict(cfg, out, run_dir):
    if out.stopped:
        raise LabError("guest", "stopped: the run was interrupted, QEMU was ended", out.tail())
    if out.timed_out:
        raise LabError("guest", f"no verdict within --timeout {cfg.timeout:g} s: QEMU was killed",
                       out.tail(), hint="raise --timeout if the command is just slow")
    if out.init_failed:
        step, _, msg = out.init_failed.partition(": ")
        raise LabError(f"guest init ({step})", msg, out.tail())
    status_file = run_dir / "status"
    said = [line for line in out.console if line.startswith("qemu-system-")]
    if said and not status_file.exists():
        if out.command_started:   # it ran the guest, then died: its own last words say why
            raise LabError("qemu", f"QEMU crashed during the command ({_ended(out.qemu_status)}): "
                           f"{said[-1]}", out.tail(),
                           hint="a fault of QEMU's device model, not of the guest's command")
        raise LabError("qemu", f"QEMU refused to start ({_ended(out.qemu_status)}): {said[0]}",
                       out.tail())
    if not status_file.exists():
        raise LabError("guest", f"ended without a verdict (QEMU exit {out.qemu_status}); "
                       "the kernel probably panicked or the init died", out.tail())
    try:
        status = int(status_file.read_text().strip())
    except ValueError:
        raise LabError("guest", f"unreadable status file ({status_file.read_text()[:40]!r})",
                       out.tail()) from None
    if cfg.arch == "x86_64":
        expect = (min(status, 127) << 1) | 1
        if out.qemu_status != expect:
            raise LabError("guest", f"verdicts disagree: status file says {status}, "
                           f"isa-debug-exit gave QEMU exit {out.qemu_status}", out.tail())
    return status
