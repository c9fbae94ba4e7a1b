"""Run one QEMU guest: capture its console, enforce the timeout, split the
console into boot log and the command's output (between init.sh's markers)."""
import collections
import dataclasses
import queue
import subprocess
import sys
import threading
import time

from . import progress

MARK = "@@pyvfio-lab: "


@dataclasses.dataclass
class Outcome:
    qemu_status: int = None
    timed_out: bool = False
    stopped: bool = False      # the caller's stop event was set
    output: list = dataclasses.field(default_factory=list)
    console: collections.deque = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=400))
    init_failed: str = None   # "step: message" from init.sh
    command_started: bool = False
    command_ended: bool = False
    seconds: float = 0.0

    def tail(self, n=40):
        return "\n".join(list(self.console)[-n:])


def _pump(stream, q):
    for raw in iter(stream.readline, b""):
        q.put(raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r", ""))
    q.put(None)


def run(cmd, timeout, echo=None, stop=None):
    """Boot; echo(line) is called for each line of the command's output as it comes.
    A set `stop` (a threading.Event: a caller with VMs in threads was interrupted)
    ends the boot within a second."""
    out = Outcome()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    q = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, q), daemon=True).start()
    deadline = t0 + timeout
    try:
        while True:
            try:
                line = q.get(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                if stop is not None and stop.is_set():
                    out.stopped = True
                    break
                if time.monotonic() >= deadline:
                    out.timed_out = True
                    break
                continue
            if line is None:
                break
            out.console.append(line)
            if line.startswith(MARK):
                msg = line[len(MARK):]
                if msg == "command start":
                    out.command_started = True
                elif msg.startswith("command end"):
                    out.command_ended = True
                elif msg.startswith("init-failed "):
                    out.init_failed = msg[len("init-failed "):]
                elif msg.startswith("bound "):   # where each card is: the BDF a command names
                    progress.say(msg)
                continue
            if out.command_started and not out.command_ended:
                out.output.append(line)
                if echo:
                    echo(line)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        out.qemu_status = proc.wait()
        out.seconds = time.monotonic() - t0
    return out


def echo_stdout(line):
    print(line, flush=True)
    sys.stdout.flush()
