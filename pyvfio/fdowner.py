"""Objects that own one file descriptor (a VFIO container, group or device, iommufd, a KVM
system, VM or vCPU, an eventfd): `with` closes them, and close() runs once, also
on an object whose constructor failed before it opened anything."""

import os


class FdOwner:
    __slots__ = ()   # EventFd keeps its slots (the hot loop makes many)
    fd = -1          # until the constructor opens one

    def close_fd(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self):
        self.close_fd()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
