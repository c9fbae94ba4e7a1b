"""In the lab: iommufd where the kernel has it (`pyvfio lab x86_64 --iommufd`; a
one-line refusal where not), DMA maps through the real IOMMU (type1v2 on x86, sPAPR
TCE v2 on POWER, an IOAS through iommufd), every bad map refused in one line before
the ioctl with nothing left mapped, edu's DMA engine moving bytes through those maps
and raising INTx when done, and a teardown that waits for a transfer in flight."""

import time
from dataclasses import replace

import pytest

from pyvfio import cli, doctor
from pyvfio.engine import Run, RunConfig
from pyvfio.engine.dma_source import DmaSource
from pyvfio.errors import UsageError, VfioError
from pyvfio.intx import bus_master
from pyvfio.host import iommufd
from pyvfio.host.system import uname
from pyvfio.lab import in_guest
from pyvfio.profiles import probe
from pyvfio.profiles.base import Program, bswap
from pyvfio.vfio import open_device
from pyvfio.vfio.dma import PAGE, DmaBuffer  # PAGE: the host's (64 KiB on 6.12-64k)

pytestmark = pytest.mark.lab

# conftest.py collects this file only in a boot with an edu card
EDU = in_guest.bdf_of("edu")
E1000 = in_guest.bdf_of("e1000")
KERNEL, MACHINE = uname()
IOMMUFD_WHY = iommufd.unavailable(MACHINE, KERNEL)
IOMMUS = in_guest.iommus()
FACTS = in_guest.facts()
SPAPR = MACHINE == "ppc64le"
# what each lab kernel says when asked for iommufd (Debian's 6.12 has CONFIG_IOMMUFD unset)
REFUSAL = ("iommufd cannot map DMA on POWER" if SPAPR
           else "has no iommufd (it came in 6.2" if KERNEL.startswith("6.1.")
           else "no /dev/iommu: kernel")
DMA_LOOPS = 3   # edu runs each transfer 100 ms (virtual) after the command: two per interrupt

if IOMMUFD_WHY is not None:
    def test_iommufd_is_refused_in_one_line_where_the_kernel_lacks_it():
        with pytest.raises(VfioError) as exc:
            open_device(EDU, iommu="iommufd")
        assert REFUSAL in str(exc.value) and "\n" not in str(exc.value)
        # auto falls back to the container, as doctor says
        with open_device(EDU, iommu="auto") as dev:
            assert dev.iommu == ("spapr-tce-v2" if SPAPR else "type1v2")
        check = next(c for c in doctor.diagnose().checks if c.name == "iommufd")
        assert check.summary.startswith("container only: ") and REFUSAL in check.summary

    def test_cli_refuses_iommufd_in_one_line(capsys):
        # in-process: the CLI's own error path, without a Python start (seconds under TCG)
        assert cli.main(["run", EDU, "--iommu", "iommufd", "-l", "10"]) != 0
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and REFUSAL in lines[0], lines


if FACTS.get("iommufd"):
    def test_auto_opens_through_iommufd_where_the_lab_loaded_it():
        """--iommufd: the kernel has /dev/iommu and the cdev; doctor says iommufd is
        there, and the kernel does it: auto opens edu through iommufd (a cdev bound to
        an IOAS that maps), the container still opens it too."""
        assert IOMMUFD_WHY is None, IOMMUFD_WHY
        check = next(c for c in doctor.diagnose().checks if c.name == "iommufd")
        assert check.summary.startswith("iommufd is available"), check.summary
        with open_device(EDU) as dev, DmaBuffer(PAGE) as buf:
            assert dev.iommu == "iommufd" and iommufd.cdev_name(EDU) is not None
            m = dev.dma().map(buf)
            assert dev.dma().backend == "iommufd" and m in dev.dma().mappings
        with open_device(EDU, iommu="container") as dev:
            assert dev.iommu == "type1v2"


def dma_run(dev, engine="c", loops=DMA_LOOPS):
    return Run(dev, probe(dev, "mmap"), RunConfig(loops=loops, source="dma", engine=engine,
                                                  watchdog_ms=2000)).execute()


@pytest.mark.parametrize("iommu", IOMMUS)
@pytest.mark.parametrize("engine", ["c", "python"])
def test_edu_dma_raises_the_interrupt_and_the_bytes_arrive(iommu, engine):
    with open_device(EDU, iommu=iommu) as dev:
        r = dma_run(dev, engine)
        assert (r.verdict, r.counts.delivered, r.counts.lost) == ("ok", DMA_LOOPS, 0)
        d = r.to_json()["dma"]
        assert d["arrived"] and d["first_difference"] is None and d["bytes"] == 0x800
        assert d["dst_iova"] <= 0x0fffffff      # under edu's DMA mask
        assert dev.dma().mappings == []          # the run unmapped its pages
        # the completion interrupt: about 200 ms of QEMU's virtual time per round trip
        assert r.hists[2].percentile(50) > 100e6


if E1000:
    @pytest.mark.parametrize("iommu", IOMMUS)
    def test_e1000_transmit_descriptor_write_back_raises_txdw(iommu):
        """A frame sent from a ring in mapped memory: QEMU transmits on the TDT write,
        writes STA.DD back into the descriptor and raises TXDW, all synchronously."""
        with open_device(E1000, iommu=iommu) as dev:
            r = dma_run(dev, loops=500)
            assert (r.verdict, r.counts.delivered, r.counts.lost) == ("ok", 500, 0)
            d = r.to_json()["dma"]
            assert d["check"] == "descriptor" and d["arrived"] and d["bytes"] == 64
            assert dev.dma().mappings == []


def test_the_byte_check_fails_when_the_card_cannot_reach_memory(monkeypatch):
    """Bus mastering off: edu still interrupts, but its writes go nowhere."""
    setup = DmaSource.__init__

    def no_master(self, host, profile):
        setup(self, host, profile)
        bus_master(host, False)

    monkeypatch.setattr(DmaSource, "__init__", no_master)
    with open_device(EDU) as dev:
        r = dma_run(dev, loops=1)
        assert r.counts.delivered == 1 and not r.dma.arrived and r.dma.difference == 0


def test_cli_dma_run_prints_the_check(capsys):
    assert cli.main(["run", EDU, "--source", "dma", "-l", "2", "-q"]) == 0
    out = capsys.readouterr().out
    assert "raised 2  delivered 2" in out
    assert "DMA: 2048 bytes IOVA 0x" in out and "arrived byte for byte" in out, out


@pytest.mark.parametrize("iommu", IOMMUS)
def test_bad_maps_are_refused_before_the_ioctl_and_nothing_stays_mapped(iommu):
    with open_device(EDU, iommu=iommu) as dev, DmaBuffer(4 * PAGE) as buf:
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


if SPAPR:
    def test_spapr_creates_a_dynamic_window_and_removes_it_at_teardown():
        with open_device(EDU) as dev, DmaBuffer(2 * PAGE) as buf:
            dma = dev.dma()
            assert dma.backend == "spapr-tce-v2"
            with pytest.raises(UsageError, match=f"no room for {0x40000000 + PAGE:#x} bytes"):
                dma.free_iova(0x40000000 + PAGE)        # QEMU's default window is 1 GiB
            w = dma.create_window(1 << 20)
            assert w.created and w.start >= 0x40000000 and w.size == 1 << 20
            m = dma.map(buf, iova=w.start)
            assert dma.free_iova(PAGE) == 0                 # the default window is still free
            dma.close()
            assert dma.mappings == [] and not any(x.created for x in dma.windows)
            # removed in the kernel: a window can be created again, at the same place
            w2 = dma.create_window(1 << 20)
            assert w2.start == m.iova
else:
    @pytest.mark.parametrize("iommu", IOMMUS)
    def test_type1_windows_leave_out_the_msi_range(iommu):
        # iommufd's from IOMMU_IOAS_IOVA_RANGES: VT-d's reserved MSI window is not in them
        with open_device(EDU, iommu=iommu) as dev:
            dma = dev.dma()
            assert dma.backend == ("type1v2" if iommu == "container" else "iommufd")
            assert not any(w.holds(0xfee00000, 4096) for w in dma.windows)
            with DmaBuffer(4096) as buf, pytest.raises(UsageError, match="outside the device's DMA windows"):
                dma.map(buf, iova=0xfee00000)


def _start_one_transfer(dev):
    """A DmaSource for edu and the first transfer of its raise_dma started (RAM ->
    card: the four writes before the poll); QEMU runs it 100 ms (virtual) later."""
    prof = probe(dev, "mmap")
    src = DmaSource(dev, prof)
    prof = prof.bind_dma(src.values)                  # as Run does
    Program(prof.programs.ops["raise"][:4], prof.bars)()
    return prof, src


def _busy(prof):
    raw = prof.bars["regs"].read(0x98, 4)             # DMA_CMD
    return (bswap(raw, 4) if prof.swapped else raw) & 1


@pytest.mark.parametrize("iommu", IOMMUS)
def test_teardown_waits_for_a_transfer_in_flight_before_unmapping(iommu):
    """Started and torn down at once: close() returns only once DMA_CMD's busy bit
    is clear, so the card never reaches for an unmapped page."""
    with open_device(EDU, iommu=iommu) as dev:
        prof, src = _start_one_transfer(dev)
        assert _busy(prof), "edu's transfer finished before the teardown began"
        src.close()
        assert not _busy(prof) and src.busy_at_teardown is None
        assert dev.dma().mappings == []


def test_a_transfer_that_does_not_finish_is_said_in_one_line_and_unmapped(capsys):
    with open_device(EDU) as dev:
        prof, src = _start_one_transfer(dev)
        # a bound the transfer cannot meet (edu needs 100 ms)
        src.profile = prof.with_ops({"dma_idle": (replace(prof.programs.ops["dma_idle"][0], count=1000),)})
        src.wait_idle()                          # as a run's teardown does, before close()
        src.close()
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "still running at teardown" in lines[0] and "DMA_CMD" in lines[0], lines
        assert src.busy_at_teardown and dev.dma().mappings == []
        deadline = time.monotonic() + 5          # let it end before the device closes
        while _busy(prof) and time.monotonic() < deadline:
            time.sleep(0.05)
