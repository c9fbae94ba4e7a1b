"""Can a device be opened through iommufd here?  /dev/iommu (CONFIG_IOMMUFD, Linux
6.2), the device's cdev /dev/vfio/devices/vfioN (CONFIG_VFIO_DEVICE_CDEV, 6.6; sysfs
names it under the device's vfio-dev/), an IOMMU driver with paging domains, and
an extension compiled against headers that declare it.

POWER: arch/powerpc/kernel/iommu.c's spapr_tce_iommu_ops (6.12) has a platform
and a blocked domain but no domain_alloc_paging, so iommufd cannot allocate the
IOAS's page table (VFIO_DEVICE_ATTACH_IOMMUFD_PT fails), and drivers/vfio/Kconfig
makes VFIO_DEVICE_CDEV depend on !SPAPR_TCE_IOMMU, so a pseries kernel has no
device cdev to bind at all; sPAPR TCE is the container's alone."""

import os
import re

from . import paths, pci

POWERPC = ("ppc64le", "ppc64", "ppc", "powerpc")
DEV_IOMMU = "dev/iommu"


def dev_iommu(root="/"):
    return os.path.exists(paths.under(root, DEV_IOMMU))


def _has_cdev(folder):
    """A vfio-dev/vfioN entry is there with or without CONFIG_VFIO_DEVICE_CDEV (vfio
    names every device so); only with it does the device have a dev_t, which sysfs
    shows as its `dev` file (drivers/vfio/device_cdev.c sets device.devt)."""
    return os.path.exists(os.path.join(folder, "dev"))


def cdev_name(bdf, root="/"):
    """vfioN, the device's cdev under /dev/vfio/devices, or None."""
    folder = os.path.join(pci.device_dir(bdf, root), "vfio-dev")
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    return next((n for n in sorted(names)
                 if re.fullmatch(r"vfio\d+", n) and _has_cdev(os.path.join(folder, n))), None)


def any_cdev(root="/"):
    """Whether any vfio device here has a cdev (/sys/class/vfio-dev/vfioN/dev)."""
    folder = paths.under(root, "sys/class/vfio-dev")
    try:
        return any(_has_cdev(os.path.join(folder, n)) for n in os.listdir(folder))
    except OSError:
        return False


def _release(kernel):
    m = re.match(r"(\d+)\.(\d+)", kernel or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def unavailable(machine, kernel, bdf=None, root="/", uapi_ok=True):
    """Why iommufd cannot open `bdf` (or any device, bdf None) here, as (reason, hint),
    or None when nothing stands in the way.  The first reason that holds wins."""
    if machine in POWERPC:
        return ("iommufd cannot map DMA on POWER: the kernel's sPAPR TCE IOMMU has no "
                "paging domain (arch/powerpc/kernel/iommu.c)", "use --iommu container")
    release = _release(kernel)
    if not dev_iommu(root):
        if release is not None and release < (6, 2):
            return (f"kernel {kernel} has no iommufd (it came in 6.2, vfio's device cdev "
                    "in 6.6)", "use --iommu container, or boot a 6.6 or later kernel")
        return (f"no /dev/iommu: kernel {kernel} was built without CONFIG_IOMMUFD "
                "(Debian's 6.12 is) or iommufd is not loaded",
                "modprobe iommufd, or use --iommu container")
    if bdf is None and not any_cdev(root):
        return ("no vfio device has a cdev (/sys/class/vfio-dev/vfioN/dev): vfio lacks "
                "CONFIG_VFIO_DEVICE_CDEV (Debian's 6.12 does) or no device is bound to vfio-pci",
                "use --iommu container")
    if bdf is not None and cdev_name(bdf, root) is None:
        return (f"{bdf} has no vfio device cdev (no vfio-dev/ in sysfs): the kernel lacks "
                "CONFIG_VFIO_DEVICE_CDEV (6.6) or the device is not bound to vfio-pci",
                "use --iommu container")
    if not uapi_ok:
        return ("this pyvfio's extension was compiled against kernel headers without "
                "<linux/iommufd.h> (linux-libc-dev before 6.6)",
                "install newer kernel headers and reinstall pyvfio, or use --iommu container")
    return None
