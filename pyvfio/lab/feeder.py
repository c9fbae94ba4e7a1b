"""The host's end of the lab cards' chardevs: bytes written from outside the guest,
the source of external interrupts (`pyvfio run --source external`).

Each fed card (config.FED_CARDS) has a listening unix socket in the run folder
(qemu.feed_socket).  The guest asks for bytes through the run share, which both
sides see (9p, cache=none): it writes feed<i>.request, {"bytes": N, "chunk": C,
"gap_ms": G}; the feeder connects, writes N bytes in chunks of C with G ms between
them, and answers with feed<i>.done, {"sent": N} (or {"error": ...}); a guest that
stops draining holds the writer back, so after "limit_s" (default 60) it answers
with what it could send.  QEMU's
16550 takes a byte only when its receive buffer has room, so a guest that has not
drained yet holds the writer back: nothing is dropped on the way.  Whatever the
card transmits is read and discarded, so the guest's writes never block on it.
"""
import json
import os
import select
import socket
import threading
import time

from . import qemu
from .config import FED_CARDS

POLL_S = 0.02


def request_path(run_dir, i):
    return run_dir / f"feed{i}.request"


def done_path(run_dir, i):
    return run_dir / f"feed{i}.done"


def pattern(n):
    """The bytes fed: a counting pattern, so a guest could check order as well."""
    return bytes(k & 0xFF for k in range(n))


class Feeder:
    def __init__(self, run_dir, i):
        self.run_dir, self.i = run_dir, i
        self.sock = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name=f"lab-feeder-{i}", daemon=True)

    def _connect(self):
        if self.sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(qemu.feed_socket(self.run_dir, self.i)))
            s.setblocking(False)
            self.sock = s
        return self.sock

    def _discard_input(self, timeout):
        if self.sock is None:
            self.stop.wait(timeout)
            return
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if ready:
            try:
                gone = not self.sock.recv(4096)
            except BlockingIOError:
                gone = False
            except OSError:                         # reset: QEMU is going away
                gone = True
            if gone:
                self.sock.close()
                self.sock = None

    def _send(self, data, deadline):
        view = memoryview(data)
        while view and not self.stop.is_set() and time.monotonic() < deadline:
            _, writable, _ = select.select([], [self.sock], [], POLL_S)
            if writable:
                try:
                    view = view[self.sock.send(view):]
                except BlockingIOError:
                    pass
            self._discard_input(0)
        return len(data) - len(view)

    def _feed(self, req):
        n, chunk, gap = int(req["bytes"]), max(1, int(req.get("chunk", 1))), req.get("gap_ms", 0)
        data, sent = pattern(n), 0
        deadline = time.monotonic() + float(req.get("limit_s", 60))
        self._connect()
        while sent < n and not self.stop.is_set() and time.monotonic() < deadline:
            sent += self._send(data[sent:sent + chunk], deadline)
            if gap and sent < n:
                time.sleep(gap / 1000)
        return {"sent": sent}

    def _serve(self):
        req_file, done_file = request_path(self.run_dir, self.i), done_path(self.run_dir, self.i)
        while not self.stop.is_set():
            self._discard_input(POLL_S)
            if not req_file.exists():
                continue
            try:
                req = json.loads(req_file.read_text())
                req_file.unlink()
                answer = self._feed(req)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            tmp = done_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(answer))
            os.replace(tmp, done_file)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        if self.sock is not None:
            self.sock.close()


class Feeders:
    """One feeder per fed card of the run, for the length of the boot."""

    def __init__(self, cfg, run_dir):
        self.feeders = [Feeder(run_dir, i) for i, c in enumerate(cfg.cards) if c in FED_CARDS]

    def __enter__(self):
        for f in self.feeders:
            f.thread.start()
        return self

    def __exit__(self, *exc):
        for f in self.feeders:
            f.close()
