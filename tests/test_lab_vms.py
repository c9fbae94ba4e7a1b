"""The lab from the host: one VM boot per configuration, each running the whole
in-guest batch (tests/lab) against a real kernel's /dev/vfio, and the `pyvfio lab`
command's handling of bad input, failing and hanging guests, and a corrupted cache.

Slow (QEMU under TCG; ~15-20 s a boot once cached, minutes for a whole batch; the
batches run two VMs at once).  Skipped, with the reason, only
when QEMU truly cannot run here: not root, QEMU not installed, or no network to
fetch the Debian packages on the first run."""
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyvfio.errors import EXIT_MACHINE
from pyvfio.checkout import CHECKOUT

pytestmark = pytest.mark.labhost

# pci-serial's chardev is fed by the host (lab/feeder.py): tests/lab/test_external.py.
ALL_CARDS = ["--card", "edu", "--card", "e1000", "--card", "rtl8139", "--card", "pci-serial"]
# -p pyvfio.pytest_plugin: the guest runs pyvfio from its source, without the
# installed entry point that loads the plugin (tests/lab/test_plugin_user.py uses it)
GUEST_BATCH = ["python", "-m", "pytest", "-m", "lab", "tests/lab", "-q", "-rs", "-p", "no:cacheprovider",
               "-p", "pyvfio.pytest_plugin"]

# A host-driven e1000 on the first card's INTx line: the shared-line tests raise its
# interface, the others leave it down (its driver holds the line only while it is up).
SHARED_LINE = ["--host-card", "e1000"]

# One boot each.  Every configuration loads the policy module (--policy lazy) so
# the policy tests run everywhere with their expectation for that configuration.
CONFIGS = {
    # e1000e for its MSI-X (tests/lab/test_msi.py only: a message-only card, conftest.py);
    # sdhci-pci as a user brings a card (tests/lab/test_qemu_cards.py). Not in a ppc64le
    # boot beside the other cards: there SLOF then placed rtl8139's 0x100-byte BAR1 and
    # sdhci's BAR0 off a page boundary, and vfio-pci offers no mmap of such a BAR (seen in
    # the XIVE nointxmask 1 boot); alone on ppc64le it was checked by hand (docs/lab.md).
    "x86_64-6.12-nointxmask0": ["x86_64", "--kernel", "6.12", "--nointxmask", "0", *ALL_CARDS, *SHARED_LINE,
                                "--card", "e1000e", "--card", "qemu:sdhci-pci"],
    # nointxmask=1 changes the host's side (the line masked at the IO-APIC, held
    # exclusively: the shared-line tests), not the cards': in CI with edu and the
    # DisINTx- 16550; every card runs nointxmask=1 on ppc64le XIVE, and here opt-in
    "x86_64-6.12-nointxmask1": ["x86_64", "--kernel", "6.12", "--nointxmask", "1", "--card", "edu",
                                "--card", "pci-serial", *SHARED_LINE],
    "x86_64-6.12-nointxmask1-all": ["x86_64", "--kernel", "6.12", "--nointxmask", "1", *ALL_CARDS,
                                    *SHARED_LINE],
    "x86_64-6.1-nointxmask0": ["x86_64", "--kernel", "6.1", "--nointxmask", "0", "--card", "edu"],
    "x86_64-6.1-nointxmask1": ["x86_64", "--kernel", "6.1", "--nointxmask", "1", "--card", "edu"],
    # e1000 and rtl8139 run on ppc64le in the nointxmask=1 boot (CI's budget)
    "ppc64le-xive-nointxmask0": ["ppc64le", "--ic", "xive", "--nointxmask", "0", "--card", "edu",
                                 "--card", "pci-serial"],
    "ppc64le-xive-nointxmask1": ["ppc64le", "--ic", "xive", "--nointxmask", "1", *ALL_CARDS],
    "ppc64le-xics-nointxmask1": ["ppc64le", "--ic", "xics", "--nointxmask", "1", "--card", "edu"],
    # Debian's PREEMPT_RT and 64 KiB-page kernels: in CI with edu (and on 64K the 16550,
    # whose I/O BAR vfio-pci will not mmap: the pread/pwrite path), every card opt-in
    # (PYVFIO_LAB_FULL=1), CI's budget
    "x86_64-6.12rt-nointxmask1": ["x86_64", "--kernel", "6.12-rt", "--nointxmask", "1", "--card", "edu"],
    "ppc64le-64k-xive-nointxmask1": ["ppc64le", "--kernel", "6.12-64k", "--ic", "xive", "--nointxmask", "1",
                                     "--card", "edu", "--card", "pci-serial"],
    # iommufd.ko and vfio with its device cdev, rebuilt (lab/vfio_build.py): --iommu auto
    # takes iommufd, so the whole batch (engine, MSI, DMA on edu, e1000's TX) runs
    # through an IOAS, and the tests parametrised on guest.iommus() run both ways
    "x86_64-6.12-iommufd": ["x86_64", "--kernel", "6.12", "--iommufd", "--nointxmask", "0",
                            "--card", "edu", "--card", "e1000"],
    "x86_64-6.12rt-nointxmask1-all": ["x86_64", "--kernel", "6.12-rt", "--nointxmask", "1", *ALL_CARDS,
                                      *SHARED_LINE],
    "ppc64le-64k-xive-nointxmask1-all": ["ppc64le", "--kernel", "6.12-64k", "--ic", "xive", "--nointxmask",
                                         "1", *ALL_CARDS],
}
FULL_ONLY = {"x86_64-6.12rt-nointxmask1-all", "ppc64le-64k-xive-nointxmask1-all",
             "x86_64-6.12-nointxmask1-all",
             # CI's budget, since the lab machines' tier (tests/machines) runs there too: the
             # seed's cells on XICS and on XIVE nointxmask=0 still run in CI (the ppc64le seed
             # in tests/test_repro_lab.py boots both, and the ppc64le machine runs XIVE
             # nointxmask 0 and 1); the whole in-guest suite on them is opt-in
             "ppc64le-xics-nointxmask1", "ppc64le-xive-nointxmask0",
             # 6.1 in CI with controller masking, where the masking policy (and so the
             # missing fix) matters; with DisINTx masking it is 6.12's nointxmask=0 boot
             "x86_64-6.1-nointxmask0"}
PREPARE = {  # what each arch needs prepared, so a failure to fetch skips once with the reason
    "x86_64": [["x86_64", "--kernel", "6.12", "--policy", "lazy", *SHARED_LINE],
               ["x86_64", "--kernel", "6.1", "--policy", "lazy"]],
    "ppc64le": [["ppc64le", "--policy", "lazy"]],
    "x86_64 6.12-rt": [["x86_64", "--kernel", "6.12-rt", "--policy", "lazy", *SHARED_LINE]],
    "ppc64le 6.12-64k": [["ppc64le", "--kernel", "6.12-64k", "--policy", "lazy"]],
    # vfio-pci rebuilt from linux-source (lab/vfio_build.py): the prefix, for the seed and below
    "ppc64le vfio": [["ppc64le", "--vfio", "prefix"]],
    "x86_64 iommufd": [["x86_64", "--kernel", "6.12", "--iommufd", "--policy", "lazy"]],
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
LONGEST_FIRST = ["ppc64le-64k-xive-nointxmask1-all", "x86_64-6.12rt-nointxmask1-all",
                 "x86_64-6.12-nointxmask1-all", "x86_64-6.12-nointxmask0", "ppc64le-xive-nointxmask1",
                 "ppc64le-xive-nointxmask0", "x86_64-6.12-iommufd", "ppc64le-64k-xive-nointxmask1",
                 "x86_64-6.12-nointxmask1", "ppc64le-xics-nointxmask1", "x86_64-6.1-nointxmask1",
                 "x86_64-6.12rt-nointxmask1", "x86_64-6.1-nointxmask0"]
assert sorted(LONGEST_FIRST) == sorted(CONFIGS)
FULL = os.environ.get("PYVFIO_LAB_FULL") == "1"


def prepare_key(name):
    """PREPARE's entry for a configuration: its arch, or its arch and kernel."""
    args = CONFIGS[name]
    if "--iommufd" in args:
        return f"{args[0]} iommufd"
    key = f"{args[0]} {args[args.index('--kernel') + 1]}" if "--kernel" in args else args[0]
    return key if key in PREPARE else args[0]


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
            if name in FULL_ONLY and not FULL:
                continue
            unavailable, err = _prepare(prepare_key(name))
            if name in selected and not unavailable and not err:
                futures[name] = pool.submit(_batch, name)
        yield futures
        for f in futures.values():
            f.cancel()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_guest_batch(name, batches):
    if name in FULL_ONLY and not FULL:
        pytest.skip(f"{name} runs with PYVFIO_LAB_FULL=1 (not in CI: its budget)")
    need_lab(prepare_key(name))
    p = batches[name].result()
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    summary = [line for line in p.stdout.splitlines() if re.search(r"\d+ passed", line)]
    assert summary, out
    assert re.fullmatch(r"\d+ passed(, \d+ warnings?)? in [\d.]+s( \([\d:]+\))?", summary[-1].strip()), \
        f"the in-guest batch must pass with nothing skipped or failed: {summary[-1]}\n{out}"
    BATCH_TIMES[name] = batch_times(out)


BATCH_TIMES = {}   # per batch: where its time went (printed at the session's end, tests/conftest.py)


def batch_times(out):
    """One line of a passed batch's figures: the boot's total, the guest's pytest,
    and its three slowest tests (what to look at when CI's budget is short)."""
    total = re.findall(r"guest finished in ([\d.]+) s", out)
    tests = re.findall(r"passed in ([\d.]+)s", out)
    slow = re.findall(r"^([\d.]+)s (?:call|setup|teardown) +tests/lab/(\S+)", out, re.M)[:3]
    return (f"{total[-1] if total else '?'} s, pytest {tests[-1] if tests else '?'} s; slowest "
            + ", ".join(f"{t.split('::')[-1]} {d} s" for d, t in slow))


BY_HAND = CHECKOUT / "tests" / "fixtures" / "vfio-unlazy-by-hand.patch"
VARIANT_TESTS = ["python", "-m", "pytest", "-m", "lab", "tests/lab/test_vfio_variant.py", "-q",
                 "-p", "no:cacheprovider"]


@pytest.mark.parametrize("variant, stalls", [("prefix", True), (f"prefix+patch:{BY_HAND}", False)])
def test_the_kernels_own_code_before_the_fix_stalls_and_a_patch_fixes_it(variant, stalls):
    """vfio-pci rebuilt from Debian's linux-source on POWER9 XIVE, controller masking,
    no policy module: 8b9f128947dd reversed stalls after one interrupt; the same
    prefix with a fix written by hand (tests/fixtures) delivers every one.  The
    in-guest test checks the module loaded is the one built (its srcversion)."""
    if stalls and not FULL:
        # CI's budget: the ppc64le seed (tests/test_repro_lab.py) boots the prefix already
        pytest.skip("the prefix alone runs with PYVFIO_LAB_FULL=1; in CI the seed's prefix cells show it")
    need_lab("ppc64le vfio")
    p = lab("ppc64le", "--ic", "xive", "--nointxmask", "1", "--vfio", variant, "--timeout", "600", "--",
            "sh", "-c", 'cat "$PYVFIO_LAB_DIR/lab.json" && exec "$@"', "sh", *VARIANT_TESTS)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert re.search(r"^3 passed", p.stdout, re.M), out
    lab_json = json.loads(p.stdout[p.stdout.index("{"):p.stdout.index("\n}") + 2])
    assert lab_json["vfio"]["rebuilt"] and lab_json["policy_module"] is False
    assert lab_json["unlazy_fix"] is (not stalls)
    # the source of the kernel's own upload: linux-source 6.12.95-1~bpo12+1 for 6.12.95+deb12
    assert lab_json["vfio"]["source"].startswith(lab_json["kver"].split("+")[0] + "-")


@pytest.mark.parametrize("diff, message", [
    ("--- a/drivers/vfio/pci/vfio_pci_intrs.c\n+++ b/drivers/vfio/pci/vfio_pci_intrs.c\n"
     "@@ -100,3 +100,3 @@\n no such line\n-here\n+there\n at all\n",
     r"does not apply to linux-source 6\.12\.\S+: hunk #1 of drivers/vfio/pci/vfio_pci_intrs\.c "
     r"does not apply \(at line 100\)"),
    ("--- a/drivers/vfio/pci/vfio_pci_intrs.c\n+++ b/drivers/vfio/pci/vfio_pci_intrs.c\n"
     "@@ -11,2 +11,3 @@\n  */\n+#error by the test\n \n",
     r"does not build on linux-source 6\.12\.\S+: drivers/vfio/pci/vfio_pci_intrs\.c:12:\d+: "
     r"error: #error by the test"),
])
def test_a_patch_that_does_not_apply_or_build_is_one_line(tmp_path, diff, message):
    need_lab("ppc64le vfio")
    patch = tmp_path / "mine.patch"
    patch.write_text(diff)
    p = lab("ppc64le", "--vfio", f"patch:{patch}", "--prepare-only", timeout=600)
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert re.search(r"^pyvfio: error: mine\.patch " + message, last), p.stderr
    assert "Traceback" not in p.stderr


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
    assert p.returncode == 7, p.stderr  # not ours: the guest shell's exit 7, passed through
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
    assert p.returncode == EXIT_MACHINE
    assert "no verdict within --timeout 12 s: QEMU was killed" in p.stderr


def _newest_stock_612(cache_dir):
    """The x86_64 6.12 initramfs the boots use: initramfs-x86_64-6.12-HASH (not 6.12-rt's,
    not a .tmp), the newest where a long-lived cache keeps older ones."""
    found = [p for p in cache_dir.glob("initramfs-x86_64-6.12-*")
             if re.fullmatch(r"initramfs-x86_64-6\.12-[0-9a-f]+", p.name)]
    return max(found, key=lambda p: p.stat().st_mtime).name


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
                 _newest_stock_612(real),
                 # the guest's KVM modules (lab/modules.py prepare_kvm), not rebuilt here
                 *[p.name for p in real.glob("kvm-6.12.*") if ".tmp" not in p.name]]:
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
    (initrd,) = mine.glob(f"{_newest_stock_612(real)}/initramfs.cpio")
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
    (["x86_64", "--vfio", "bogus", "--", "true"], "unknown vfio-pci variant 'bogus'"),
    (["x86_64", "--vfio", "patch:/nonexistent.diff", "--", "true"], "cannot read the patch /nonexistent.diff"),
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
