"""The vfio-pci the boot loaded (pyvfio lab --vfio: shipped, or rebuilt from the
kernel's source, lab/vfio_build.py) and the kernel's own masking policy with it:
no policy module applied, what vfio-pci does by itself.  POWER9 XIVE with
controller masking stalls after one interrupt exactly when the module loaded
lacks the unlazy fix (8b9f128947dd); everywhere else every interrupt arrives."""
import pytest

from pyvfio import profiles
from pyvfio.intx import DeviceIrq

from . import cycles

pytestmark = pytest.mark.lab
N = 20


def test_the_module_loaded_is_the_variant(facts):
    vfio = facts["vfio"]
    srcversion = facts["guest_vfio_pci_core_srcversion"]
    if vfio["rebuilt"]:
        # the build's srcversion, read back from /sys/module: this build is what runs
        assert srcversion == vfio["srcversion"], (srcversion, vfio)
        assert "O" in facts["guest_vfio_pci_core_taint"]   # out of tree
    else:
        assert srcversion == "" and "O" not in facts["guest_vfio_pci_core_taint"], facts


def test_doctor_names_a_rebuilt_module_and_reads_the_fix_from_it(facts):
    from pyvfio import doctor
    d = doctor.diagnose()
    names = {c.name: c for c in d.checks}
    fix = d.facts["unlazy_fix"]
    if facts["vfio"]["rebuilt"]:
        assert "vfio_pci_rebuilt" in names and fix["rebuilt"], fix
        # from the module loaded (the run share's file), not the kernel's version
        assert (fix["present"], fix["basis"]) == (facts["unlazy_fix"], "module-symbols"), fix
    else:
        assert "vfio_pci_rebuilt" not in names and not fix["rebuilt"], fix


def test_kernel_policy_of_the_loaded_module(card, device, facts):
    prof = profiles.probe(device)
    prof.init()
    with DeviceIrq(device) as intx:
        res = cycles.run(prof, intx, N, timeout=0.5)
    prof.quiesce()
    if facts["ic"] == "xive" and facts["nointxmask"] == 1 and not facts["unlazy_fix"]:
        assert res.delivered == 1, f"lazy disable on XIVE: expected a stall after one: {res}"
    else:
        assert res.lost == 0, f"{res} (vfio-pci {facts['vfio']['variant']})"
