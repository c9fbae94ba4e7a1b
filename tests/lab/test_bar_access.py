"""BAR access on the lab's kernels, per card: mmap where vfio-pci offers it (the
region's MMAP flag; vfio_pci_probe_mmaps refuses a BAR smaller than a page that
does not start on one, which with 64 KiB pages is most small BARs), pread/pwrite
where it does not, and the profile's round trip works either way."""
import mmap

import pytest

from pyvfio import profiles
from pyvfio.intx import DeviceIrq

from . import cycles

pytestmark = pytest.mark.lab


def test_each_bar_is_mapped_exactly_where_vfio_pci_allows_it(card, device, facts):
    prof = profiles.probe(device, "mmap")
    ran = {}
    for name, region in prof.bars.items():
        ran[region.name] = region.access
        if region.mmappable:
            assert region.access == "mmap", (card, region.name)
        else:
            assert region.access == "rw", (card, region.name)
    # what a report says per card (describe() is what every result records)
    assert {b: v["access"] for b, v in prof.describe()["bars"].items()} == ran
    if facts["kernel"] == "6.12-64k":
        assert mmap.PAGESIZE == 64 * 1024
    prof.init()
    with DeviceIrq(device) as intx:
        res = cycles.run(prof, intx, 5, timeout=0.5)
    prof.quiesce()
    if not (facts["ic"] == "xive" and facts["nointxmask"] == 1 and not facts["unlazy_fix"]):
        assert res.lost == 0, f"{card['card']} {ran}: {res}"
