"""Inside a lab guest: the facts of this run, for the in-guest tests.

The host writes lab.json (arch, kernel, ic, nointxmask, policy, cards asked for);
the guest's init adds cards.txt (name, BDF, IOMMU group, vendor:device of each bound card) and
guest.txt (kernel release, vfio-pci's nointxmask as loaded), all in the run share
named by $PYVFIO_LAB_DIR.
"""
import json
import os
import pathlib


def in_lab():
    return os.environ.get("PYVFIO_LAB") == "1" and bool(os.environ.get("PYVFIO_LAB_DIR"))


def facts():
    """A dict of the run's facts, or None outside a lab guest."""
    if not in_lab():
        return None
    run = pathlib.Path(os.environ["PYVFIO_LAB_DIR"])
    f = json.loads((run / "lab.json").read_text())
    f["bound"] = []
    for line in (run / "cards.txt").read_text().splitlines():
        name, bdf, group, *pci_id = line.split()
        f["bound"].append({"card": name, "bdf": bdf, "group": int(group),
                           "id": pci_id[0] if pci_id else None})
    for line in (run / "guest.txt").read_text().splitlines():
        key, _, value = line.partition(" ")
        f[f"guest_{key}"] = value
    return f


def iommus():
    """The ways a device opens in this guest (open_device's iommu): the container
    always, iommufd too where the kernel has it (no lab kernel does yet: Debian's
    6.12 is built without CONFIG_IOMMUFD).  Tests that run on each name both."""
    from ..host import iommufd
    from ..host.system import uname

    kernel, machine = uname()
    return ["container"] + (["iommufd"] if iommufd.unavailable(machine, kernel) is None else [])


def bdf_of(card, f=None):
    """The BDF of the first bound card of that name, or None."""
    f = f or facts() or {}
    return next((b["bdf"] for b in f.get("bound", []) if b["card"] == card), None)


def card_index(bdf, f=None):
    """The position of the bound card at bdf in the run's card list (qemu's index)."""
    f = f or facts() or {}
    return next(i for i, b in enumerate(f["bound"]) if b["bdf"] == bdf)


def feed(bdf, nbytes, chunk=1, gap_ms=0, timeout=120.0):
    """Ask the host to write nbytes into the chardev of the fed card at bdf
    (lab/feeder.py) and wait until it has; returns what the host says it sent."""
    import time

    from . import feeder

    run = pathlib.Path(os.environ["PYVFIO_LAB_DIR"])
    i = card_index(bdf)
    done = feeder.done_path(run, i)
    done.unlink(missing_ok=True)
    tmp = run / f"feed{i}.request.tmp"
    tmp.write_text(json.dumps({"bytes": nbytes, "chunk": chunk, "gap_ms": gap_ms}))
    os.replace(tmp, feeder.request_path(run, i))
    deadline = time.monotonic() + timeout
    while not done.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the host fed no answer for {bdf} within {timeout:g} s")
        time.sleep(0.05)
    answer = json.loads(done.read_text())
    done.unlink()
    if "error" in answer:
        raise RuntimeError(f"the host's feeder failed: {answer['error']}")
    return answer["sent"]
