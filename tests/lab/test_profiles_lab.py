"""`pyvfio profile check FILE BDF` against each bound card: the profile that drives
it holds on the real card (IDs, BARs, identification, one raise/ack cycle with INTx
armed), and a profile whose ack does not acknowledge is caught on the card."""

import json
import pathlib
import subprocess
import sys

import pytest

from pyvfio.lab import guest
from pyvfio.lab.config import CARDS
from pyvfio.profiles import available

pytestmark = pytest.mark.lab


def pyvfio(*args):
    p = subprocess.run([sys.executable, "-m", "pyvfio", *args], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def _profile_for(card):
    vendor, device = (int(x, 16) for x in CARDS[card][1].split(":"))
    return next(p for p in available().values() if (vendor, device) in p.ids)


def _text_of(card):
    return pathlib.Path(_profile_for(card).path).read_text()


def test_the_cards_profile_holds_on_the_card(card):
    spec = _profile_for(card["card"])
    p = pyvfio("profile", "check", str(spec.path), card["bdf"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "FAIL" not in p.stdout and "the interrupt came" in p.stdout and "cause was cleared" in p.stdout


def test_an_ack_that_does_not_acknowledge_is_caught(tmp_path):
    """On the edu card (every lab boot has one)."""
    text = _text_of("edu")
    # ack reads the status but never writes it back to IRQ_ACK: the line stays up
    text = text.replace('ack = [{ read = "IRQ_STATUS", mask = 0xffffffff }, { write_cause = "IRQ_ACK" }]',
                        'ack = [{ read = "IRQ_STATUS", mask = 0xffffffff }]')
    bad = tmp_path / "edu-noack.toml"
    bad.write_text(text)
    p = pyvfio("profile", "check", str(bad), guest.bdf_of("edu"))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL the cause was not cleared" in p.stdout, p.stdout


def test_run_takes_a_profile_file(tmp_path):
    """pyvfio run --profile FILE.toml: a user's copy of edu, under its own name."""
    mine = tmp_path / "myedu.toml"
    mine.write_text(_text_of("edu").replace('name = "edu"', 'name = "myedu"'))
    out = tmp_path / "r.json"
    p = pyvfio("run", guest.bdf_of("edu"), "-l", "200", "-q", "--profile", str(mine), "--json", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    assert res["card"]["profile"] == "myedu" and res["card"]["source"] == str(mine)
    assert res["counts"]["delivered"] == 200
