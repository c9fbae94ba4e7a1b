"""--source external on POWER9 XIVE with controller masking and lazy disable (the
seed): bytes from the host get one interrupt through, then the line stays stuck
while the 16550 reports data pending.  The watchdog sees exactly that ("the card
reports pending but no trigger came"), services the card by polling, and the run
ends with exit 5; every byte written is still drained."""
import json
import subprocess
import sys
import time

import pytest

from pyvfio.lab import guest

pytestmark = pytest.mark.lab


def test_a_stuck_line_from_outside_is_a_detected_stall(fed_card, tmp_path):
    bdf, out = fed_card["bdf"], tmp_path / "run.json"
    run = subprocess.Popen([sys.executable, "-m", "pyvfio", "run", bdf, "--source", "external",
                            "-D", "60", "--watchdog", "300", "-q", "--json", str(out)],
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
    assert run.returncode == 5, stdout + stderr
    r = json.loads(out.read_text())
    assert r["verdict"] == "stall after 1", stdout
    assert r["stalls"][0]["card_pending"] and r["counts"]["polled"] == 1
    assert r["external"]["items"] == 10 and r["external"]["items_polled"] >= 1, stdout
