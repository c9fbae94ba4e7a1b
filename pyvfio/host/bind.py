"""Bind devices to vfio-pci and give them back, the way driverctl and dpdk-devbind do.

bind, per device (Documentation/ABI/testing/sysfs-bus-pci):
    echo vfio-pci > /sys/bus/pci/devices/BDF/driver_override
    echo BDF > /sys/bus/pci/drivers/<old>/unbind        (if it has a driver)
    echo BDF > /sys/bus/pci/drivers_probe
unbind, per device:
    echo > /sys/bus/pci/devices/BDF/driver_override        (or the override it had)
    echo BDF > /sys/bus/pci/drivers/vfio-pci/unbind
    echo BDF > /sys/bus/pci/drivers/<old>/bind             (or drivers_probe)

The old driver is remembered in a state file (/run/pyvfio/bindings.json, replaced
atomically; /run is emptied at boot, as bindings are) so that unbind restores it.
A bind or unbind holds a lock (/run/pyvfio/bindings.lock, taken as the card lock
is: pyvfio/cardlock.py) and defers SIGINT/SIGTERM for its whole sequence: the
record is read, changed and written under it, and a second bind or unbind meanwhile
is refused.  A plan is checked against the devices again under the lock.  A bind
killed between two writes (SIGKILL) leaves a half-state that unbind repairs.
A device the host is using is refused unless forced (RefusedError, exit 4).
Everything is planned first (`plan_bind`, `plan_unbind`): a dry run prints the
plan; a real run checks permissions, then carries it out through a `Kernel`
object, which tests replace with a simulated one.
"""

import contextlib
import datetime
import json
import os
import subprocess
import threading
from dataclasses import dataclass, field

from .. import cardlock, signals
from ..errors import PyvfioError, RefusedError, UsageError, os_error
from ..results import write_atomic
from . import inuse, paths, pci, system, writes

VFIO_DRIVER = "vfio-pci"
STATE_DIR = "run/pyvfio"
STATE_FILE = STATE_DIR + "/bindings.json"
LOCK_FILE = "bindings.lock"


@dataclass
class Step:
    """One write to a sysfs file (or a modprobe), shown as the shell command it equals."""
    bdf: str | None
    path: str | None        # the sysfs file; None for modprobe
    value: str

    def describe(self):
        if self.path is None:
            return f"modprobe {self.value}"
        value = self.value.strip()
        return f"echo {value} > {self.path}" if value else f"echo > {self.path}"

    def to_json(self):
        return {"bdf": self.bdf, "path": self.path, "value": self.value,
                "command": self.describe()}


@dataclass
class Plan:
    """What a bind/unbind will do.  Stable JSON keys: action ("bind"/"unbind"), bdf,
    group (IOMMU group or null), targets [{bdf, driver, and driver_override (bind) or
    restore_to and known (unbind: the driver to restore; known=false when pyvfio has
    no record)}], skipped
    [{bdf, why}], refusals [{bdf, why}], notes [str], steps [Step]."""
    action: str
    bdf: str
    group: int | None
    targets: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    refusals: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def to_json(self):
        return {"action": self.action, "bdf": self.bdf, "group": self.group,
                "targets": self.targets, "skipped": self.skipped, "refusals": self.refusals,
                "notes": self.notes, "steps": [s.to_json() for s in self.steps]}


class Kernel:
    """The real kernel: sysfs writes and modprobe.  Tests pass a simulation."""

    def write(self, path, value):
        with open(path, "w") as f:
            f.write(value)

    def modprobe(self, module):
        try:
            r = subprocess.run(["modprobe", module], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        return None if r.returncode == 0 else (r.stderr.strip() or f"exit status {r.returncode}")


# --- the state file -------------------------------------------------------------------

def state_path(root="/"):
    return paths.under(root, STATE_FILE)


def load_state(root="/"):
    """{bdf: {driver, driver_override, group, bound_with, time}}; {} when none.
    A file of another shape is a one-line error naming it."""
    path = state_path(root)
    fix = "fix or remove it (it only records the drivers to restore; without it unbind lets the kernel choose)"
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise os_error("read the drivers to restore from", path, exc) from None
    except (ValueError, RecursionError) as exc:
        raise PyvfioError(f"cannot read {path}: {str(exc).splitlines()[0]}", fix) from None
    why = _state_problem(data)
    if why:
        raise PyvfioError(f"cannot read {path}: {why}", fix)
    return data["devices"]


def _state_problem(data):
    """What is wrong with the shape of a state file's JSON, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("devices"), dict):
        return 'not a pyvfio bindings record (no "devices" object)'
    if data.get("version") != 1:
        return f"version {data.get('version')!r} is not 1"
    for bdf, rec in data["devices"].items():
        if not isinstance(rec, dict):
            return f"the entry of {bdf} is not an object"
        for key in ("driver", "driver_override"):
            if rec.get(key) is not None and not isinstance(rec.get(key), str):
                return f"{bdf}: {key} is not a string or null"
        with_ = rec.get("bound_with")
        if not isinstance(with_, list) or not all(isinstance(b, str) for b in with_):
            return f"{bdf}: bound_with is not a list of addresses"
        if rec.get("group") is not None and type(rec.get("group")) is not int:
            return f"{bdf}: group is not an integer or null"
    return None


def save_state(devices, root="/"):
    """Replace the state file atomically (write a temporary file, then rename); the
    caller holds sequence_lock, which made and checked the folder."""
    path = state_path(root)
    write_atomic(path, json.dumps({"version": 1, "devices": devices}, indent=2, sort_keys=True) + "\n",
                 "record the drivers to restore in", keep=False)


@contextlib.contextmanager
def sequence_lock(root="/"):
    """Held for a bind's or unbind's whole sequence of sysfs writes and record
    updates: one at a time, and Ctrl-C/SIGTERM wait until the sequence is done or
    rolled back (then they act: KeyboardInterrupt)."""
    folder = paths.under(root, STATE_DIR)

    def busy(holder):
        return RefusedError(f"another pyvfio bind or unbind is changing drivers (pid {holder})",
                            "wait for it to finish, then run this again")

    hold = signals.held() if threading.current_thread() is threading.main_thread() \
        else contextlib.nullcontext([])
    with hold as late:
        with cardlock.locked(folder, LOCK_FILE, busy, "record the drivers to restore in"):
            yield
    if late:
        raise KeyboardInterrupt


def _still_as_planned(plan, root):
    """Under the lock: each target still has the driver the plan saw (another bind
    or unbind may have run between the plan and the lock)."""
    for t in plan.targets:
        now = paths.link_name(os.path.join(pci.device_dir(t["bdf"], root), "driver")) \
            if pci.exists(t["bdf"], root) else "gone"
        if now != t["driver"]:
            raise RefusedError(f"{t['bdf']} changed while this {plan.action} was planned: it is now on "
                               f"{now or 'no driver'} (another pyvfio {plan.action}?)",
                               f"see `pyvfio info {t['bdf']}`, and run {plan.action} again if still needed")


# --- planning ---------------------------------------------------------------------------

def _sysfs(root, *parts):
    return paths.under(root, "sys/bus/pci", *parts)


def plan_bind(text, group=False, force=False, root="/"):
    """The plan to bind `text` (or, with group, every non-bridge member of its IOMMU
    group) to vfio-pci.  Raises UsageError for a bad address or a bridge."""
    dev = pci.device(text, root)
    if dev.is_bridge:
        raise UsageError(f"{dev.bdf} is a bridge ({dev.class_name})",
                         "vfio-pci binds only endpoint functions; bind the card behind it")
    plan = Plan("bind", dev.bdf, dev.iommu_group)
    members = pci.group_members(dev.iommu_group, root) or [dev.bdf]
    others = [m for m in members if m != dev.bdf]
    if group:
        names = members
    else:
        names = [dev.bdf]
        loose = [pci.device(m, root) for m in others]
        loose = [m for m in loose if pci.breaks_viability(m)]
        if loose:
            plan.notes.append(
                f"IOMMU group {dev.iommu_group} also holds "
                + ", ".join(f"{m.bdf} ({m.driver})" for m in loose)
                + ": VFIO will call the group not viable; use --group to bind them all")
    if not os.path.isdir(_sysfs(root, "drivers", VFIO_DRIVER)):
        release = system.probe(root).kernel
        have = system.vfio_pci_module(release, root)
        if have in ("absent", "no-module-support"):
            raise PyvfioError(f"vfio-pci is not available on kernel {release}"
                              + (" (it cannot load modules)" if have == "no-module-support" else ""),
                              "boot a kernel that has vfio-pci (CONFIG_VFIO_PCI)")
        plan.steps.append(Step(None, None, VFIO_DRIVER))
    for name in names:
        member = pci.device(name, root)
        if member.is_bridge:  # vfio-pci binds endpoints only; the bridge's driver decides
            plan.skipped.append({"bdf": name, "why": f"bridge ({member.class_name}): stays with "
                                                     f"{member.driver or 'no driver'}"})
            if pci.breaks_viability(member):
                plan.notes.append(f"{name}'s driver {member.driver} claims the group's DMA "
                                  "(no driver_managed_dma): VFIO will call the group not viable "
                                  "while it is bound")
            continue
        if member.driver == VFIO_DRIVER:
            plan.skipped.append({"bdf": name, "why": "already bound to vfio-pci"})
            continue
        for why in inuse.host_uses(name, root):
            plan.refusals.append({"bdf": name, "why": why})
        plan.targets.append({"bdf": name, "driver": member.driver,
                             "driver_override": member.driver_override})
        devdir = pci.device_dir(name, root)
        plan.steps.append(Step(name, os.path.join(devdir, "driver_override"), VFIO_DRIVER))
        if member.driver:
            plan.steps.append(Step(name, _sysfs(root, "drivers", member.driver, "unbind"), name))
        plan.steps.append(Step(name, _sysfs(root, "drivers_probe"), name))
    if plan.refusals and not force:
        first = plan.refusals[0]
        more = f" (and {len(plan.refusals) - 1} more)" if len(plan.refusals) > 1 else ""
        raise RefusedError(f"refusing to bind {first['bdf']}: {first['why']}{more}",
                           "stop using it first, or pass --force if you mean it")
    return plan


def plan_unbind(text, root="/"):
    """The plan to give `text`, and every device bound together with it (bind
    --group), back to the driver each had.  A member that has a host driver again
    is left alone.  UsageError if there is nothing to give back."""
    dev = pci.device(text, root)
    state = load_state(root)
    entry = state.get(dev.bdf)
    plan = Plan("unbind", dev.bdf, dev.iommu_group)
    names = [n for n in entry["bound_with"] if n in state or n == dev.bdf] if entry else [dev.bdf]
    for name in names:
        if not pci.exists(name, root):
            plan.skipped.append({"bdf": name, "why": "no longer present"})
            continue
        member = pci.device(name, root)
        rec = state.get(name)
        ours = member.driver_override == VFIO_DRIVER
        if member.driver not in (VFIO_DRIVER, None):
            if ours:  # a bind killed after its first write: the override is undone
                plan.notes.append(f"{name}: still on {member.driver} with driver_override "
                                  "vfio-pci (an interrupted bind): the override is cleared")
                plan.targets.append({"bdf": name, "driver": member.driver,
                                     "restore_to": member.driver, "known": rec is not None})
                plan.steps += _restore_steps(name, member.driver, rec, root)[:1]
                continue
            plan.skipped.append({"bdf": name, "why": f"now on {member.driver}, left alone"})
            continue
        if member.driver is None and rec is None and not ours:
            plan.skipped.append({"bdf": name, "why": "now on no driver, left alone"})
            continue
        if rec is None:
            plan.notes.append(f"{name}: the driver it had before is unknown (not bound by "
                              "pyvfio); the kernel will choose one")
        restore_to = rec["driver"] if rec else None
        plan.targets.append({"bdf": name, "driver": member.driver, "restore_to": restore_to,
                             "known": rec is not None})
        plan.steps += _restore_steps(name, member.driver, rec, root)
    if not plan.targets:
        raise UsageError(f"{dev.bdf} is not bound to vfio-pci (driver: {dev.driver or 'none'})",
                         "nothing to undo")
    return plan


def _restore_steps(bdf, driver, rec, root):
    """Clear (or restore) the override, leave vfio-pci, go back to the old driver:
    by its `bind` file when it is loaded, else by drivers_probe (which also lets
    the kernel choose when the old driver is unknown)."""
    override = (rec or {}).get("driver_override") or ""
    steps = [Step(bdf, os.path.join(pci.device_dir(bdf, root), "driver_override"), override + "\n")]
    if driver:
        steps.append(Step(bdf, _sysfs(root, "drivers", driver, "unbind"), bdf))
    restore_to = rec["driver"] if rec else None
    if restore_to and os.path.isdir(_sysfs(root, "drivers", restore_to)):
        steps.append(Step(bdf, _sysfs(root, "drivers", restore_to, "bind"), bdf))
    elif restore_to or rec is None:
        steps.append(Step(bdf, _sysfs(root, "drivers_probe"), bdf))
    return steps


# --- carrying a plan out ------------------------------------------------------------------

def _check_writable(plan):
    for step in plan.steps:
        if step.path is None:
            if os.geteuid() != 0:
                raise PyvfioError("loading vfio-pci needs root",
                                  f"run `sudo pyvfio {plan.action} {plan.bdf}`")
            continue
        if not os.access(step.path, os.W_OK):
            why = "needs root" if os.path.exists(step.path) else "cannot be written (missing)"
            raise PyvfioError(f"{plan.action} {step.bdf}: {step.path} {why}",
                              f"run `sudo pyvfio {plan.action} {plan.bdf}`")


def _write(kernel, step):
    try:
        kernel.write(step.path, step.value)
    except OSError as exc:
        raise writes.failure(step.describe(), exc) from None


def bind(plan, root="/", kernel=None):
    """Carry out a bind plan; record each device's old driver before touching it.
    A device vfio-pci does not take is given back to its old driver at once."""
    kernel = kernel or Kernel()
    _check_writable(plan)
    with sequence_lock(root):
        _still_as_planned(plan, root)
        return _bind(plan, root, kernel)


def _bind(plan, root, kernel):
    state = load_state(root)
    together = [t["bdf"] for t in plan.targets]
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    recorded = set()
    for step in plan.steps:
        if step.path is None:
            err = kernel.modprobe(step.value)
            if err or not os.path.isdir(_sysfs(root, "drivers", VFIO_DRIVER)):
                raise PyvfioError("vfio-pci is not loaded and `modprobe vfio-pci` failed: "
                                  + (err or "no driver appeared"),
                                  "install/load the vfio-pci module (modprobe vfio-pci)")
            continue
        if step.bdf not in recorded:
            target = next(t for t in plan.targets if t["bdf"] == step.bdf)
            # A record left by an interrupted bind is kept while the device has no
            # driver (it still names the one to restore); else this bind's is newer.
            if step.bdf not in state or target["driver"] is not None:
                state[step.bdf] = {"driver": target["driver"],
                                   "driver_override": target["driver_override"],
                                   "group": plan.group, "bound_with": together, "time": now}
                save_state(state, root)
            recorded.add(step.bdf)
        try:
            _write(kernel, step)
        except PyvfioError as exc:
            _rollback(step.bdf, state, root, kernel)
            exc.message += f"; {step.bdf} was given back"
            raise
        if step.path.endswith("drivers_probe"):
            got = paths.link_name(os.path.join(pci.device_dir(step.bdf, root), "driver"))
            if got != VFIO_DRIVER:
                _rollback(step.bdf, state, root, kernel)
                raise PyvfioError(f"vfio-pci did not take {step.bdf} (driver now: {got or 'none'}); "
                                  "it was given back", "see dmesg: without an IOMMU vfio-pci "
                                  "refuses every device (probe error -22)")
    return state


def _rollback(bdf, state, root, kernel):
    """Undo a half-done bind of one device: its override always; its driver only
    if it lost it (a device still on its old driver is not unbound again)."""
    rec = state.get(bdf)
    driver = paths.link_name(os.path.join(pci.device_dir(bdf, root), "driver"))
    steps = _restore_steps(bdf, driver, rec, root)
    if driver is not None and rec and driver == rec["driver"]:
        steps = steps[:1]
    for step in steps:
        try:
            kernel.write(step.path, step.value)
        except OSError:
            pass
    state.pop(bdf, None)
    save_state(state, root)


def unbind(plan, root="/", kernel=None):
    """Carry out an unbind plan; forget each device once it has its driver back.
    Returns the devices whose driver did not come back: {bdf: driver now}."""
    kernel = kernel or Kernel()
    _check_writable(plan)
    with sequence_lock(root):
        _still_as_planned(plan, root)
        return _unbind(plan, root, kernel)


def _unbind(plan, root, kernel):
    state = load_state(root)
    for step in plan.steps:
        _write(kernel, step)
    for skipped in plan.skipped:            # gone, or back on a driver: nothing to restore
        state.pop(skipped["bdf"], None)
    wrong = {}
    for target in plan.targets:
        bdf = target["bdf"]
        got = paths.link_name(os.path.join(pci.device_dir(bdf, root), "driver"))
        if target["restore_to"] and got != target["restore_to"]:
            wrong[bdf] = got
        else:
            state.pop(bdf, None)
    save_state(state, root)
    return wrong
