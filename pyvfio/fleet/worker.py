"""One place of a fleet run, in a process of its own (labgrid's client keeps one
session per process):

    python -m pyvfio.fleet.worker --coordinator ADDR --place P --scenario FILE --out DIR/P ...

reserve the place by name and wait in labgrid's queue (--acquire-wait), acquire it,
open its target (the NetworkService through SSHDriver, the PyvfioCard resources),
install pyvfio there (pyvfio.deploy, the one home of installing pyvfio on a machine)
or check the one named by --remote-pyvfio, copy the scenario, run
`pyvfio repro BDF --scenario ... --json ...` on the place's card (or --model),
fetch the JSON, and release the place and cancel the reservation whatever happened.
It writes DIR/P/worker.json (atomically): exit, error, card, kernel, tags, result.

Exit: 0 or 1 as `pyvfio repro` (every cell as expected, or not), 4 when the place
could not be had, 9 when the machine failed (no SSH, install, a repro that did not
finish, no result), 130 when interrupted (SIGTERM from fleet run, Ctrl-C).
"""

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from ..errors import (EXIT_INTERRUPTED, EXIT_MACHINE, EXIT_NOT_AS_EXPECTED, EXIT_OK, EXIT_REFUSED,  # noqa: F401
                      PyvfioError)
from ..report import cells as C
from ..results import write_atomic, write_json
from ..vocabulary import SWITCHED
from . import places

# the worker's status, one of the command line's (pyvfio.errors.EXITS)
EXIT_MISMATCH, EXIT_PLACE = EXIT_NOT_AS_EXPECTED, EXIT_REFUSED
RESULT = "result.json"
STATE = "worker.json"


class MachineError(PyvfioError):
    exit_code = EXIT_MACHINE


# The remote repro, interrupted as Ctrl-C would (pyvfio's teardown, partial results),
# killed if it has not ended in 10 s; only the process the pid file names, if it is a repro.
STOP_REMOTE = ("p=$(cat {pidfile} 2>/dev/null) && grep -qa repro /proc/$p/cmdline 2>/dev/null || exit 0; "
               "kill -INT $p; for i in $(seq 100); do kill -0 $p 2>/dev/null || exit 0; sleep 0.1; done; "
               "kill -KILL $p")


def _terminate(signum, frame):
    raise KeyboardInterrupt


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m pyvfio.fleet.worker")
    p.add_argument("--coordinator", required=True)
    p.add_argument("--place", required=True)
    p.add_argument("--scenario", required=True, help="a local scenario file")
    p.add_argument("--out", required=True, help="this place's folder")
    p.add_argument("--card", help="which of the place's cards (resource name, profile or kind)")
    p.add_argument("--model", action="store_true", help="run the scenario on the machine's model host")
    p.add_argument("--remote-pyvfio", help="use the pyvfio installed at this path on the machine")
    p.add_argument("--key", help="SSH private key for the machines")
    p.add_argument("--workdir", default="/tmp/pyvfio-fleet")
    p.add_argument("--timeout", type=float, default=1800, help="seconds for the repro on the machine")
    p.add_argument("--acquire-wait", type=float, default=60)
    p.add_argument("--connect-timeout", type=float, default=30)
    return p.parse_args(argv)


class Worker:
    def __init__(self, args):
        self.a = args
        self.state = {"place": args.place, "exit": None, "error": None, "result": None,
                      "card": None, "kernel": None, "tags": {}, "user": places.who(),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": {}}
        self.token = None
        self.acquired = False
        self.target = None
        # what cleanup undoes, each set once its step has run (None: nothing to undo)
        self.stop_remote = self.partial = self.rmmod = self.unbind = None

    def save(self):
        write_json(os.path.join(self.a.out, STATE), self.state)

    def step(self, name, t0):
        self.state["steps"][name] = round(time.monotonic() - t0, 2)

    def run(self):
        a = self.a
        os.makedirs(a.out, exist_ok=True)
        os.environ["LG_COORDINATOR"] = a.coordinator     # for labgrid's RemotePlace
        try:
            self.state["exit"] = self._run()
        except places.PlaceError as exc:
            self.state.update(exit=EXIT_PLACE, error=str(exc))
        except PyvfioError as exc:
            self.state.update(exit=EXIT_MACHINE, error=str(exc))
        except KeyboardInterrupt:
            self.state.update(exit=EXIT_INTERRUPTED, error="interrupted")
        except Exception as exc:    # labgrid's own failures: a machine failure, in one line
            self.state.update(exit=EXIT_MACHINE, error=f"{type(exc).__name__}: {exc}")
        finally:
            # released whatever happened; a second signal must not stop the release
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.cleanup()
            self.save()
        return self.state["exit"]

    def _run(self):
        a = self.a
        t0 = time.monotonic()
        self.token = places.reserve(a.coordinator, a.place, a.acquire_wait)
        places.acquire(a.coordinator, a.place, self.token)
        self.acquired = True
        self.step("acquire_s", t0)
        t0 = time.monotonic()
        self.target, ssh, cards = places.target(a.place, a.key, a.connect_timeout)
        self.step("connect_s", t0)
        from labgrid.resource import RemotePlace
        rp = self.target.get_resource(RemotePlace)
        self.state["tags"] = dict(rp.tags or {})
        run = lambda cmd, timeout=600: self._ssh_run(ssh, cmd, timeout)  # noqa: E731
        rc, out = run("uname -r")
        self.state["kernel"] = out.strip() or None
        t0 = time.monotonic()
        pyvfio = self.install(ssh, run)
        self.step("install_s", t0)
        work = f"{a.workdir}/{a.place}"     # places may share a machine (or a workdir)
        rc, _ = run(f"mkdir -p {shlex.quote(work)}")
        scen = f"{work}/{os.path.basename(a.scenario)}"
        ssh.put(a.scenario, scen)
        remote_json = f"{work}/result.json"
        if a.model:
            where = "--model"
        else:
            from .resources import pick
            card = pick(cards, a.card)
            if card is None:
                names = ", ".join(f"{c.name} ({c.profile}, {c.bdf})" for c in cards) or "none"
                raise MachineError(f"{a.place}: no single card fits {a.card or 'the scenario'} (cards: {names})",
                                   "name one with --place-card, or describe the place's cards (fleet README)")
            self.state["card"] = card.describe()
            where = shlex.quote(card.bdf)
            t0 = time.monotonic()
            self.bind(run, pyvfio, card.bdf)
            self.policy_module(run)
            self.step("prepare_s", t0)
        self.save()
        t0 = time.monotonic()
        # A command over SSH without a tty outlives the session: the repro's pid, so that
        # an interrupted worker stops it (cleanup) before it gives the card back
        pidf = shlex.quote(f"{work}/repro.pid")
        self.stop_remote = lambda: run(STOP_REMOTE.format(pidfile=pidf), 60)
        local = os.path.join(a.out, RESULT)
        self.partial = lambda: self._fetch(ssh, remote_json, local)
        rc, out = run(f"rm -f {shlex.quote(remote_json)}; cd {shlex.quote(work)} && echo $$ > {pidf} && "
                      f"exec {shlex.quote(pyvfio)} repro {where} --scenario {shlex.quote(scen)} "
                      f"--json {shlex.quote(remote_json)} 2>&1", timeout=a.timeout)
        self.stop_remote = self.partial = None
        self.step("repro_s", t0)
        write_atomic(os.path.join(a.out, "repro.log"), out, "write the log to", keep=False)
        try:
            self._fetch(ssh, remote_json, local)
        except Exception as exc:
            tail = " / ".join(out.strip().splitlines()[-2:])
            raise MachineError(f"{a.place}: pyvfio repro exited {rc} and left no result ({tail or exc})") from None
        if rc not in (EXIT_OK, EXIT_MISMATCH):
            tail = " / ".join(out.strip().splitlines()[-2:])
            raise MachineError(f"{a.place}: pyvfio repro exited {rc}: {tail}")
        return rc

    def _fetch(self, ssh, remote_json, local):
        """The repro's JSON, checked, as this place's result (an interrupted repro
        writes the cells it measured before it stopped)."""
        # fetched into a folder of ours, then written as every result file is
        # (pyvfio/results.py): scp would write through a link planted at `local`
        tmp = tempfile.mkdtemp(prefix=".pyvfio-fetch-", dir=self.a.out)
        try:
            ssh.get(remote_json, os.path.join(tmp, RESULT))
            C.load(os.path.join(tmp, RESULT))
            with open(os.path.join(tmp, RESULT)) as f:
                write_atomic(local, f.read(), "write the fetched result to")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.state["result"] = RESULT

    def _ssh_run(self, ssh, cmd, timeout):
        try:
            stdout, stderr, rc = ssh.run(cmd, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise MachineError(f"{self.a.place}: `{cmd[:60]}` did not finish in {timeout:.0f} s") from None
        return rc, "\n".join(stdout + stderr)

    def install(self, ssh, run):
        """The path of pyvfio on the machine: --remote-pyvfio checked, or installed by
        pyvfio.deploy (through this SSHDriver's run and put)."""
        a = self.a
        if a.remote_pyvfio:
            rc, out = run(f"{shlex.quote(a.remote_pyvfio)} --version")
            if rc or "pyvfio" not in out:
                raise MachineError(f"{a.place}: {a.remote_pyvfio} --version failed: {out.strip()[-200:]}",
                                   "install pyvfio there, or drop --remote-pyvfio to install it")
            self.state["pyvfio"] = out.strip()
            return a.remote_pyvfio
        try:
            from ..deploy import deploy
        except ImportError:
            raise MachineError("this pyvfio cannot install itself on a machine (no pyvfio.deploy)",
                               "install pyvfio on the machines and pass --remote-pyvfio PATH") from None
        path = deploy(lambda cmd: run(cmd, 1200), lambda local, remote: ssh.put(local, remote))
        rc, out = run(f"{shlex.quote(path)} --version")
        self.state["pyvfio"] = out.strip()
        if rc:
            raise MachineError(f"{a.place}: pyvfio installed at {path} does not run: {out.strip()[-200:]}")
        return path

    def bind(self, run, pyvfio, bdf):
        """The place names this card for pyvfio: bind it to vfio-pci if it is not (as
        `pyvfio bind` does for a user, refusing a card the host uses), and give it back
        to its driver at the end (self.unbind)."""
        rc, out = run(f"basename \"$(readlink /sys/bus/pci/devices/{shlex.quote(bdf)}/driver)\"")
        if out.strip() == "vfio-pci":
            return
        rc, out = run(f"{shlex.quote(pyvfio)} bind {shlex.quote(bdf)} 2>&1")
        if rc:
            raise MachineError(f"{self.a.place}: pyvfio bind {bdf} exited {rc}: {out.strip()[-200:]}")
        self.state["bound"] = bdf
        self.unbind = lambda: run(f"{shlex.quote(pyvfio)} unbind {shlex.quote(bdf)}", 60)

    def policy_module(self, run):
        """A scenario with lazy/unlazy cells needs pyvfio_policy.ko loaded: build it as
        docs/usage.md's "On your lab machines" says, from the sdist pyvfio.deploy left on
        the machine, against its own headers, and insmod it (rmmod at the end)."""
        from ..repro.scenario import load
        if not set(SWITCHED) & set(load(self.a.scenario).axes.get("policy", ())):
            return
        rc, _ = run("test -d /sys/module/pyvfio_policy")
        if rc == 0:
            return
        if self.a.remote_pyvfio:
            raise MachineError(f"{self.a.place}: the scenario's lazy/unlazy cells need pyvfio_policy.ko loaded",
                               "build and insmod tools/policy there (docs/usage.md: On your lab machines)")
        from ..deploy import DEFAULT_WORKDIR
        src = "/tmp/pyvfio-fleet-policy"
        rc, out = run(f"rm -rf {src} && mkdir -p {src} && tar xzf {DEFAULT_WORKDIR}/dist/pyvfio-*.tar.gz -C {src} "
                      f"&& make -C {src}/pyvfio-*/tools/policy && insmod {src}/pyvfio-*/tools/policy/pyvfio_policy.ko"
                      " 2>&1", 900)
        if rc:
            raise MachineError(f"{self.a.place}: building the policy module failed: {out.strip()[-200:]}")
        self.state["policy_module"] = "built and loaded"
        self.rmmod = lambda: run("rmmod pyvfio_policy", 60)

    def cleanup(self):
        a = self.a
        if self.stop_remote is not None:
            try:
                self.stop_remote()
                self.partial()  # what it measured before it stopped
            except Exception:   # a machine that died mid-run has nothing left running
                pass
        if self.rmmod is not None:
            try:
                self.rmmod()
            except Exception:
                pass
        if self.unbind is not None:
            try:
                self.unbind()
            except Exception:   # a machine that died mid-run: nothing to give back
                pass
        if self.target is not None:
            try:
                self.target.cleanup()
            except Exception:   # a dead machine's SSH master may already be gone
                pass
        if self.acquired:
            places.release(a.coordinator, a.place)
        if self.token:
            places.cancel(a.coordinator, self.token)


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)
    args = parse(sys.argv[1:] if argv is None else argv)
    w = Worker(args)
    code = w.run()
    print(f"{args.place}: exit {code}" + (f": {w.state['error']}" if w.state["error"] else ""),
          file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

