"""The KVM guest as an engine of engine/run.py: a real vCPU services the card.

Run arms INTx through pyvfio/intx.py as for every engine (the INTx protocol has one
home) and this engine hands its eventfds to KVM instead of reading them: the
trigger as an irqfd on the guest's GSI and, with --unmask resample, vfio's unmask
eventfd as the irqfd's resamplefd, so the whole interrupt (inject, guest ISR, EOI,
deassert, unmask) stays in the kernel.  With --unmask ioctl|eventfd the irqfd has
no resampler, the guest's ISR exits to userspace after its EOI, and this engine
replays the DeviceIrq's EOI steps (one SET_IRQS ioctl, or one eventfd write): what a VMM
without a resampler does.  --unmask none is the negative control: nobody unmasks.

The vCPU runs in its own thread; the thread that called run_batch watches the
guest's progress in guest RAM and, after --watchdog ms without a serviced
interrupt, kicks the vCPU out of KVM_RUN (immediate_exit and a signal: KVM_RUN
returns EINTR) and reports a timeout, which Run turns into the stall path (the card
asked by polling, a Stall recorded, --recover re-arms).  The guest is then told to
abandon the raise and made runnable again (KVM_SET_MP_STATE: it was halted).

Timing: the guest stamps the TSC; the deltas are cycles.  The TSC rate is
calibrated once, before the first batch, against CLOCK_MONOTONIC over idle batch
exits spanning >= 50 ms (each exit: the guest's TSC at its OUT, the host's clock
right after KVM_RUN returns; the exit latency, tens of us, is the error: < 0.2 %).
"""

import os
import queue
import signal
import threading
import time

from .. import uapi
from .._binding import ffi
from ..errors import KvmError, UsageError
from ..kvm import guest_program
from ..kvm.memory import Ram
from ..kvm.system import CAPS, RESAMPLE, Kvm
from ..vocabulary import VFIO_UNMASK, Unmask, words
from .batch import DONE, TIMEOUT, Batch

GSI = 5                           # the guest's IRQ (PIC line 5, IOAPIC pin 5)
KICK = signal.SIGUSR1
CALIBRATION_S = 0.05
KVM_UNMASK = words(Unmask)


def intx_mode(unmask):
    """The DeviceIrq unmask mode for a KVM --unmask: resample registers vfio's unmask
    eventfd (KVM writes it); eventfd writes it from userspace; ioctl and none use
    no eventfd."""
    return "eventfd" if unmask in ("resample", "eventfd") else "ioctl"


class KvmLoop:
    """An engine.run.Engine whose handler is a real vCPU's ISR."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.unmask = ctx.config.unmask
        self.userspace_eoi = self.unmask in VFIO_UNMASK
        self.unmask_calls = 0
        self.exits = {"batch": 0, "eoi": 0, "io": 0, "mmio": 0}
        self.tsc_hz = None
        self.aborted = False
        self.stray = 0            # PIC vectors with no request behind them (read at close)
        self.at_stall = None      # the guest's control block when the watchdog gave up
        self._cmd, self._done = queue.Queue(), queue.Queue()
        self.thread = None
        self.kvm = self.vm = self.ram = self.vcpu = None
        self._old_handler = signal.signal(KICK, lambda *_: None)  # a handler: EINTR, not death
        try:
            self._build(ctx)
        except BaseException:
            self.close()
            raise

    # --- set-up ------------------------------------------------------------------
    def _build(self, ctx):
        self.kvm = Kvm()
        for cap, why in CAPS.items():
            self.kvm.require(cap, why)
        if self.unmask == "resample":
            self.kvm.require(*RESAMPLE)
        self.windows = guest_program.place_windows(ctx.profile)
        # level for the resampler; a pulse irqfd needs an edge input, which latches it
        self.pic = guest_program.IRQCHIPS[ctx.config.irqchip](GSI, level=self.unmask == "resample")
        image = guest_program.build(ctx.profile, self.windows, self.pic, self.userspace_eoi,
                            eoi_first=ctx.config.eoi_first)
        self.vm = vm = self.kvm.create_vm()
        vm.create_irqchip()
        # RAM, and one more page for the reset vector's far jump
        self.ram = ram = Ram(guest_program.RAM_SIZE + 0x1000)
        for gpa, data in image.items():   # the reset page is the extra page at RAM_SIZE
            ram.write(gpa, data)
        vm.add_memslot(0, guest_program.RAM_SIZE, ram.address(), "RAM")
        vm.add_memslot(guest_program.RESET_PAGE, 0x1000, ram.address(guest_program.RAM_SIZE), "reset page",
                       readonly=True)
        self.trapped = {}
        for w in self.windows.values():
            region = ctx.profile.bars[w.name]
            if w.mapped:
                vm.add_memslot(w.base, w.size, int(ffi.cast("uintptr_t", region.ptr)), w.name)
            else:
                self.trapped[w.name] = (w, region)
        intx = ctx.intx
        vm.irqfd(GSI, intx.trigger, intx.unmask_efd if self.unmask == "resample" else None)
        self.vcpu = vm.create_vcpu(0)
        self.thread = threading.Thread(target=self._vcpu_thread, name="pyvfio-vcpu0", daemon=True)
        self.thread.start()
        self._calibrate()

    def _calibrate(self):
        """Idle batches (n = 0) until CALIBRATION_S has passed: TSC Hz."""
        first = self._resume(0)
        last = first
        while last[1] - first[1] < CALIBRATION_S * 1e9:
            last = self._resume(0)
        self.tsc_hz = (last[0] - first[0]) * 1e9 / (last[1] - first[1])
        if self.tsc_hz <= 0:
            raise KvmError("calibrate the guest TSC", None, "the guest's TSC did not advance")

    # --- the vCPU thread ----------------------------------------------------------
    def _vcpu_thread(self):
        while True:
            cmd = self._cmd.get()
            if cmd is None:
                return
            try:
                self._done.put(self._run_to_batch_end())
            except BaseException as exc:  # handed to the caller's thread
                self._done.put(exc)

    def _run_to_batch_end(self):
        """KVM_RUN, servicing exits, until the guest's batch-end OUT (("batch", tsc,
        host ns)) or the watchdog's kick (("kicked",))."""
        vcpu, run = self.vcpu, self.vcpu.run
        while True:
            reason = vcpu.enter()
            if reason == uapi.KVM_EXIT_IO:
                io = run.io
                if io.port == guest_program.PORT_BATCH:
                    now = time.monotonic_ns()
                    self.exits["batch"] += 1
                    v = self.ram.view
                    c = guest_program.CTRL
                    return ("batch", v[c["tsc_hi"] // 4] << 32 | v[c["tsc_lo"] // 4], now)
                if io.port == guest_program.PORT_EOI:
                    self.exits["eoi"] += 1
                    if self.unmask != "none":
                        self.ctx.intx.eoi()
                        self.unmask_calls += 1
                    continue
                if io.port == guest_program.PORT_FAULT:
                    raise KvmError("KVM_RUN", None, "the guest took an unexpected exception",
                                   "a bug in pyvfio's guest program or its profile compiler: report it")
                self._trapped_io(io)
            elif reason == uapi.KVM_EXIT_MMIO:
                self._trapped_mmio(run.mmio)
            elif reason == uapi.KVM_EXIT_INTR:
                run.immediate_exit = 0
                return ("kicked",)
            else:
                raise KvmError("KVM_RUN", None, f"the guest stopped: {self._describe(reason)}",
                               "a bug in pyvfio's guest program or its profile compiler: report it")

    def _describe(self, reason):
        names = {getattr(uapi, n): n for n in dir(uapi) if n.startswith("KVM_EXIT_") and "_IO_" not in n}
        text = names.get(reason, f"exit reason {reason}")
        if reason == uapi.KVM_EXIT_FAIL_ENTRY:
            text += f" (hardware reason {self.vcpu.run.fail_entry.hardware_entry_failure_reason:#x})"
        elif reason == uapi.KVM_EXIT_INTERNAL_ERROR:
            text += f" (suberror {self.vcpu.run.internal.suberror})"
        return text

    def _trapped_io(self, io):
        self.exits["io"] += 1
        for w, region in self.trapped.values():
            if w.kind == "io" and w.base <= io.port < w.base + w.size and io.count == 1:
                self._forward(region, io.port - w.base, io.size, io.direction == uapi.KVM_EXIT_IO_OUT,
                              self.vcpu.io_data())
                return
        raise KvmError("KVM_EXIT_IO", None, f"the guest used port {io.port:#x} (size {io.size}, count "
                       f"{io.count}), which nothing serves", "a bug in pyvfio's guest program: report it")

    def _trapped_mmio(self, mmio):
        self.exits["mmio"] += 1
        for w, region in self.trapped.values():
            if w.kind == "mem" and w.base <= mmio.phys_addr < w.base + w.size:
                self._forward(region, mmio.phys_addr - w.base, mmio.len, bool(mmio.is_write),
                              ffi.buffer(mmio.data, mmio.len))
                return
        raise KvmError("KVM_EXIT_MMIO", None, f"the guest accessed {mmio.phys_addr:#x}, outside its "
                       "memory and the card's windows", "a bug in pyvfio's guest program: report it")

    @staticmethod
    def _forward(region, offset, width, write, data):
        """A trapped access, to the region's bounded read/write (checked there)."""
        if write:
            region.write(offset, width, int.from_bytes(data[:width], "little"))
        else:
            data[:width] = region.read(offset, width).to_bytes(width, "little")

    # --- batches --------------------------------------------------------------------
    def _resume(self, n, watch=None):
        """Let the guest run a batch of n raises; its batch-end (tsc, host ns), or
        None when the watchdog had to kick it (`watch`: (seconds, progress()))."""
        v, c = self.ram.view, guest_program.CTRL
        v[c["n"] // 4], v[c["i"] // 4] = n, 0
        if self.aborted:   # the guest is halted inside the raise the watchdog gave up on
            v[c["abort"] // 4] = 1
            self.vcpu.set_runnable()
        self.vcpu.run.immediate_exit = 0   # a kick that came as the last batch ended
        self._cmd.put(n)
        last, seen = time.monotonic(), watch[1]() if watch else None
        while True:
            try:
                got = self._done.get(timeout=0.05 if watch else None)
            except queue.Empty:
                got = None
            if isinstance(got, BaseException):
                raise got
            if got is not None and got[0] == "batch":
                break
            progress = watch[1]()
            if got is not None:    # kicked: a stall only if the guest has not moved since
                if progress == seen:
                    self.at_stall = {k: v[off // 4] for k, off in c.items()}
                    break
                self._cmd.put(n)   # it serviced the interrupt as the kick came: go on
            if progress != seen:
                seen, last = progress, time.monotonic()
            elif got is None and time.monotonic() - last > watch[0]:
                self._kick()
        v[c["abort"] // 4] = 0
        self.aborted = got[0] == "kicked"
        return None if self.aborted else got[1:]

    def _kick(self):
        self.vcpu.run.immediate_exit = 1
        signal.pthread_kill(self.thread.ident, KICK)

    def run_batch(self, n, hists, deadline_ns=0):
        v, c = self.ram.view, guest_program.CTRL
        before = {k: v[c[k] // 4] for k in ("done", "spurious", "raised")}
        # progress: the ISR's counts too (it may have serviced a raise the loop has not seen)
        watch = (max(self.ctx.config.watchdog_ms, 1) / 1000,
                 lambda: (v[c["isr_n"] // 4], v[c["spurious"] // 4], v[c["done"] // 4]))
        reason, left = DONE, n
        while left > 0:
            if deadline_ns and time.monotonic_ns() >= deadline_ns:
                break
            k = min(left, guest_program.BATCH_MAX)
            done0 = v[c["done"] // 4]
            ended = self._resume(k, watch)
            self._record(hists, v[c["done"] // 4] - done0)
            self._explain(v[c["done"] // 4] - done0, ended)
            if ended is None:
                reason = TIMEOUT
                break
            left -= k
        return Batch(delivered=v[c["done"] // 4] - before["done"],
                     spurious=v[c["spurious"] // 4] - before["spurious"],
                     raised=v[c["raised"] // 4] - before["raised"],
                     last_cause=v[c["cause"] // 4], reason=reason)

    def _record(self, hists, count):
        """The batch's TSC deltas (FS arrays), in ns, into wakeup/service/round trip."""
        v, scale = self.ram.view, 1e9 / self.tsc_hz
        for hist, arr in zip(hists, (guest_program.A_WAKEUP, guest_program.A_SERVICE, guest_program.A_RTT)):
            base = (guest_program.ARRAYS + arr) // 4
            for d in v[base:base + count]:
                hist.record(int(d * scale))

    def _explain(self, count, ended):
        """--explain: the batch's stamps to the Explainer (explain/kvm.py places them on
        the host's clock); the batch end's full TSC unwraps T0's low 32 bits."""
        sink = self.ctx.explain.kvm if self.ctx.explain is not None else None
        if sink is None or count <= 0:
            return
        v = self.ram.view
        arrays = [list(v[(guest_program.ARRAYS + a) // 4:(guest_program.ARRAYS + a) // 4 + count])
                  for a in (guest_program.A_T0, guest_program.A_WAKEUP, guest_program.A_SERVICE,
                            guest_program.A_RTT)]
        sink.add(*arrays, ended[0] if ended is not None else None)

    @property
    def gsi(self):
        return GSI

    def debugfs_dir(self, debugfs):
        """KVM's debugfs directory of the vCPU (kvm/PID-VMFD/vcpu0: its TSC offset)."""
        return os.path.join(debugfs, "kvm", f"{os.getpid()}-{self.vm.fd}", "vcpu0")

    def update_fds(self):
        """After a re-arm: the DeviceIrq keeps its eventfds, so the irqfd stays valid."""

    def collect(self):
        return None  # the guest's counters are read at each batch end; a cut batch is lost

    def trigger_pending(self):
        return False

    def service_external(self):
        """Not reached: RunConfig refuses --source external with --guest kvm."""
        raise UsageError("--source external is not available with --guest kvm", "use --guest toy for it")

    def guest_json(self):
        return {"guest": "kvm", "irqchip": self.pic.name, "gsi": GSI, "unmask": self.unmask,
                "eoi_first": self.ctx.config.eoi_first,
                "trigger": "level" if self.pic.level else "edge",
                "userspace_unmask_calls": self.unmask_calls, "exits": dict(self.exits),
                "pic_stray_vectors": self.stray,
                "tsc_hz": self.tsc_hz, "control_block_at_stall": self.at_stall,
                "bars": {w.name: {"kind": w.kind, "guest_base": w.base, "size": w.size,
                                  "memslot": w.mapped} for w in self.windows.values()}}

    # --- teardown -------------------------------------------------------------------
    def close(self):
        """The vCPU thread stopped, then the VM (irqfds deassigned first), RAM, /dev/kvm."""
        if self.thread is not None and self.thread.is_alive():
            self._kick()   # out of KVM_RUN if it is inside (Ctrl-C mid-batch); harmless if not
            self._cmd.put(None)
            self.thread.join(5)
        if self.ram is not None:
            self.stray = self.ram.view[guest_program.CTRL["stray"] // 4]
        errors = []
        for obj in (self.vm, self.ram, self.kvm):
            if obj is not None:
                try:
                    obj.close()
                except Exception as exc:
                    errors.append(exc)
        self.vm = self.ram = self.kvm = None
        signal.signal(KICK, self._old_handler)
        if errors:
            raise errors[0]
