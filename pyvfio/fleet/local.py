"""A labgrid coordinator and exporter on this machine, on 127.0.0.1 only: for the lab
machines (`pyvfio lab machine`, SSH forwarded to 127.0.0.1) and the tests.  The way
labgrid's own tests start them (tests/conftest.py there), as processes that log to
a folder; stop() ends exactly the processes start() began.

    lab = LocalLab(folder).start()            # coordinator on a free port
    lab.export("lab", {"x86": Machine(port=2222, cards=[...])})
    places.create_place(lab.address, "x86", "lab/x86/*/*", {"arch": "x86_64"})
    lab.stop()
"""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import yaml

from ..errors import PyvfioError
from ..results import open_log, write_atomic

READY_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Exported:
    """One machine as an exporter group: its forwarded SSH and its cards
    ([{"name", "bdf", "profile", "kind", "description"}])."""
    port: int
    username: str = "root"
    address: str = "127.0.0.1"
    cards: list = field(default_factory=list)


def exports(machines):
    """The exporter's YAML for {group: Exported}."""
    conf = {}
    for group, m in machines.items():
        g = {"NetworkService": {"address": m.address, "port": int(m.port), "username": m.username}}
        for c in m.cards:
            c = dict(c)
            g[c.pop("name")] = {"cls": "PyvfioCard", **{k: str(v) for k, v in c.items() if v is not None}}
        conf[group] = g
    return yaml.safe_dump(conf, sort_keys=False)


def _exe(name):
    return os.path.join(os.path.dirname(sys.executable), name)


class LocalLab:
    def __init__(self, folder):
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.procs = []
        self.address = None

    def _spawn(self, name, cmd):
        log = open_log(os.path.join(self.folder, f"{name}.log"), append=True)
        # its own session (a Ctrl-C meant for a test stops it through stop(), in order),
        # and it dies with us should stop() never run (a killed test session)
        from ..lab.machine import _set_pdeathsig
        p = subprocess.Popen(cmd, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_set_pdeathsig)
        log.close()
        self.procs.append((name, p))
        return p

    def _wait_log(self, name, text, proc):
        path = os.path.join(self.folder, f"{name}.log")
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            with open(path, "rb") as f:
                if text.encode() in f.read():
                    return
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        with open(path, "rb") as f:
            tail = f.read().decode(errors="replace").strip().splitlines()[-3:]
        raise PyvfioError(f"labgrid {name} did not start: {' / '.join(tail)}")

    def start(self, port=None):
        port = port or free_port()
        self.address = f"127.0.0.1:{port}"
        p = self._spawn("coordinator", [_exe("labgrid-coordinator"), "--listen", self.address])
        self._wait_log("coordinator", "Coordinator ready", p)
        return self

    def export(self, name, machines):
        """An exporter `name` publishing {group: Exported}."""
        path = os.path.join(self.folder, f"exports-{name}.yaml")
        write_atomic(path, exports(machines), "write the exporter's configuration to", keep=False)
        p = self._spawn(f"exporter-{name}", [_exe("labgrid-exporter"), "-c", self.address, "--name", name,
                                             "--hostname", "127.0.0.1", path])
        self._wait_log(f"exporter-{name}", "connected to coordinator", p)
        return p

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []

    def __enter__(self):
        return self.start() if self.address is None else self

    def __exit__(self, *exc):
        self.stop()
