"""`pyvfio profile check FILE BDF` against each bound card: the profile that drives
it holds on the real card (IDs, BARs, identification, one raise/ack cycle with INTx
armed), and a profile whose ack does not acknowledge is caught on the card."""

import json
import pathlib
import subprocess
import sys

import pytest

from pyvfio.lab import in_guest
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
    p = pyvfio("profile", "check", str(bad), in_guest.bdf_of("edu"))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL the cause was not cleared" in p.stdout, p.stdout


def test_run_takes_a_profile_file(tmp_path):
    """pyvfio run --profile FILE.toml: a user's copy of edu, under its own name."""
    mine = tmp_path / "myedu.toml"
    mine.write_text(_text_of("edu").replace('name = "edu"', 'name = "myedu"'))
    out = tmp_path / "r.json"
    p = pyvfio("run", in_guest.bdf_of("edu"), "-l", "200", "-q", "--profile", str(mine), "--json", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    assert res["card"]["profile"] == "myedu" and res["card"]["source"] == str(mine)
    assert res["counts"]["delivered"] == 200


@pytest.mark.parametrize("fault", ["uncleared", "unraised", "spurious"])
def test_a_broken_profile_gets_its_verdict_and_exit_8(fault, facts, tmp_path, capsys):
    """The three broken edu profiles (broken_profiles.py), each a `pyvfio run` on the
    real edu (in-process: no interpreter start-up in the guest): its verdict, never
    ok or stall, and exit 8.  Where the lab's lazy policy stalls the line (XIVE,
    nointxmask=1) the run asks for unlazy, so that the profile's fault shows, not the
    kernel's."""
    from pyvfio.cli import main

    from .broken_profiles import verdict_of, write

    bad = write(fault, tmp_path)
    out = tmp_path / "r.json"
    args = ["run", in_guest.bdf_of("edu"), "-l", "3", "-q", "--watchdog", "200", "--profile", str(bad),
            "--json", str(out)]
    if facts["ic"] == "xive" and facts["nointxmask"] == 1 and facts["policy"] == "lazy":
        args += ["--policy", "unlazy"]
    code = main(args)
    printed = capsys.readouterr()
    result = json.loads(out.read_text())
    line = next(x for x in printed.out.splitlines() if x.startswith("verdict: "))
    print(f"lab verdict ({fault}): {line!r}, exit {code}", file=sys.stderr)   # quoted in the batch log
    assert line == f"verdict: {verdict_of(fault)}" and code == 8, printed.out + printed.err
    assert result["outcome"] == {**result["outcome"], "state": "profile", "fault": fault}
    assert not result["stalls"]
