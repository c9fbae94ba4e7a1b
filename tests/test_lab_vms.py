"""The lab from the host: one VM boot per configuration, each running the whole
in-guest batch (tests/lab) against a real kernel's /dev/vfio, and the `pyvfio lab`
command's handling of bad input, failing and hanging guests, and a corrupted cache.

Slow (QEMU under TCG; ~15-20 s a boot once cached, minutes for a whole batch; the
batches run two VMs at once).  Skipped, with the reason, only
when QEMU truly cannot run here: not root, QEMU not installed, or no network to
fetch the Debian packages on the first run."""
import os
import pathlib
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.labhost

CHECKOUT = pathlib.Path(__file__).resolve().parents[1]
# pci-serial's chardev is fed by the host (lab/feeder.py): tests/lab/test_external.py.
ALL_CARDS = ["--card", "edu", "--card", "e1000", "--card", "rtl8139", "--card", "pci-serial"]
GUEST_BATCH = ["python", "-m", "pytest", "-m", "lab", "tests/lab", "-q", "-rs", "-p", "no:cacheprovider"]

# A host-driven e1000 on the first card's INTx line: the shared-line tests raise its
# interface, the others leave it down (its driver holds the line only while it is up).
SHARED_LINE = ["--host-card", "e1000"]

# One boot each.  Every configuration loads the policy module (--policy lazy) so
# the policy tests run everywhere with their expectation for that configuration.
CONFIGS = {
    "x86_64-6.12-nointxmask0": ["x86_64", "--kernel", "6.12", "--nointxmask", "0", *ALL_CARDS, *SHARED_LINE],
    "x86_64-6.12-nointxmask1": ["x86_64", "--kernel", "6.12", "--nointxmask", "1", *ALL_CARDS, *SHARED_LINE],
    "x86_64-6.1-nointxmask0": ["x86_64", "--kernel", "6.1", "--nointxmask", "0", "--card", "edu"],
    "x86_64-6.1-nointxmask1": ["x86_64", "--kernel", "6.1", "--nointxmask", "1", "--card", "edu"],
    # e1000 and rtl8139 run on ppc64le in the nointxmask=1 boot (CI's budget)
    "ppc64le-xive-nointxmask0": ["ppc64le", "--ic", "xive", "--nointxmask", "0", "--card", "edu",
                                 "--card", "pci-serial"],
    "ppc64le-xive-nointxmask1": ["ppc64le", "--ic", "xive", "--nointxmask", "1", *ALL_CARDS],
    "ppc64le-xics-nointxmask1": ["ppc64le", "--ic", "xics", "--nointxmask", "1", "--card", "edu"],
}
PREPARE = {  # what each arch needs prepared, so a failure to fetch skips once with the reason
    "x86_64": [["x86_64", "--kernel", "6.12", "--policy", "lazy", *SHARED_LINE],
               ["x86_64", "--kernel", "6.1", "--policy", "lazy"]],
    "ppc64le": [["ppc64le", "--policy", "lazy"]],
}
UNAVAILABLE = 77  # LabUnavailable's exit status


def lab(*args, timeout=900, env=None):
    return subprocess.run([sys.executable, "-m", "pyvfio", "lab", *args], cwd=CHECKOUT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


_prepared = {}


def _prepare(arch):
    """(why the lab cannot run here or None, errors preparing it): once per arch."""
    if arch not in _prepared:
        errors, unavailable = [], None
        for args in PREPARE[arch]:
            p = lab(*args, "--prepare-only")
            if p.returncode == UNAVAILABLE:
                unavailable = p.stderr.strip().splitlines()[-1]
                break
            if p.returncode != 0:
                errors.append(p.stderr)
        _prepared[arch] = (unavailable, "\n".join(errors))
    return _prepared[arch]


def need_lab(arch):
    """Skip, with the lab's own reason, where it says it cannot run on this machine
    (LabUnavailable, exit 77: not root, no QEMU, no network on the first run); else
    prepare this arch's VMs, and any other failure to prepare fails the test."""
    unavailable, err = _prepare(arch)
    if unavailable:
        pytest.skip(f"the {arch} lab cannot run here: {unavailable}")
    assert not err, f"preparing the {arch} lab failed:\n{err}"


# The guest batches run two VMs at once (one vCPU each on this 2-core kind of
# machine; the lab's VM slots keep it at two machine-wide), longest first, so
# the batch tests only wait for their own.  PYVFIO_LAB_VMS=1 runs one at a time.
BATCH_VMS = os.environ.get("PYVFIO_LAB_VMS", "2")
LONGEST_FIRST = ["ppc64le-xive-nointxmask1", "x86_64-6.12-nointxmask0", "x86_64-6.12-nointxmask1",
                 "ppc64le-xive-nointxmask0", "ppc64le-xics-nointxmask1", "x86_64-6.1-nointxmask0",
                 "x86_64-6.1-nointxmask1"]
assert sorted(LONGEST_FIRST) == sorted(CONFIGS)


def _batch(name):
    # TCG guests on a shared 2-core host: a batch took 6-9 min with 30 % CPU steal
    return lab(*CONFIGS[name], "--policy", "lazy", "--timeout", "1500", "--", *GUEST_BATCH,
               timeout=1800, env={"PYVFIO_LAB_VMS": BATCH_VMS})


@pytest.fixture(scope="module")
def batches(request):
    """The selected guest batches, started together on the first one's test."""
    selected = {item.callspec.params["name"] for item in request.session.items
                if item.module.__name__ == __name__ and item.originalname == "test_guest_batch"}
    with ThreadPoolExecutor(max_workers=int(BATCH_VMS)) as pool:
        futures = {}
        for name in LONGEST_FIRST:
            unavailable, err = _prepare(CONFIGS[name][0])
            if name in selected and not unavailable and not err:
                futures[name] = pool.submit(_batch, name)
        yield futures
        for f in futures.values():
            f.cancel()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_guest_batch(name, batches):
    need_lab(CONFIGS[name][0])
    p = batches[name].result()
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    summary = [line for line in p.stdout.splitlines() if re.search(r"\d+ passed", line)]
    assert summary, out
    assert re.fullmatch(r"\d+ passed(, \d+ warnings?)? in [\d.]+s( \([\d:]+\))?", summary[-1].strip()), \
        f"the in-guest batch must pass with nothing skipped or failed: {summary[-1]}\n{out}"


def test_broken_unmask_fails_the_roundtrip_tests():
    """Tests that can fail: with every unmask skipped, the round trips lose interrupts."""
    need_lab("x86_64")
    p = lab("x86_64", "--timeout", "600", "--", "env", "PYVFIO_LAB_BREAK_UNMASK=1", *GUEST_BATCH,
            "-k", "roundtrip")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "4 failed" in p.stdout and "1 of 50 interrupts delivered, 49 lost" in p.stdout, p.stdout


def test_status_and_output_come_back():
    need_lab("x86_64")
    p = lab("x86_64", "--", "sh", "-c", "echo hello from $(uname -m); exit 7")
    assert p.returncode == 7, p.stderr
    assert "hello from x86_64" in p.stdout
    assert "preparing" not in p.stderr  # the second run reuses the cache


def test_ppc64le_runs_pyvfio_itself():
    need_lab("ppc64le")
    code = "import platform, pyvfio.uapi as u; print(platform.machine(), hex(u.VFIO_DEVICE_SET_IRQS))"
    p = lab("ppc64le", "--", "python", "-c", code)
    assert p.returncode == 0, p.stderr
    assert "ppc64le 0x20003b6e" in p.stdout  # powerpc's _IOC encoding, from the real header


def test_hanging_guest_is_killed_at_the_timeout():
    need_lab("x86_64")
    p = lab("x86_64", "--timeout", "12", "--", "sleep", "600")
    assert p.returncode == 3
    assert "no verdict within --timeout 12 s: QEMU was killed" in p.stderr


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _replace(path, data):
    """Write a new file over path (rename), never into a hardlinked inode."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    tmp.rename(path)


def test_corrupted_cache_is_detected_and_rebuilt(tmp_path):
    """On a private copy of the x86 cache (hardlinks; corrupted files are replaced,
    never written in place), so VMs booting from the real cache are not disturbed."""
    need_lab("x86_64")
    from pyvfio.lab import cache

    real = cache.root()
    mine = tmp_path / "lab"
    for part in ["apt/amd64", "kernel-x86_64-6.12", "busybox-amd64",
                 *[p.name for p in real.glob("initramfs-x86_64-6.12-*") if ".tmp" not in p.name]]:
        shutil.copytree(real / part, mine / part, copy_function=_link_or_copy, symlinks=True)
    env = {"PYVFIO_CACHE": str(tmp_path)}
    vmlinux = mine / "kernel-x86_64-6.12" / "vmlinux"
    data = bytearray(vmlinux.read_bytes())
    data[1 << 20: (1 << 20) + 256] = b"\xde\xad\xbe\xef" * 64  # same size, other bytes
    _replace(vmlinux, bytes(data))
    p = lab("x86_64", "--", "true", env=env)
    assert p.returncode == 0, p.stderr
    assert "x86_64 6.12 kernel is corrupted (vmlinux does not match its checksum); rebuilding" \
        in p.stderr
    (initrd,) = mine.glob("initramfs-x86_64-6.12-*/initramfs.cpio")
    _replace(initrd, initrd.read_bytes()[:1000])  # truncated
    p = lab("x86_64", "--", "true", env=env)
    assert p.returncode == 0, p.stderr
    assert "initramfs is corrupted (initramfs.cpio has 1000 bytes" in p.stderr


@pytest.mark.parametrize("args, message", [
    (["sparc", "--", "true"], "unknown lab architecture 'sparc': choose one of x86_64, ppc64le"),
    (["x86_64", "--card", "nic9000", "--", "true"], "unknown card 'nic9000'"),
    (["x86_64", "--kernel", "5.10", "--", "true"], "no 5.10 kernel for the x86_64 lab"),
    (["ppc64le", "--kernel", "6.1", "--", "true"], "no 6.1 kernel for the ppc64le lab"),
    (["x86_64", "--ic", "xive", "--", "true"], "interrupt controller 'xive' is not available on x86_64"),
    (["x86_64"], "no command to run in the guest"),
])
def test_bad_input(args, message):
    p = lab(*args, timeout=60)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr
    assert "Traceback" not in p.stderr


def test_bad_vm_slot_count():
    p = lab("x86_64", "--", "true", timeout=60, env={"PYVFIO_LAB_VMS": "3"})
    assert p.returncode == 2, p.stderr
    assert "PYVFIO_LAB_VMS='3' is not a number of lab VMs from 1 to 2" in p.stderr
    assert "Traceback" not in p.stderr


def test_no_network_on_first_run_says_so(tmp_path):
    """An empty cache and no network (a fresh network namespace): one line that says why."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to take the network away")
    p = subprocess.run(["unshare", "-n", sys.executable, "-m", "pyvfio", "lab", "x86_64", "--", "true"],
                       cwd=CHECKOUT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYVFIO_CACHE=str(tmp_path)))
    assert p.returncode == UNAVAILABLE, p.stderr
    assert "lab: apt update (amd64): no package lists were fetched: no network to Debian's mirror" \
        in p.stderr


def test_missing_qemu_binary():
    p = lab("x86_64", "--", "true", timeout=60, env={"PATH": "/nonexistent"})
    assert p.returncode == UNAVAILABLE, p.stderr
    assert "qemu-system-x86_64 is not installed" in p.stderr
    assert "tools/lab-packages.txt" in p.stderr
