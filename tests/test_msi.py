"""MSI and MSI-X beside INTx, on the host: what `run --irq` refuses, in one line, before
a card is touched or where the card lacks it (the model card has no MSI capability),
and the profile's word on which kinds it serves.  The steps and the C loop:
tests/test_cloop.py; the real vfio-pci path: tests/lab/test_msi.py."""

import subprocess
import sys

import pytest

from pyvfio.engine import Run, RunConfig
from pyvfio.errors import UsageError
from pyvfio.profiles import probe
from pyvfio.sim import ModelHost


@pytest.mark.parametrize("kw,words", [
    ({"irq": "msi", "unmask": "eventfd"}, "--unmask eventfd unmasks the INTx line; MSI is an edge"),
    ({"irq": "msix", "rearm_each": True}, "--rearm-each re-arms the INTx line after every interrupt; MSI-X"),
    ({"irq": "level"}, "unknown interrupt kind 'level'"),
])
def test_intx_only_modes_and_unknown_kinds_are_refused(kw, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace("+", r"\+")):
        RunConfig(**kw).check()


@pytest.mark.parametrize("irq,name", [("msi", "MSI"), ("msix", "MSI-X")])
def test_a_card_without_the_capability_is_refused_and_left_as_it_was(irq, name):
    host = ModelHost("ioapic", "2.3", "unlazy")
    prof = probe(host, "rw")
    with pytest.raises(UsageError) as exc:
        Run(host, prof, RunConfig(loops=10, engine="python", irq=irq)).execute()
    assert f"has no {name} (VFIO_DEVICE_GET_IRQ_INFO counts 0 vectors" in str(exc.value)
    r = Run(host, prof, RunConfig(loops=10, engine="python")).execute()   # INTx still works
    assert (r.verdict, r.counts.delivered) == ("ok", 10)


def test_a_profile_serves_only_the_kinds_it_lists():
    host = ModelHost("ioapic", "2.3", "unlazy")
    prof = probe(host, "rw")
    assert prof.spec.irqs == ("intx", "msi") and prof.describe()["irqs"] == ["intx", "msi"]
    prof.check_irq("msi")
    with pytest.raises(UsageError, match="profile edu serves intx, msi, not msix"):
        prof.check_irq("msix")


@pytest.mark.parametrize("args,words", [
    (["--irq", "msi", "--policy", "lazy"], "--policy sets the INTx line's masking policy; --irq msi has no line"),
    (["--irq", "msix", "--unmask", "eventfd"], "MSI-X is an edge with nothing to unmask"),
    (["--irq", "msi", "--rearm-each"], "--rearm-each re-arms the INTx line"),
])
def test_cli_refuses_in_one_line_before_the_card(args, words):
    p = subprocess.run([sys.executable, "-m", "pyvfio", "run", "0000:00:03.0", *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and words in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
