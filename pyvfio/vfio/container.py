"""The VFIO container (/dev/vfio/vfio): API version, extensions, IOMMU model."""

import errno
import os

from .. import uapi
from ..errors import VfioError
from ..fdowner import FdOwner
from .ioctl import vfio_ioctl

# Preferred IOMMU models, best first; the first one the kernel offers is used.
IOMMU_TYPES = {
    "type1v2": uapi.VFIO_TYPE1v2_IOMMU,
    "spapr-tce-v2": uapi.VFIO_SPAPR_TCE_v2_IOMMU,
    "noiommu": uapi.VFIO_NOIOMMU_IOMMU,
}


def _open_hint(err):
    if err == errno.ENOENT:
        return ("no /dev/vfio/vfio: VFIO is not available on this host",
                "load it (modprobe vfio-pci), on a machine with an IOMMU enabled "
                "(intel_iommu=on / amd_iommu=on on x86; POWER has one), then bind a card with 'pyvfio bind BDF'")
    if err in (errno.EACCES, errno.EPERM):
        return ("no permission to open /dev/vfio/vfio", "run as root or get access to /dev/vfio")
    return (f"cannot open /dev/vfio/vfio: {os.strerror(err)}", None)


class Container(FdOwner):
    def __init__(self, path=uapi.DEVICE_NAME):
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            message, hint = _open_hint(exc.errno)
            raise VfioError("open container", exc.errno, message, hint) from None
        self.iommu_type = None
        try:
            version = vfio_ioctl(self.fd, "VFIO_GET_API_VERSION", uapi.VFIO_GET_API_VERSION)
            if version != uapi.VFIO_API_VERSION:
                raise VfioError("VFIO_GET_API_VERSION", None,
                                f"VFIO API version {version}, pyvfio speaks {uapi.VFIO_API_VERSION}",
                                "use a kernel whose VFIO API matches <linux/vfio.h> at build time")
        except BaseException:
            self.close()
            raise

    def check_extension(self, ext):
        return vfio_ioctl(self.fd, "VFIO_CHECK_EXTENSION", uapi.VFIO_CHECK_EXTENSION, ext) > 0

    def offered_iommu_types(self):
        return [name for name, ext in IOMMU_TYPES.items() if self.check_extension(ext)]

    def set_iommu(self, want=None):
        """VFIO_SET_IOMMU with `want` (a name of IOMMU_TYPES) or the best offered.
        Needs at least one group attached to the container."""
        offered = self.offered_iommu_types()
        if want is not None and want not in IOMMU_TYPES:
            raise VfioError("VFIO_SET_IOMMU", errno.EINVAL, f"unknown IOMMU type {want!r}",
                            f"use one of: {', '.join(IOMMU_TYPES)}")
        choice = want or (offered[0] if offered else None)
        if choice is None or choice not in offered:
            raise VfioError("VFIO_SET_IOMMU", errno.ENODEV,
                            f"IOMMU type {choice or 'type1v2/spapr-tce-v2/noiommu'} is not offered by this host "
                            f"(offered: {', '.join(offered) or 'none'})",
                            "enable the platform IOMMU, or load vfio with enable_unsafe_noiommu_mode=1 for noiommu")
        vfio_ioctl(self.fd, "VFIO_SET_IOMMU", uapi.VFIO_SET_IOMMU, IOMMU_TYPES[choice],
                   hint="on x86 without interrupt remapping load vfio_iommu_type1 allow_unsafe_interrupts=1")
        self.iommu_type = choice
        return choice
