"""Scenario files for real kernels, expectations and the model's predictions."""

import pytest

from pyvfio.errors import UsageError
from pyvfio.repro import predict
from pyvfio.repro.scenario import NA, Cell, load


def write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


def test_the_shipped_seed_parses():
    plan = load("seed")
    assert plan.loops == 100 and plan.run["profile"] == "edu"
    assert plan.lab["ppc64le"] == [{"kernel": "6.12", "ic": "xive"}, {"kernel": "6.12", "ic": "xics"}]
    key = {"ic": "xive", "nointxmask": 1, "policy": "lazy", "unmask": "ioctl"}
    assert plan.expected(key) == "stall after 1"
    assert plan.expected({**key, "ic": "xics"}) == "ok"
    assert plan.needs_policy_module()


def test_policy_collapses_where_vfio_masks_at_the_card():
    plan = load("seed")
    cells = plan.cells(masks_at_device=True)
    assert Cell(0, NA, "ioctl", "c", "mmap") in cells
    assert not any(c.nointxmask == 0 and c.policy != NA for c in cells)
    assert len(cells) == 2 + 6
    assert len(plan.cells(masks_at_device=False)) == 12  # a DisINTx- card: every policy counts


@pytest.mark.parametrize("text,msg", [
    ("loops = 10\n[matrix]\npolicy = ['lazy', 'sloppy']\n", r"s.toml:3: unknown policy value 'sloppy'"),
    ("loops = 10\n\n[matrix]\nnointxmask = [0, 2]\n", r"s.toml:4: unknown nointxmask value 2"),
    ("[run]\nwatchdog = 5\n", r"s.toml:2: unknown key 'watchdog' in \[run\]"),
    ("colour = 'red'\n", r"s.toml:1: unknown key 'colour'"),
    ("loops = 0\n", r"loops must be a whole number"),
    ("[lab]\nppc64le = [{ kernel = '6.12', cpu = 'power9' }]\n", r"unknown key\(s\) cpu"),
    ("[lab]\ncard = 'ne2000'\n", r"unknown lab card 'ne2000'"),
    ("[[expect]]\nwhen = { colour = 'red' }\nverdict = 'ok'\n", r"unknown key 'colour' in when"),
    ("loops = 10\n[matrix\n", r"not valid TOML: .*line 2"),
])
def test_bad_files_name_the_key_and_line(tmp_path, text, msg):
    with pytest.raises(UsageError, match=msg):
        load(write(tmp_path, text))


def test_missing_file():
    with pytest.raises(UsageError, match="cannot read scenario file"):
        load("/nonexistent/x.toml")


@pytest.mark.parametrize("key,fix,verdict", [
    ({"ic": "xive", "nointxmask": 1, "policy": "lazy", "unmask": "ioctl"}, True, "stall after 1"),
    ({"ic": "xive", "nointxmask": 1, "policy": "kernel", "unmask": "ioctl"}, True, "ok"),
    ({"ic": "xive", "nointxmask": 1, "policy": "kernel", "unmask": "eventfd"}, False, "stall after 1"),
    ({"ic": "xics", "nointxmask": 1, "policy": "lazy", "unmask": "ioctl"}, True, "ok, 1.00 spurious/irq"),
    ({"ic": "ioapic", "nointxmask": 0, "policy": NA, "unmask": "ioctl"}, False, "ok"),
])
def test_model_predictions(key, fix, verdict):
    assert predict.predict(key, 20, masks_at_device=True, unlazy_fix=fix) == verdict


def test_no_prediction_without_the_facts():
    key = {"nointxmask": 1, "policy": "kernel", "unmask": "ioctl"}
    assert predict.predict(key, 20, True, None, chip="XIVE-IRQ") is None          # fix unknown
    assert predict.predict({**key, "policy": "lazy"}, 20, True, None, chip="PCI-MSI") is None
    assert predict.predict({**key, "policy": "lazy"}, 20, True, None, chip="XIVE-IRQ") == "stall after 1"


def test_verdicts_match_on_what_a_real_run_can_see():
    assert predict.matches("ok", "ok, 1.00 spurious/irq")
    assert predict.matches("stall after 1, recovered 3x", "stall after 1")
    assert not predict.matches("stall after 2", "stall after 1")
    assert not predict.matches("ok", "stall after 1")
    assert predict.matches("ok", None) is None


def test_policy_module_without_kernel_headers_is_a_clear_error():
    from pyvfio.errors import PyvfioError
    from pyvfio.lab import policy
    if policy.available():
        pytest.skip("pyvfio_policy is loaded on this host")
    with pytest.raises(PyvfioError, match=r"needs the kernel headers of 0\.0-none.*linux-headers-0\.0-none"):
        policy.ensure_module("0.0-none")


def test_the_card_survey_parses():
    plan = load("card")
    assert plan.loops == 10000 and plan.run["threshold_p99_us"] == 1000.0
    assert not plan.needs_policy_module() and not plan.lab
    assert len(plan.cells(masks_at_device=True)) == 2 * 2 + 2 * 2


def test_reload_is_refused_while_another_device_uses_vfio_pci(tmp_path):
    """A running VM's passthrough device would be torn away: refused before any write."""
    import os

    from pyvfio.errors import RefusedError
    from pyvfio.repro.cells import reload_vfio_pci
    drv = tmp_path / "sys/bus/pci/drivers/vfio-pci"
    for bdf in ("0000:01:00.0", "0000:02:00.0"):
        dev = tmp_path / "sys/bus/pci/devices" / bdf
        dev.mkdir(parents=True)
        drv.mkdir(parents=True, exist_ok=True)
        os.symlink(dev, drv / bdf)
    with pytest.raises(RefusedError, match="would tear 0000:02:00.0 away.*--force"):
        reload_vfio_pci("0000:01:00.0", 1, root=str(tmp_path))
