"""/dev/kvm: does this host's KVM offer the resample irqfd (a VM's INTx unmask by
eventfd at guest EOI)?  Constants and the request number from pyvfio.uapi (the
kernel's header through the extension)."""

import os

from . import paths


def irqfd_resample(root="/", machine=None):
    """(available: True|False|None, evidence) by KVM_CHECK_EXTENSION on /dev/kvm."""
    path = paths.under(root, "dev/kvm")
    if root != "/":
        return None, f"not probed: {root} is not the live host"
    if not os.path.exists(path):
        return False, "/dev/kvm does not exist (kvm module not loaded, or no virtualisation)"
    try:
        import fcntl
        from .. import uapi
        nr = uapi.kvm_ioctl_numbers(machine)["KVM_CHECK_EXTENSION"]
        cap = uapi.KVM_CAP_IRQFD_RESAMPLE
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        return None, "cannot open /dev/kvm: permission denied"
    except (OSError, ImportError) as exc:
        return None, f"cannot probe /dev/kvm: {exc}"
    try:
        got = fcntl.ioctl(fd, nr, cap)
    except OSError as exc:
        return None, f"KVM_CHECK_EXTENSION ({nr:#x}) failed: {exc.strerror}"
    finally:
        os.close(fd)
    return got > 0, f"KVM_CHECK_EXTENSION({nr:#x}, KVM_CAP_IRQFD_RESAMPLE={cap}) returned {got}"
