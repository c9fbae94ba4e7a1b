"""Cards the user brings (`pyvfio lab ARCH --card qemu:DEVICE`): bound to vfio-pci
by the IDs QEMU gave, and driven by the built-in profile `pyvfio run` finds by those
IDs with no --profile (sdhci-pci: profiles/builtin/sdhci.toml, the profile guide's
worked example).  Collected only in a boot with such a card (conftest.py)."""
import json
import sys

import pytest

from pyvfio import profiles

pytestmark = pytest.mark.lab


def _builtin_for(brought):
    vendor, device = (int(x, 16) for x in brought["id"].split(":"))
    return next(p for p in profiles.available().values() if p.accepts(vendor, device))


def test_the_profile_found_by_id_holds_on_the_card(brought, capsys):
    from pyvfio.cli import main

    code = main(["profile", "check", str(_builtin_for(brought).path), brought["bdf"]])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out and "the interrupt came" in out and "cause was cleared" in out


def test_run_finds_the_builtin_profile_by_id_and_delivers_every_interrupt(brought, facts, tmp_path, capsys):
    from pyvfio.cli import main

    out = tmp_path / "r.json"
    args = ["run", brought["bdf"], "-l", "100", "-q", "--json", str(out)]
    # XIVE, controller masking, the lab's lazy policy: the kernel's stall, not the card's
    if facts["ic"] == "xive" and facts["nointxmask"] == 1 and facts["policy"] == "lazy":
        args += ["--policy", "unlazy"]
    code = main(args)
    printed = capsys.readouterr()
    res = json.loads(out.read_text())
    print(f"lab {brought['card']}: {res['counts']}", file=sys.stderr)   # quoted in the batch log
    assert code == 0, printed.out + printed.err
    spec = _builtin_for(brought)
    assert res["card"]["profile"] == spec.name and res["card"]["source"] == str(spec.path)
    assert res["counts"]["delivered"] == 100
