"""In the lab: iommufd where the kernel has it (a one-line refusal where not), DMA
maps through the real IOMMU (type1v2 on x86, sPAPR TCE v2 on POWER), every bad map
refused in one line before the ioctl with nothing left mapped, and edu's DMA
engine moving bytes through those maps and raising INTx when done."""

import subprocess
import sys

import pytest

from pyvfio.errors import UsageError, VfioError
from pyvfio.host import iommufd
from pyvfio.host.system import uname
from pyvfio.lab import guest
from pyvfio.vfio import open_device
from pyvfio.vfio.dma import DmaBuffer

pytestmark = pytest.mark.lab

EDU = guest.bdf_of("edu")
KERNEL, MACHINE = uname()
IOMMUFD_WHY = iommufd.unavailable(MACHINE, KERNEL)
needs_edu = pytest.mark.skipif(EDU is None, reason="no edu card in this boot")


@needs_edu
def test_iommufd_is_refused_in_one_line_where_the_kernel_lacks_it():
    if IOMMUFD_WHY is None:
        pytest.skip("this kernel has iommufd: the engine tests run through it")
    with pytest.raises(VfioError) as exc:
        open_device(EDU, iommu="iommufd")
    assert str(exc.value).startswith(IOMMUFD_WHY[0]) and "\n" not in str(exc.value)
    # auto falls back to the container
    with open_device(EDU, iommu="auto") as dev:
        assert dev.iommu in ("type1v2", "spapr-tce-v2")


@needs_edu
def test_cli_refuses_iommufd_in_one_line():
    if IOMMUFD_WHY is None:
        pytest.skip("this kernel has iommufd")
    p = subprocess.run([sys.executable, "-m", "pyvfio", "run", EDU, "--iommu", "iommufd", "-l", "10"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and IOMMUFD_WHY[0] in lines[0], p.stderr


@needs_edu
def test_bad_maps_are_refused_before_the_ioctl_and_nothing_stays_mapped():
    with open_device(EDU) as dev, DmaBuffer(4 * 4096) as buf:
        dma = dev.dma()
        page = dma.page
        w = min(dma.windows, key=lambda w: w.start)
        base = dma.map(buf, size=2 * page)
        outside = w.start + w.size
        bad = [
            (dict(iova=base.iova + 2 * page + 1, offset=2 * page, size=page), "not aligned to the IOMMU page"),
            (dict(iova=base.iova + 2 * page, offset=2 * page, size=page - 8), "not aligned to the IOMMU page"),
            (dict(iova=base.iova + page, offset=2 * page, size=page), "overlaps the mapping"),
            (dict(iova=base.iova + 2 * page, offset=2 * page, size=4 * page), "runs past the"),
            (dict(iova=outside, offset=2 * page, size=page), "outside the device's DMA windows"),
        ]
        for kw, message in bad:
            with pytest.raises(UsageError, match=message) as exc:
                dma.map(buf, **kw)
            assert "\n" not in str(exc.value)
        assert dma.mappings == [base]
        # a request no window is large enough for
        with pytest.raises(UsageError, match="no room for"):
            dma.free_iova(max(w.size for w in dma.windows) + page)
        dma.unmap(base)
        # nothing left in the kernel: the same IOVAs map again, all four pages
        again = dma.map(buf, iova=base.iova)
        assert again.iova == base.iova and dma.mappings == [again]
        dma.close()
        assert dma.mappings == []
        dma.map(buf, iova=base.iova)         # close unmapped it in the kernel too


@needs_edu
def test_spapr_creates_a_dynamic_window_and_removes_it_at_teardown():
    with open_device(EDU) as dev, DmaBuffer(2 * 4096) as buf:
        dma = dev.dma()
        if dma.backend != "spapr-tce-v2":
            pytest.skip(f"{dma.backend} has no DMA windows to create")
        with pytest.raises(UsageError, match="no room for 0x40001000 bytes"):
            dma.free_iova(0x40000000 + 0x1000)      # QEMU's default window is 1 GiB
        w = dma.create_window(1 << 20)
        assert w.created and w.start >= 0x40000000 and w.size == 1 << 20
        m = dma.map(buf, iova=w.start)
        assert dma.free_iova(4096) == 0                 # the default window is still free
        dma.close()
        assert dma.mappings == [] and not any(x.created for x in dma.windows)
        # removed in the kernel: a window can be created again
        w2 = dma.create_window(1 << 20)
        assert w2.start == m.iova
