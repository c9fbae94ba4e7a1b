"""--source external on POWER9 XIVE with controller masking and lazy disable (the
seed).  With pyvfio raising, the line stalls after one interrupt every time
(test_engine_lab.py, test_policy.py).  From outside it need not: bytes that come
seconds apart found the line working in one lab run (3 delivered, host count 3)
and stuck after one in another, so the stall is not asserted here.  What must hold
either way: a stall is seen as the card reporting data pending with no trigger
(serviced by polling, exit 5), and every byte written on the host is drained."""
import json
import subprocess
import sys
import time

import pytest

from pyvfio.lab import guest

pytestmark = pytest.mark.lab


def test_stuck_or_not_every_byte_from_outside_is_drained(fed_card, tmp_path):
    bdf, out = fed_card["bdf"], tmp_path / "run.json"
    run = subprocess.Popen([sys.executable, "-m", "pyvfio", "run", bdf, "--source", "external",
                            "-D", "6", "--watchdog", "300", "-q", "--json", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in run.stderr:
            if "armed: waiting for interrupts from outside" in line:
                break
        assert guest.feed(bdf, 1) == 1      # the one interrupt that gets through
        time.sleep(1.0)
        assert guest.feed(bdf, 9) == 9      # fits the receive FIFO: pending, no trigger
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    r = json.loads(out.read_text())
    if run.returncode == 5:
        assert r["verdict"].startswith("stall after "), stdout
        assert r["stalls"][0]["card_pending"] and r["counts"]["polled"] == 1
        assert r["external"]["items_polled"] >= 1, stdout
    else:
        assert (run.returncode, r["verdict"]) == (0, "ok"), stdout + stderr
    assert r["external"]["items"] == 10, stdout
