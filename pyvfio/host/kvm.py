"""/dev/kvm: does this host's KVM offer the resample irqfd (a VM's INTx unmask by
eventfd at guest EOI)?"""

import os

from . import paths

KVMIO = 0xAE
KVM_CHECK_EXTENSION_NR = 0x03
KVM_CAP_IRQFD_RESAMPLE = 82


def irqfd_resample(root="/", machine=None):
    """(available: True|False|None, evidence) by KVM_CHECK_EXTENSION on /dev/kvm."""
    path = paths.under(root, "dev/kvm")
    if root != "/":
        return None, f"not probed: {root} is not the live host"
    if not os.path.exists(path):
        return False, "/dev/kvm does not exist (kvm module not loaded, or no virtualisation)"
    try:
        import fcntl
        import ioctl_opt
        from ..uapi import ioc_for_arch
        nr = ioc_for_arch(ioctl_opt.IO(KVMIO, KVM_CHECK_EXTENSION_NR), machine)
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        return None, "cannot open /dev/kvm: permission denied"
    except (OSError, ImportError) as exc:
        return None, f"cannot probe /dev/kvm: {exc}"
    try:
        got = fcntl.ioctl(fd, nr, KVM_CAP_IRQFD_RESAMPLE)
    except OSError as exc:
        return None, f"KVM_CHECK_EXTENSION ({nr:#x}) failed: {exc.strerror}"
    finally:
        os.close(fd)
    return got > 0, f"KVM_CHECK_EXTENSION({nr:#x}, KVM_CAP_IRQFD_RESAMPLE=82) returned {got}"
