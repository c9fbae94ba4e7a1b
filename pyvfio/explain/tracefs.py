"""The host kernel's tracing, for one run: an instance of our own in tracefs.

`Tracer` finds tracefs in /proc/mounts (tracefs itself, or debugfs's tracing/),
makes `instances/pyvfio-PID` (its own buffer, so a user's tracing is left alone),
sets trace_clock `mono` (the engine's CLOCK_MONOTONIC) and the buffer size,
enables the events `explain` attributes from, filtered to the card's IRQ and
the measuring thread, and adds kretprobes on vfio-pci's INTx handler and unmask
path where the kernel has them (kprobe_events is tracefs-wide: ours are in a
group named pyvfio_PID and removed at close).  `close` always undoes all of it,
each step attempted.

Every file is opened O_NOFOLLOW and never created: tracefs makes its own files,
and a link in their place is not one we made.  Why a breakdown is impossible
(no tracefs, no root, lockdown) comes back as Missing, one line, never a
traceback: the run goes on without it."""

import errno
import os

from .segments import SIGNALLED, UNMASKED

BUFFER_KB = 4096            # per CPU: a batch of 2^13 interrupts is ~2 MiB of events
# A developer's knob for measuring what each source costs (tools/bench/bench_explain.py):
# the sources to trace, comma-separated; unset, all of DEFAULT.
SOURCES_ENV = "PYVFIO_EXPLAIN_SOURCES"
DEFAULT = ("entry", "sched", "exit", "sysexit", "unmasked")   # unmasked: only without sysexit
ALL_SOURCES = DEFAULT + ("signalled", "unmask_entry")
# kretprobes: (event, the functions tried in order; the first the kernel has is probed)
PROBES = ((SIGNALLED, ("vfio_intx_handler",)),
          (UNMASKED, ("vfio_pci_intx_unmask_handler", "vfio_pci_intx_unmask")))


def sources():
    got = os.environ.get(SOURCES_ENV)
    return DEFAULT if got is None else tuple(x for x in got.split(",") if x in ALL_SOURCES)


class Missing(Exception):
    """No breakdown: str() is the one line saying what is missing."""


def mounted(mounts_text, fstype):
    """Where the first file system of `fstype` is mounted, from /proc/mounts' text, or None."""
    for line in mounts_text.splitlines():
        f = line.split()
        if len(f) >= 3 and f[2] == fstype:
            return f[1]
    return None


def find(mounts_text):
    """tracefs's directory from /proc/mounts' text (tracefs itself, or debugfs's
    tracing/), or None."""
    tracefs = mounted(mounts_text, "tracefs")
    if tracefs:
        return tracefs
    debugfs = mounted(mounts_text, "debugfs")
    debugfs = os.path.join(debugfs, "tracing") if debugfs else None
    return debugfs if debugfs and os.path.isdir(debugfs) else None


def _open(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def write(path, value, append=False):
    """echo VALUE > PATH (>> with append) into a tracefs file: one write, no create."""
    fd = _open(path, os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC))
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read(path):
    fd = _open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    finally:
        os.close(fd)


def _why(exc, what):
    if exc.errno in (errno.EACCES, errno.EPERM):
        locked = _lockdown()
        if locked:
            return f"the kernel is locked down ({locked}): tracefs refuses {what}"
        return f"no permission to {what}: run as root"
    return f"{what} failed: {exc.strerror or exc}"


def _lockdown(path="/sys/kernel/security/lockdown"):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    mode = text[text.find("[") + 1:text.find("]")] if "[" in text else ""
    return mode if mode and mode != "none" else None


class Tracer:
    def __init__(self, root, tid, irq, pid=None):
        self.root = root
        self.tid, self.irq = tid, irq
        self.pid = os.getpid() if pid is None else pid
        self.instance = os.path.join(root, "instances", f"pyvfio-{self.pid}")
        self.group = f"pyvfio_{self.pid}"
        self.made = False
        self.probes = {}       # event -> the function probed
        self.traced = []       # the contract's "traced": what is enabled
        self.unmask_event = False   # an event ends the unmask (else reenable folds into it)

    # --- set-up ------------------------------------------------------------------
    def start(self):
        """Set everything up, or raise Missing (after undoing what was done)."""
        try:
            self._start()
        except Missing:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise Missing(_why(exc, f"setting up the tracefs instance {self.instance}")) from None

    def _start(self):
        parent = os.path.join(self.root, "instances")
        if not os.path.isdir(parent) or os.path.islink(parent):
            raise Missing(f"tracefs at {self.root} has no instances/ directory (Linux 3.16+)")
        try:
            os.mkdir(self.instance)
        except FileExistsError:
            raise Missing(f"{self.instance} exists already (another run of this pid?): "
                          f"rmdir it") from None
        except OSError as exc:
            raise Missing(_why(exc, f"mkdir {self.instance}")) from None
        self.made = True
        st = os.lstat(self.instance)
        if not os.path.isdir(self.instance) or os.path.islink(self.instance) or st.st_uid != os.geteuid():
            raise Missing(f"{self.instance} is not the directory we made")
        self._w("tracing_on", "0")
        self._w("buffer_size_kb", str(BUFFER_KB))
        self._events()
        self._w("trace", "")
        self._w("tracing_on", "1")

    def _events(self):
        """The clock and the events (explain/kvm.py's Tracer has its own)."""
        self._w("trace_clock", "mono")
        src = sources()
        # As few events per interrupt as will do, and static tracepoints only: under TCG a
        # kprobe or kretprobe hit cost the round trip 10-16 us, a filtered tracepoint about
        # 1 us or less (tools/bench/bench_explain.py --sources; docs/explain.md).
        if "entry" in src:
            self._event("irq/irq_handler_entry")            # every IRQ: those in between are named
        if "sched" in src:
            self._event("sched/sched_switch", f"prev_pid == {self.tid} || next_pid == {self.tid}")
        if "exit" in src:                                   # vfio's handler returned: signalled
            self._event("irq/irq_handler_exit", f"irq == {self.irq}")
        if "sysexit" in src:                                # the unmask syscall's work done
            self.unmask_event = self._syscall_exits()
        if not self.unmask_event:                           # no syscall events: a kretprobe
            self._kprobes(src)
            self.unmask_event = UNMASKED in self.probes

    def _w(self, name, value):
        write(os.path.join(self.instance, name), value)

    def _event(self, name, filt=None):
        if filt:
            self._w(f"events/{name}/filter", filt)
        self._w(f"events/{name}/enable", "1")
        self.traced.append(name.replace("/", ":"))

    def _syscall_exits(self):
        """sys_exit of the unmask's two syscalls (ioctl, eventfd write), the measuring
        thread's only; False where the kernel has no syscall events (CONFIG_FTRACE_SYSCALLS)."""
        names = [f"syscalls/sys_exit_{call}" for call in ("ioctl", "write")]
        if not all(os.path.isdir(os.path.join(self.instance, "events", n)) for n in names):
            return False
        for n in names:
            self._event(n, f"common_pid == {self.tid}")
        return True

    def _kprobes(self, src):
        """kretprobes where the kernel has the function and kprobes: a missing one folds
        its segment (segments.segments_for), it does not end the breakdown.  The kernel
        checks the symbol itself (ENOENT or EINVAL for a function it does not have, or
        cannot probe): reading /proc/kallsyms first took seconds in a TCG guest."""
        events = os.path.join(self.root, "kprobe_events")
        if not os.path.isfile(events):
            return
        for event, funcs in PROBES:
            kind = "r" if event == SIGNALLED and "signalled" in src or event == UNMASKED and "unmasked" in src \
                else "p" if event == UNMASKED and "unmask_entry" in src else None
            for func in funcs if kind else ():
                try:
                    write(events, f"{kind}:{self.group}/{event} {func}\n", append=True)
                except OSError:
                    continue          # not this function: the next, or none
                self.probes[event] = func
                try:
                    self._event(f"{self.group}/{event}")
                except OSError:       # defined but not enabled here: no use, removed
                    self._unprobe(event)
                    continue
                self.traced[-1] = f"kprobe:{func}"
                break

    # --- per batch ---------------------------------------------------------------
    def take(self):
        """The events' text since the last take, and the events lost so far (the
        per-CPU `overrun` counters).  trace_pipe, read until it has nothing more:
        it consumes what it gives, where clearing `trace` (a reset, an RCU grace
        period each time) made every batch's end slow."""
        fd = _open(os.path.join(self.instance, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        chunks = []
        try:
            while True:
                try:
                    chunk = os.read(fd, 1 << 20)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode(errors="replace"), self.overrun()

    def overrun(self):
        lost = 0
        per_cpu = os.path.join(self.instance, "per_cpu")
        for cpu in sorted(os.listdir(per_cpu)) if os.path.isdir(per_cpu) else ():
            try:
                for line in read(os.path.join(per_cpu, cpu, "stats")).splitlines():
                    if line.startswith("overrun:"):
                        lost += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                continue
        return lost

    # --- teardown ----------------------------------------------------------------
    def close(self):
        """Undo everything (each step attempted, the errors kept quiet: a half-made
        instance has files missing); the instance directory goes only if we made it."""
        if self.made:
            for name in ("tracing_on",) + tuple(f"events/{self.group}/{e}/enable" for e in self.probes):
                try:
                    self._w(name, "0")
                except OSError:
                    pass
            try:
                os.rmdir(self.instance)
                self.made = False
            except OSError:
                pass
        for event in list(self.probes):
            self._unprobe(event)

    def _unprobe(self, event):
        try:
            write(os.path.join(self.root, "kprobe_events"), f"-:{self.group}/{event}\n", append=True)
            del self.probes[event]
        except OSError:
            pass
