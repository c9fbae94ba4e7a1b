"""--iommu container|iommufd|auto on fabricated trees: which way a device is opened,
and the one-line refusals where iommufd cannot be had (6.1, no /dev/iommu, no cdev,
POWER).  The real path runs in the lab (tests/lab/test_iommufd_dma.py) where the
kernel has it."""

import pytest

from pyvfio import uapi
from pyvfio.doctor.iommu import _iommufd
from pyvfio.errors import UsageError, VfioError
from pyvfio.host import iommufd, system
from pyvfio.vfio import open_device

from test_vfio_errors import fake_device


def tree(tmp_path, kernel="6.12.0-test", machine="x86_64", dev_iommu=False, cdev=False):
    bdf = fake_device(tmp_path)
    (tmp_path / "proc/sys/kernel/osrelease").write_text(kernel + "\n")
    (tmp_path / "proc/sys/kernel/arch").write_text(machine + "\n")
    if dev_iommu:
        (tmp_path / "dev/iommu").write_text("")
    # vfio names every device vfio-dev/vfioN; only a cdev has a dev_t (the `dev` file)
    (tmp_path / "sys/bus/pci/devices" / bdf / "vfio-dev/vfio3").mkdir(parents=True)
    if cdev:
        (tmp_path / "sys/bus/pci/devices" / bdf / "vfio-dev/vfio3/dev").write_text("244:3\n")
    return bdf


@pytest.mark.parametrize("kernel, want", [
    ("6.1.0-57-amd64", "kernel 6.1.0-57-amd64 has no iommufd .it came in 6.2"),
    ("6.12.117+deb12-amd64", "no /dev/iommu: kernel 6.12.117.deb12-amd64 was built without CONFIG_IOMMUFD"),
])
def test_iommufd_refused_in_one_line_without_dev_iommu(tmp_path, kernel, want):
    bdf = tree(tmp_path, kernel)
    with pytest.raises(VfioError, match=want) as exc:
        open_device(bdf, iommu="iommufd", root=str(tmp_path))
    assert "\n" not in str(exc.value) and "--iommu container" in str(exc.value)


def test_iommufd_needs_the_device_cdev(tmp_path):
    bdf = tree(tmp_path, dev_iommu=True)
    with pytest.raises(VfioError, match="has no vfio device cdev .*CONFIG_VFIO_DEVICE_CDEV"):
        open_device(bdf, iommu="iommufd", root=str(tmp_path))


def test_iommufd_refused_on_power_even_with_the_cdev(tmp_path):
    bdf = tree(tmp_path, machine="ppc64le", dev_iommu=True, cdev=True)
    with pytest.raises(VfioError, match="iommufd cannot map DMA on POWER.*sPAPR"):
        open_device(bdf, iommu="iommufd", root=str(tmp_path))


def test_cdev_found_where_sysfs_names_it(tmp_path):
    bdf = tree(tmp_path, dev_iommu=True, cdev=True)
    assert iommufd.cdev_name(bdf, str(tmp_path)) == "vfio3"
    why = iommufd.unavailable("x86_64", "6.12", bdf, str(tmp_path), uapi_ok=True)
    assert why is None


@pytest.mark.parametrize("iommu", ["auto", "container", None])
def test_auto_and_container_take_the_container_without_iommufd(tmp_path, iommu):
    bdf = tree(tmp_path)
    # the container path's own failure (no /dev/vfio/vfio in the tree) shows which ran
    with pytest.raises(VfioError, match="no /dev/vfio/vfio"):
        open_device(bdf, iommu=iommu, root=str(tmp_path))


@pytest.mark.skipif(not uapi.IOMMUFD_UAPI, reason="extension built without iommufd headers")
def test_auto_takes_iommufd_where_it_is_available(tmp_path):
    bdf = tree(tmp_path, dev_iommu=True, cdev=True)
    # /dev/iommu in the tree is a plain file: the iommufd path's IOAS_ALLOC fails, so
    # it was the one taken (the container path would fail on /dev/vfio/vfio)
    with pytest.raises(VfioError, match="IOMMU_IOAS_ALLOC"):
        open_device(bdf, iommu="auto", root=str(tmp_path))


def test_unknown_iommu_choice(tmp_path):
    bdf = tree(tmp_path)
    with pytest.raises(UsageError, match="unknown --iommu 'vt-d': use one of: auto, container, iommufd"):
        open_device(bdf, iommu="vt-d", root=str(tmp_path))


def test_extension_without_iommufd_headers_refuses(tmp_path):
    bdf = tree(tmp_path, dev_iommu=True, cdev=True)
    why = iommufd.unavailable("x86_64", "6.12", bdf, str(tmp_path), uapi_ok=False)
    assert "without <linux/iommufd.h>" in why[0]


def test_doctor_says_which_way_auto_takes(tmp_path):
    tree(tmp_path, kernel="6.1.0-57-amd64")
    s = system.probe(str(tmp_path))
    check = _iommufd(s, str(tmp_path))
    assert check.status == "ok" and check.summary.startswith("container only: kernel 6.1.0-57-amd64 has no iommufd")
    assert "/dev/iommu is missing" in check.evidence


def test_a_vfio_device_without_a_dev_t_has_no_cdev(tmp_path):
    # Debian's 6.12 as shipped: vfio-dev/vfio3 is there, without a `dev` (no cdev)
    bdf = tree(tmp_path, dev_iommu=True, cdev=False)
    assert iommufd.cdev_name(bdf, str(tmp_path)) is None
    with pytest.raises(VfioError, match="has no vfio device cdev"):
        open_device(bdf, iommu="iommufd", root=str(tmp_path))


@pytest.mark.parametrize("cdev", [False, True])
def test_doctor_with_dev_iommu_asks_for_a_device_cdev(tmp_path, cdev):
    tree(tmp_path, dev_iommu=True)
    vfio_dev = tmp_path / "sys/class/vfio-dev/vfio3"
    vfio_dev.mkdir(parents=True)
    if cdev:
        (vfio_dev / "dev").write_text("244:3\n")
    s = system.probe(str(tmp_path))
    check = _iommufd(s, str(tmp_path))
    if not cdev:
        assert check.summary.startswith("container only: no vfio device has a cdev")
    elif uapi.IOMMUFD_UAPI:
        assert check.summary.startswith("iommufd is available")
    else:
        assert "without <linux/iommufd.h>" in check.summary
