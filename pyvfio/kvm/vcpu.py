"""A vCPU: its fd and the shared struct kvm_run, KVM_RUN, and the exits' data."""

import errno
import mmap
import os

from .. import uapi
from .._binding import ffi
from ..errors import KvmError
from ..fdowner import FdOwner
from .ioctl import kvm_ioctl


class Vcpu(FdOwner):
    def __init__(self, vm, fd):
        self.vm = vm
        self.fd = fd
        try:
            self.map = mmap.mmap(fd, vm.kvm.vcpu_mmap_size, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            os.close(fd)
            raise KvmError("mmap kvm_run", exc.errno) from None
        self.run_ptr = ffi.from_buffer(self.map)
        self.run = ffi.cast("struct kvm_run *", self.run_ptr)

    def enter(self):
        """KVM_RUN until the next exit; its exit_reason (KVM_EXIT_INTR when a signal,
        the watchdog's kick, interrupted it)."""
        try:
            kvm_ioctl(self.fd, "KVM_RUN", uapi.KVM_RUN, 0)
        except KvmError as exc:
            if exc.errno == errno.EINTR:
                return uapi.KVM_EXIT_INTR
            raise
        return self.run.exit_reason

    def io_data(self):
        """The bytes of a KVM_EXIT_IO (in kvm_run's page, at data_offset)."""
        io = self.run.io
        return ffi.buffer(self.run_ptr + io.data_offset, io.size * io.count)

    def set_runnable(self):
        """Out of a HLT the watchdog interrupted (the guest then re-checks its state)."""
        st = ffi.new("struct kvm_mp_state *")
        st.mp_state = uapi.KVM_MP_STATE_RUNNABLE
        kvm_ioctl(self.fd, "KVM_SET_MP_STATE", uapi.KVM_SET_MP_STATE, ffi.buffer(st))

    def close(self):
        if self.map is not None:
            self.run = None
            ffi.release(self.run_ptr)
            self.map.close()
            self.map = None
        self.close_fd()
