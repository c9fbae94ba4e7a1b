"""The lab's host-side pieces that need no VM: cpio, module dependencies,
vmlinux extraction, the cache's corruption detection, the QEMU command line,
request checking, the guest's facts and the policy helper (on fabricated trees)."""
import gzip
import json
import lzma
import pathlib
import re

import pytest

from pyvfio.errors import PyvfioError, UsageError
from pyvfio.host import policy_module as policy
from pyvfio.lab import cache, cpio, in_guest, modules, qemu, vmlinux
from pyvfio.lab.config import LabConfig

from fixtures.fakehost import FakeHost


def _parse_newc(data):
    out, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data[pos:pos + size])
        pos = (pos + size + 3) & ~3


def test_cpio_newc_round_trip():
    w = cpio.Writer()
    w.dir("bin")
    w.file("init", b"#!/bin/sh\n", 0o755)
    w.symlink("bin/sh", "busybox")
    data = w.finish()
    assert len(data) % 512 == 0
    entries = _parse_newc(data)
    assert entries["init"] == (0o100755, b"#!/bin/sh\n")
    assert entries["bin/sh"] == (0o120777, b"busybox")
    assert entries["bin"][0] == 0o40755


def test_module_closure_orders_dependencies_first(tmp_path):
    def ko(name, deps, xz=False):
        blob = b"\x7fELF....\0license=GPL\0depends=" + deps.encode() + b"\0name=" + name.encode() + b"\0"
        path = tmp_path / (name.replace("_", "-") + (".ko.xz" if xz else ".ko"))
        path.write_bytes(lzma.compress(blob) if xz else blob)
    ko("vfio_pci", "vfio_pci_core,vfio")
    ko("vfio_pci_core", "vfio,irqbypass", xz=True)
    ko("vfio", "")
    ko("irqbypass", "")
    (tmp_path / "modules.builtin").write_text("kernel/virt/lib/irqbypass.ko\n")
    order, blobs = modules.closure(["vfio_pci"], modules.index(tmp_path), modules.builtin(tmp_path))
    assert order == ["vfio", "vfio_pci_core", "vfio_pci"]  # irqbypass is built in
    assert blobs["vfio_pci_core"].startswith(b"\x7fELF")
    with pytest.raises(KeyError):
        modules.closure(["nosuch"], modules.index(tmp_path), set())


@pytest.mark.parametrize("compress", [lambda b: lzma.compress(b, format=lzma.FORMAT_XZ), gzip.compress])
def test_extract_vmlinux(compress):
    elf = b"\x7fELF" + bytes(range(256)) * 64
    image = b"MZ setup code \xfd7zXZ not a stream" + compress(elf) + b"\0" * 100
    assert vmlinux.extract(image) == elf
    assert vmlinux.extract(b"no payload here") is None


def test_cache_detects_corruption_and_rebuilds(tmp_path):
    builds = []

    def build(out):
        builds.append(1)
        (out / "vmlinux").write_bytes(b"kernel" * 1000)
        (out / "extra").write_text("x")
        return {"kver": "1"}

    folder = cache.ensure(tmp_path / "k", "kernel", build, hashed=("vmlinux",))
    assert cache.ensure(tmp_path / "k", "kernel", build, hashed=("vmlinux",)) == folder
    assert len(builds) == 1 and cache.info(folder) == {"kver": "1"}
    data = bytearray((folder / "vmlinux").read_bytes())
    data[10] ^= 0xFF
    (folder / "vmlinux").write_bytes(bytes(data))  # same size, other bytes
    assert cache.verify(folder) == "vmlinux does not match its checksum"
    cache.ensure(tmp_path / "k", "kernel", build, hashed=("vmlinux",))
    assert len(builds) == 2 and cache.verify(folder) is None
    (folder / "extra").write_text("longer")
    assert "extra has 6 bytes" in cache.verify(folder)
    (folder / cache.MANIFEST).unlink()
    assert cache.verify(folder) == "no manifest (never finished)"


def test_interrupted_build_leaves_nothing(tmp_path):
    def build(out):
        (out / "half").write_text("x")
        raise RuntimeError("network gone")

    with pytest.raises(RuntimeError):
        cache.ensure(tmp_path / "k", "kernel", build)
    assert list(tmp_path.iterdir()) == []


def _cmd(**kw):
    cfg = LabConfig(command=("true",), **kw)
    return " ".join(qemu.command(cfg, "qemu", "vmlinux", "initrd",
                                 [("labroot", "/", True), ("labsrc", "/src", False)],
                                 pathlib.Path("/run/lab")))


@pytest.mark.parametrize("arch", ["x86_64", "ppc64le"])
def test_a_fed_card_gets_a_unix_socket_chardev_in_the_run_folder(arch):
    cmd = _cmd(arch=arch, cards=("edu", "pci-serial"))
    assert "-chardev socket,id=card1,path=/run/lab/card1.sock,server=on,wait=off" in cmd
    assert "-device pci-serial,chardev=card1," in cmd
    assert "card0" not in cmd                       # edu takes no chardev


def test_qemu_x86_command():
    cmd = _cmd(arch="x86_64", cards=("edu", "e1000"))
    assert "-machine q35" in cmd and "intel-iommu,intremap=on" in cmd
    assert "isa-debug-exit,iobase=0xf4" in cmd and "-accel tcg" in cmd
    assert "-device edu,addr=0x10" in cmd and "e1000,mitigation=off,addr=0x11" in cmd
    assert "path=/,security_model=none,multidevs=remap,readonly=on" in cmd


def test_qemu_ppc64le_command():
    cmd = _cmd(arch="ppc64le", ic="xics", cards=("edu",))
    assert "pseries,ic-mode=xics,x-vof=on" in cmd and "-cpu POWER9" in cmd
    assert "spapr-pci-host-bridge,index=1,id=phb1 -device edu,bus=phb1.0" in cmd
    assert "mount_tag=labroot,bus=pci.0" in cmd  # shares stay off the cards' PHB
    assert "console=hvc0" in cmd


@pytest.mark.parametrize("kw, message", [
    ({"arch": "arm64"}, "unknown lab architecture 'arm64'"),
    ({"arch": "ppc64le", "kernel": "6.1"}, "no 6.1 kernel for the ppc64le lab"),
    ({"arch": "x86_64", "cards": ("nic",)}, "unknown card 'nic'"),
    ({"arch": "ppc64le", "ic": "ioapic"}, "'ioapic' is not available on ppc64le"),
    ({"arch": "x86_64", "policy": "eager"}, "unknown policy 'eager'"),
    ({"arch": "x86_64", "timeout": 0}, "--timeout must be a positive"),
    ({"arch": "x86_64", "kernel": "6.1", "iommufd": True}, "--iommufd: kernel 6.1 has no iommufd"),
    ({"arch": "ppc64le", "iommufd": True}, "--iommufd: no vfio device cdev on POWER .drivers/vfio/Kconfig"),
])
def test_config_rejects(kw, message):
    with pytest.raises(UsageError, match=message):
        LabConfig(**kw)


def test_config_defaults():
    c = LabConfig("ppc64le")
    assert (c.kernel, c.ic, c.cards, c.nointxmask, c.policy) == ("6.12", "xive", ("edu",), 0, "kernel")


def test_guest_facts(tmp_path, monkeypatch):
    monkeypatch.delenv("PYVFIO_LAB", raising=False)
    assert in_guest.facts() is None  # outside a lab guest
    (tmp_path / "lab.json").write_text(json.dumps({"arch": "ppc64le", "nointxmask": 1}))
    (tmp_path / "cards.txt").write_text("edu 0001:00:01.0 1 1234:11e8\ne1000 0001:00:02.0 1 8086:100e\n")
    (tmp_path / "guest.txt").write_text("kver 6.12.95+deb12-powerpc64le\nnointxmask Y\n")
    monkeypatch.setenv("PYVFIO_LAB", "1")
    monkeypatch.setenv("PYVFIO_LAB_DIR", str(tmp_path))
    f = in_guest.facts()
    assert f["bound"][1] == {"card": "e1000", "bdf": "0001:00:02.0", "group": 1, "id": "8086:100e"}
    assert f["guest_nointxmask"] == "Y" and f["guest_kver"].startswith("6.12.95")
    assert in_guest.bdf_of("e1000", f) == "0001:00:02.0"


def test_policy_helper_on_a_fabricated_tree(tmp_path):
    FakeHost(tmp_path).write(
        "proc/interrupts", "           CPU0\n 23:         40  XIVE-IRQ 4101 Level     vfio-intx(0001:00:01.0)\n")
    with pytest.raises(PyvfioError, match="pyvfio_policy is not loaded"):
        policy.set_policy("0001:00:01.0", "lazy", root=str(tmp_path))
    knob = tmp_path / policy.KNOB.lstrip("/")
    knob.parent.mkdir(parents=True)
    knob.write_text("")
    assert policy.set_policy("0001:00:01.0", "lazy", root=str(tmp_path)) == 23
    assert policy.states(root=str(tmp_path)) == {23: "lazy"}
    with pytest.raises(PyvfioError, match="no vfio-intx"):
        policy.set_policy("0000:00:10.0", "lazy", root=str(tmp_path))
    with pytest.raises(PyvfioError, match="unknown policy"):
        policy.set_irq_policy(23, "eager", root=str(tmp_path))


def _outcome(lines=(), qemu_status=0, timed_out=False, init_failed=None, command_started=False):
    from pyvfio.lab import vm

    out = vm.Outcome(qemu_status=qemu_status, timed_out=timed_out, init_failed=init_failed,
                     command_started=command_started)
    out.console.extend(lines)
    return out


@pytest.mark.parametrize("arch, outcome, status, message", [
    ("x86_64", dict(timed_out=True), None, "no verdict within --timeout 9 s: QEMU was killed"),
    ("x86_64", dict(init_failed="bind: no edu card (1234:11e8)"), None, "no edu card"),
    ("x86_64", dict(lines=["qemu-system-x86_64: -device nope: not found"], qemu_status=1), None,
     "QEMU refused to start (exit 1)"),
    # QEMU's own assertion mid-run (QEMU 7.2's e1000e): a crash, not a refusal
    ("x86_64", dict(lines=["qemu-system-x86_64: -device e1000e: warning", "ok 3 - test_x",
                           "qemu-system-x86_64: ../hw/net/e1000e_core.c:169: e1000e_intrmgr_on_msix_"
                           "throttling_timer: Assertion failed."], qemu_status=-6, command_started=True),
     None, "QEMU crashed during the command (killed by SIGABRT): qemu-system-x86_64: ../hw/net/e1000e_core"),
    ("ppc64le", dict(lines=["Kernel panic"], qemu_status=0), None, "ended without a verdict"),
    ("x86_64", dict(qemu_status=0), "0", "verdicts disagree"),   # QEMU's 0 proves nothing
    ("x86_64", dict(qemu_status=15), "7", None),                  # (7 << 1) | 1
    ("x86_64", dict(qemu_status=255), "200", None),               # clamped to 127
    ("ppc64le", dict(qemu_status=0), "3", None),
])
def test_verdict(tmp_path, arch, outcome, status, message):
    from pyvfio.lab import session
    from pyvfio.lab.errors import LabError

    if status is not None:
        (tmp_path / "status").write_text(status + "\n")
    cfg = LabConfig(arch, timeout=9, command=("true",))
    if message is None:
        assert session._verdict(cfg, _outcome(**outcome), tmp_path) == int(status)
    else:
        with pytest.raises(LabError, match=re.escape(message)):
            session._verdict(cfg, _outcome(**outcome), tmp_path)


def test_not_root_is_lab_unavailable(monkeypatch, tmp_path):
    """The lab says it cannot run here (exit 77, read as skipped), before any download."""
    from pyvfio.lab import session
    from pyvfio.lab.errors import LabUnavailable

    monkeypatch.setattr(session.os, "geteuid", lambda: 1000)
    with pytest.raises(LabUnavailable, match="runs as root") as info:
        session.prepare(LabConfig("x86_64"), cache_root=tmp_path)
    assert info.value.exit_code == 77 and not any(tmp_path.iterdir())


@pytest.mark.parametrize("kver, mode", [("6.12.117+deb12-amd64", "0x3"), ("6.12.95+deb12-powerpc64le", "0x3"),
                                        ("6.1.0-57-amd64", "none"), ("6.6.0", "0x3"), ("6.5.13", "none")])
def test_checkout_share_cache_mode(kver, mode):
    from pyvfio.lab.session import src_cache

    assert src_cache(kver) == mode


def test_a_set_stop_ends_the_boot():
    """repro --lab's threads: an interrupted caller ends a running QEMU within seconds."""
    import threading
    import time

    from pyvfio.lab import vm

    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    out = vm.run(["sleep", "60"], timeout=60, stop=stop)
    assert out.stopped and not out.timed_out and time.monotonic() - t0 < 10


def test_slots_take_the_free_one_and_a_stop_ends_the_wait(tmp_path, monkeypatch):
    import fcntl
    import threading

    from pyvfio.lab import session
    from pyvfio.lab.errors import LabError

    monkeypatch.setattr(session, "VM_LOCK", str(tmp_path / "vm.lock"))
    monkeypatch.setenv("PYVFIO_LAB_VMS", "2")
    held = open(tmp_path / "vm.lock", "a")          # another VM holds slot 0
    fcntl.flock(held, fcntl.LOCK_EX)
    with session._vm_slot():                       # slot 1 is free: no wait
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        with pytest.raises(LabError, match="stopped while waiting for a lab VM slot"):
            with session._vm_slot(stop):           # both taken: waits until stopped
                pass


def test_uapi_headers_without_the_host_headers_or_debians_say_so_in_one_line(monkeypatch, capsys):
    """tools/setup builds the extension without iommufd then (exit 1, one line why)."""
    from pyvfio.lab import uapi_headers
    from pyvfio.lab.errors import LabUnavailable

    def offline(cache_root=None):
        raise LabUnavailable("apt update (amd64)", "no package lists were fetched")

    monkeypatch.setattr(uapi_headers, "_compiles", lambda cc, flags: False)
    monkeypatch.setattr(uapi_headers, "prepare", offline)
    assert uapi_headers.main() == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("no <linux/iommufd.h>: the host's kernel headers lack it") and "no package lists" in err


def test_uapi_headers_prints_nothing_where_the_hosts_have_it(monkeypatch, capsys):
    from pyvfio.lab import uapi_headers

    monkeypatch.setattr(uapi_headers, "_compiles", lambda cc, flags: True)
    assert uapi_headers.main() == 0 and capsys.readouterr().out == ""


@pytest.mark.parametrize("value", ["file", "/proc/pyvfio-nonexist", "/dev/null"])
def test_a_pyvfio_cache_that_cannot_be_a_folder_is_one_line(tmp_path, monkeypatch, capsys, value):
    # lab machine start with PYVFIO_CACHE naming a file was NotADirectoryError, exit 70
    # ('this is a bug'); lab machine list said nothing and exited 0
    from pyvfio.cli import main
    from pyvfio.errors import UsageError
    from pyvfio.lab import cache
    if value == "file":
        value = str(tmp_path / "file")
        (tmp_path / "file").write_text("")
    monkeypatch.setenv("PYVFIO_CACHE", value)
    with pytest.raises(UsageError, match="PYVFIO_CACHE"):
        cache.root()
    assert main(["lab", "machine", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"PYVFIO_CACHE={value}" in err and "point PYVFIO_CACHE at a folder" in err
