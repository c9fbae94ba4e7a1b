"""One home per fact: each fact below is decided in one module, and these tests run
every caller through the same table, so a second home that drifts fails here."""

import itertools
import pathlib
import re
import types

import pytest

from pyvfio import unlazy_fix
from pyvfio.host import masking
from pyvfio.host.config import IntxMaskSupport
from pyvfio.vfio.intx_probe import Probe
from pyvfio.host.irq_route import LEARNED, RoutedIrq

from fixtures.fakehost import FakeHost

# what vfio-pci does: nointxmask, what config space / the write probe says, what the
# kernel did when INTx was enabled and masked ("ebusy": it refused, None: not probed)
# -> where it masks (None: unknown)
MASKING = [
    (nim, supported, seen, masking.CONTROLLER if nim else
     {"device": masking.DEVICE, "controller": masking.CONTROLLER}.get(seen) or
     {True: masking.DEVICE, False: masking.CONTROLLER, None: None}[supported])
    for nim, supported, seen in itertools.product((0, 1), (True, False, None),
                                                   (None, "device", "controller", "ebusy"))]


def _probe(seen):
    if seen is None:
        return None
    route = RoutedIrq(22, LEARNED, 11, "sysfs irq read 22 while enabled")
    return Probe(route, None if seen == "ebusy" else seen, "EBUSY" if seen == "ebusy" else None, "seen")


@pytest.mark.parametrize("nim,supported,seen,where", MASKING)
def test_the_masking_rule(nim, supported, seen, where):
    support = IntxMaskSupport(supported, "how")
    assert masking.masked_at(nim, masking.pci_2_3(support, _probe(seen))) == where
    assert masking.exclusive(where) == (None if where is None else where == masking.CONTROLLER)


@pytest.mark.parametrize("nim,supported,seen,where", MASKING)
def test_doctor_masks_where_the_rule_says(nim, supported, seen, where):
    from pyvfio.doctor.masking import decide
    got, why, check = decide(IntxMaskSupport(supported, "how"), types.SimpleNamespace(nointxmask=nim),
                             _probe(seen))
    assert got == (where or masking.CONTROLLER)     # doctor treats unknown as DisINTx-
    assert check.name == "disintx" and why


@pytest.mark.parametrize("nim,supported,seen,where", MASKING)
def test_info_exclusive_is_the_rule(tmp_path, monkeypatch, nim, supported, seen, where):
    from pyvfio.cli import info_cmd
    from pyvfio.vfio import disintx_probe, intx_probe
    h = FakeHost(tmp_path)
    h.add_driver("vfio-pci")
    h.write("sys/module/vfio_pci/parameters/nointxmask", "YN"[not nim] + "\n")
    h.add_device("0000:00:10.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=4, irq=11, line=11)
    monkeypatch.setattr(disintx_probe, "support", lambda dev, root: IntxMaskSupport(supported, "how"))
    monkeypatch.setattr(intx_probe, "needed", lambda *a: True)
    monkeypatch.setattr(intx_probe, "probe", lambda dev, root: (_probe(seen), None))
    got, _ = info_cmd.gather("0000:00:10.0", h.root)
    assert got["host"]["exclusive_needed"] == masking.exclusive(where)


@pytest.mark.parametrize("nim,card", list(itertools.product((0, 1), (True, False, None))))
def test_repro_collapses_policy_where_the_rule_masks_at_the_card(nim, card):
    """A cell whose card vfio-pci masks with DisINTx has no policy: the scenario's
    cells and the model's prediction both say so, from the one rule."""
    from pyvfio.repro import predict
    from pyvfio.repro.scenario import NA, Plan
    at_card = masking.masked_at(nim, card) == masking.DEVICE
    plan = Plan("s.toml")
    plan.axes.update(nointxmask=[nim], policy=["lazy"], unmask=["ioctl"])
    cell, = plan.cells(card)
    assert (cell.policy == NA) == at_card
    s = predict.model_scenario({"ic": "xive", **cell.key()}, card, True)
    if s is not None:
        assert (s.policy == NA) == at_card
    else:
        assert card is None and not nim     # the model cannot tell an unknown card


# -- whether vfio-pci carries the unlazy fix (8b9f128947dd): pyvfio/unlazy_fix.py ----

PYVFIO = pathlib.Path(unlazy_fix.__file__).parent


def test_the_lab_kernels_fix_is_the_version_rules():
    """What the model assumes of a lab kernel is the host's version rule, not a table."""
    from pyvfio.lab.config import ARCHES
    from pyvfio.repro import machines
    kernels = {k for a in ARCHES.values() for k in a["kernels"]}
    assert {k: machines.unlazy_fix_of(k) for k in kernels} == {k: unlazy_fix.of_series(k) for k in kernels}
    assert machines.unlazy_fix_of("6.1") is False and machines.unlazy_fix_of("6.12-rt") is True
    assert unlazy_fix.of_series("6.18") is True and unlazy_fix.of_series("5.10") is None


def test_a_defined_symbol_is_not_the_fix():
    """The lab's kernel packages and the host's module files are read by one test: a
    module that names irq_modify_status without importing it lacks the fix (a byte
    search said it had it)."""
    from test_doctor import elf
    defined = elf([("irq_modify_status", True), ("request_threaded_irq", False)])
    assert b"irq_modify_status" in defined and not unlazy_fix.elf_imports(defined)
    assert unlazy_fix.elf_imports(elf([("irq_modify_status", False)]))
    assert not unlazy_fix.elf_imports(b"")      # a kernel package without vfio-pci-core


def test_only_unlazy_fix_reads_the_symbol():
    code = [p.relative_to(PYVFIO).as_posix() for p in PYVFIO.rglob("*.py")
            if unlazy_fix.SYMBOL in p.read_text() and p.name != "unlazy_fix.py"]
    assert code == []


# -- FILE:LINE in scenarios: the profiles' TOML locator (pyvfio/profiles/tomlpos.py) ----

SCENARIO = """\
loops = 10
[lab]
card = "edu"
x86_64 = [{ kernel = "6.1" }]
[model]
ic = "xive"
card = ["2.3", "2.3"]
"""
TWO_EXPECTS = """\
[[expect]]
when = { ic = "xive" }
verdict = "ok"
[[expect]]
when = { ic = "xive", nointxmask = 1 }
verdict = "stall after many"
"""


@pytest.mark.parametrize("text,msg", [
    (SCENARIO, r"s.toml:7: \[model\] card lists \"2.3\" twice"),    # [lab]'s card is line 3
    (TWO_EXPECTS, r"s.toml:6: \[\[expect\]\] #2: "),                  # the first verdict is line 3
    (TWO_EXPECTS.replace("many", "1").replace("nointxmask = 1", "nointxmask = 7"),
     r"s.toml:5: \[\[expect\]\] #2: when nointxmask"),
])
def test_a_scenario_error_names_its_own_line(tmp_path, text, msg):
    from pyvfio.errors import UsageError
    from pyvfio.repro import scenario
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(UsageError, match=msg):
        scenario.load(str(f))


# -- the checkout's root: pyvfio/checkout.py -----------------------------------------

ROOT_BY_HAND = re.compile(r"__file__\)?(\.resolve\(\))?\.parents\[|__file__\)\.resolve\(\)\.parent\.parent"
                          r"|dirname\(os\.path\.dirname\(os\.path\.(abspath|realpath)\(__file__")


def test_the_checkout_root_is_computed_once():
    from pyvfio.checkout import CHECKOUT
    assert (CHECKOUT / "csrc").is_dir() and (CHECKOUT / "pyvfio" / "checkout.py").is_file()
    found = [p.relative_to(CHECKOUT).as_posix()
             for top in ("pyvfio", "tests", "tools") for p in (CHECKOUT / top).rglob("*.py")
             if ROOT_BY_HAND.search(p.read_text()) and p.name != "checkout.py"]
    assert found == []


# -- the result format's words: pyvfio/results.py --------------------------------------

def test_an_old_cell_reads_as_a_new_cell_of_the_axes_defaults():
    """A cell from before the vfio, irq and guest axes is read with the values a
    scenario's cells take by default: one table (results.KEY_DEFAULTS) for both."""
    import dataclasses

    from pyvfio.report import cells as C
    from pyvfio.repro.scenario import Cell
    from pyvfio.results import KEY_DEFAULTS, axis
    defaults = {f.name: f.default for f in dataclasses.fields(Cell) if f.default is not dataclasses.MISSING}
    assert defaults == KEY_DEFAULTS
    old = {"kind": "repro", "cells": [{"key": {"ic": "xive", "nointxmask": 1, "policy": "lazy"}, "verdict": "ok"}]}
    cell, = C.cells(old)
    assert cell["key"] == {"ic": "xive", "nointxmask": 1, "policy": "lazy", **defaults}
    assert axis({}, "guest") == "toy" and axis({"irq": "msi"}, "irq") == "msi"


def test_one_name_for_not_applicable_and_the_fleet_file():
    from pyvfio import results
    from pyvfio.fleet import run as fleet_run
    from pyvfio.report import html
    from pyvfio.repro import scenario
    from pyvfio.repro import matrix
    assert matrix.NA is scenario.NA is results.NA
    assert fleet_run.FLEET_FILE is html.FLEET_FILE is results.FLEET_FILE
    again = [p.relative_to(PYVFIO).as_posix() for p in PYVFIO.rglob("*.py") if p.name != "results.py"
             and re.search(r'^\s*NA = |"fleet\.json"', p.read_text(), re.M)]
    assert again == []


# -- scenario axes by name ----------------------------------------------------------------

def test_scenario_axes_are_cell_fields_by_name():
    """A cell is made from its axes by name, whatever their order: reordering the
    axes table changes the cells' order, never a cell."""
    import dataclasses

    from pyvfio.repro import scenario
    assert set(scenario.AXES) == {f.name for f in dataclasses.fields(scenario.Cell)}
    plan = scenario.Plan("s.toml")
    plan.axes.update(policy=["kernel", "lazy"], irq=["intx", "msi"], guest=["toy", "kvm"])
    cells = plan.cells(False)
    assert any(c.irq == "msi" and c.policy == scenario.NA and c.unmask == scenario.NA for c in cells)
    assert all(c.guest == "toy" or c.irq == "intx" for c in cells)
    reordered = dict(reversed(scenario.AXES.items()))
    import unittest.mock
    with unittest.mock.patch.object(scenario, "AXES", reordered):
        assert sorted(plan.cells(False), key=repr) == sorted(cells, key=repr)


# -- the stall prediction: doctor asks the model (pyvfio/sim/ask.py) ---------------------

def _stall_check(tmp_path, family, present):
    from pyvfio.doctor import stall
    dev = types.SimpleNamespace(bdf="0000:00:10.0")
    fix = unlazy_fix.Finding(present, "kernel-version", "by version")
    return stall.check(dev, 22, None, family, family.upper(), masking.CONTROLLER, "DisINTx-", fix, str(tmp_path))


@pytest.mark.parametrize("family,present", list(itertools.product(("xive", "xics", "ioapic"), (True, False, None))))
def test_doctor_predicts_the_models_stall(tmp_path, family, present):
    from pyvfio.sim import ask
    c = _stall_check(tmp_path, family, present)
    after = ask.stalls_after(family, lazy=present is not True)
    assert (c.status == "fail") == (after is not None and present is False)
    assert ("may stall" in c.summary) == (after is not None and present is None)
    assert (after is not None) == (family == "xive" and present is not True)   # the model's answer today


def test_doctor_takes_the_stall_from_the_model(tmp_path, monkeypatch):
    from pyvfio.doctor import stall
    monkeypatch.setattr(stall, "stalls_after", lambda family, lazy: 2 if family == "ioapic" else None)
    c = _stall_check(tmp_path, "ioapic", False)
    assert c.status == "fail" and c.summary.startswith("INTx will stall after 2 interrupts")
    assert _stall_check(tmp_path, "xive", False).status != "fail"
