"""A VFIO group (/dev/vfio/N): status, viability, container, device fds."""

import array
import errno
import os

from .. import uapi
from .._binding import ffi
from ..errors import VfioError
from ..fdowner import FdOwner
from .ioctl import vfio_ioctl


class Group(FdOwner):
    def __init__(self, number, dev_root="/dev/vfio"):
        self.number = number
        self.path = os.path.join(dev_root, str(number))
        if not os.path.exists(self.path):
            noiommu = os.path.join(dev_root, f"noiommu-{number}")
            if os.path.exists(noiommu):
                self.path = noiommu
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                hint = f"run as root or give your user access to {self.path}"
            elif exc.errno == errno.EBUSY:
                hint = "another process (a VM, another pyvfio) holds this group; stop it first"
            elif exc.errno == errno.ENOENT:
                hint = "bind the device to vfio-pci first: pyvfio bind BDF"
            else:
                hint = None
            raise VfioError(f"open {self.path}", exc.errno, hint=hint) from None
        self.container = None

    def status(self):
        st = ffi.new("struct vfio_group_status *")
        st.argsz = ffi.sizeof(st[0])
        vfio_ioctl(self.fd, "VFIO_GROUP_GET_STATUS", uapi.VFIO_GROUP_GET_STATUS, ffi.buffer(st))
        return st.flags

    @property
    def viable(self):
        return bool(self.status() & uapi.VFIO_GROUP_FLAGS_VIABLE)

    def set_container(self, container):
        if not self.viable:
            raise VfioError("VFIO_GROUP_SET_CONTAINER", errno.EPERM,
                            f"IOMMU group {self.number} is not viable: another device in it is bound to a host driver",
                            "bind every device of the group to vfio-pci (pyvfio bind --group BDF)")
        arg = array.array("i", [container.fd])  # the ioctl takes a pointer to an int32
        vfio_ioctl(self.fd, "VFIO_GROUP_SET_CONTAINER", uapi.VFIO_GROUP_SET_CONTAINER, arg)
        self.container = container

    def unset_container(self):
        if self.container is not None and self.fd >= 0:
            vfio_ioctl(self.fd, "VFIO_GROUP_UNSET_CONTAINER", uapi.VFIO_GROUP_UNSET_CONTAINER)
        self.container = None

    def get_device_fd(self, bdf):
        name = bytearray(bdf.encode() + b"\0")
        return vfio_ioctl(self.fd, "VFIO_GROUP_GET_DEVICE_FD", uapi.VFIO_GROUP_GET_DEVICE_FD, name,
                          hint=f"is {bdf} in IOMMU group {self.number} and bound to vfio-pci?")

    def close(self):
        if self.fd >= 0:
            try:
                self.unset_container()
            except VfioError:
                pass  # closing the fd releases it anyway
        self.close_fd()
