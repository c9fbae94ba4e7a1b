"""Lab machines without booting one: the QEMU command line's promises (SSH on
127.0.0.1 only, a restricted user network, a management NIC that is no test card
model, the lab's machine model and cards) and the cleanup of a machine whose QEMU
or owner is gone."""
import json
import os
import pathlib
import subprocess
import sys
import time

from pyvfio.lab import machine, qemu
from pyvfio.lab.config import CARDS, LabConfig


def _cmd(arch, **kw):
    cfg = LabConfig(arch, cards=("edu", "e1000") if arch == "x86_64" else ("edu",), **kw)
    return machine.command(cfg, "qemu", "/k", "/i", "/o.qcow2", 2222, "/m.sock", "/c.log", bridge=True)


def test_ssh_only_on_loopback_and_restricted():
    for arch in ("x86_64", "ppc64le"):
        cmd = _cmd(arch)
        net = [a for a in cmd if a.startswith("user,")]
        assert net == ["user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22"]
        nics = [a for a in cmd if "netdev=" in a]
        assert nics and all(a.startswith("virtio-net-pci,") for a in nics)
        assert not any(a.split(",")[0] in ("e1000", "rtl8139") and "netdev" in a for a in cmd)


def test_machine_model_and_cards_come_from_the_lab():
    cmd = _cmd("x86_64")
    cfg = LabConfig("x86_64", cards=("edu", "e1000"))
    lab = qemu.machine_args(cfg, bridge=True, ids=True)
    assert cmd[-len(lab):] == lab
    assert "intel-iommu,intremap=on" in lab and f"{CARDS['e1000'][0]},addr=0x11,id=card1" in lab
    assert "pcie-pci-bridge,id=pcibr,bus=rp28" in lab
    assert [a for a in lab if a.startswith("edu,bus=pcibr")] == ["edu,bus=pcibr,addr=0x1,id=brcard0",
                                                                     "edu,bus=pcibr,addr=0x5,id=brcard1"]
    ppc = _cmd("ppc64le", ic="xics")
    assert any(a.startswith("pseries,ic-mode=xics") for a in ppc)
    assert "pci-bridge,id=pcibr,chassis_nr=1,bus=phb1.0,addr=0x10" in ppc
    # the disk and the NIC stay on the default PHB, off the cards' IOMMU group
    assert "virtio-net-pci,netdev=mgmt,bus=pci.0" in ppc and "virtio-blk-pci,drive=disk,bus=pci.0" in ppc


def _fake(tmp_path, name, pid, owner=None, ready=True):
    d = tmp_path / "machines" / name
    d.mkdir(parents=True)
    state = {"name": name, "arch": "x86_64", "kernel": "6.12", "release": "r", "ic": "ioapic",
             "ssh_host": "127.0.0.1", "ssh_port": 1, "user": "root", "key": "k", "cards": [],
             "pid": pid, "monitor_path": str(d / "monitor.sock"), "owner": owner, "dir": str(d),
             "ready": ready}
    (d / "machine.json").write_text(json.dumps(state))
    return d


def _sleeper(folder):
    """A "QEMU" that is alive and names its folder on its command line, as QEMU does:
    returned once it has exec'd (before that its cmdline is still the forking pytest's,
    and list_machines rightly takes it for another process: a race on a loaded host)."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(folder)])
    deadline = time.monotonic() + 30
    while str(folder).encode() not in pathlib.Path(f"/proc/{p.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the sleeper never started"
        time.sleep(0.01)
    return p


def test_dead_qemu_and_dead_owner_are_cleaned(tmp_path):
    live = _fake(tmp_path, "live", 0)
    proc = _sleeper(live)
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    orphan = _fake(tmp_path, "orphan", 0)
    proc2 = _sleeper(orphan)
    try:
        for d, p, owner in ((live, proc, os.getpid()), (orphan, proc2, dead_owner.pid)):
            s = json.loads((d / "machine.json").read_text())
            s.update(pid=p.pid, owner=owner)
            (d / "machine.json").write_text(json.dumps(s))
        gone = _fake(tmp_path, "gone", dead_owner.pid)   # its QEMU is not running
        names = [m.name for m in machine.list_machines(tmp_path)]
        assert names == ["live"]
        assert not gone.exists() and not orphan.exists()
        assert proc2.wait(15) is not None          # the orphan's QEMU was stopped
        assert machine.get("live", tmp_path).pid == proc.pid
        machine.stop("live", tmp_path)
        assert proc.wait(15) is not None and not live.exists()
    finally:
        for p in (proc, proc2):
            p.kill()
            p.wait()


def test_bad_arch_is_one_line_before_anything_is_built(tmp_path):
    for extra in ([], ["--prepare-only"]):
        p = subprocess.run([sys.executable, "-m", "pyvfio", "lab", "machine", "start", "sparc", *extra],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYVFIO_CACHE=str(tmp_path)))
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.strip() == "pyvfio: error: unknown lab architecture 'sparc': choose one of x86_64, ppc64le"
        assert not any(tmp_path.iterdir())   # nothing made in the cache


def _copying_machine(monkeypatch, payload=b"fetched\n"):
    """A Machine whose scp writes `payload` into its destination as scp does: in
    place, through a link."""
    from pyvfio.lab.machine import LabMachine
    m = LabMachine("m", "x86_64", "6.12", "r", "ioapic", "127.0.0.1", 1, "root", "k", [], 1, "mon")

    def scp(src, dst, recursive=False):
        with open(dst, "wb") as f:
            f.write(payload)
    monkeypatch.setattr(m, "_scp", scp)
    return m


def test_copy_from_a_machine_never_writes_through_a_link(tmp_path, monkeypatch):
    # scp straight to DST wrote through a link planted there (root's copy truncated
    # the link's target); a FIFO there hung it
    import pytest as _pytest
    from pyvfio.errors import PyvfioError
    m = _copying_machine(monkeypatch)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "out").symlink_to(victim)
    with _pytest.raises(PyvfioError, match="symbolic link"):
        m.get_file("/root/result.json", tmp_path / "out")
    assert victim.read_text() == "precious\n"
    os.mkfifo(tmp_path / "fifo")
    with _pytest.raises(PyvfioError, match="FIFO"):
        m.get_file("/root/result.json", tmp_path / "fifo")
    m.get_file("/root/result.json", tmp_path / "new.json")          # a new file
    assert (tmp_path / "new.json").read_bytes() == b"fetched\n"
    m.get_file("/root/result.json", tmp_path)                       # into a folder, as scp
    assert (tmp_path / "result.json").read_bytes() == b"fetched\n"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".pyvfio-")]   # nothing left behind
