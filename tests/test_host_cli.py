"""The list/info/bind/unbind commands: output in lspci's words, stable --json, and bad
input as one line on stderr with a non-zero status and no traceback.  Most run the
real `pyvfio` command in a subprocess on a fabricated tree (PYVFIO_SYSROOT); the
ones that bind run in-process with the simulated kernel."""

import json
import os
import subprocess
import sys

import pytest

from fixtures.fakehost import FakeHost, FakeKernel
from pyvfio.checkout import CHECKOUT
from pyvfio import cli
from pyvfio.host import bind
from pyvfio.errors import EXIT

CARD = "0000:02:05.0"
OTHER = "0000:02:06.0"
BRIDGE = "0000:00:1e.0"
THIRD = "0000:02:07.0"
FIX = os.path.join(os.path.dirname(__file__), "fixtures")
REPO = str(CHECKOUT)


def pyvfio(*args, root=None):
    env = dict(os.environ)
    env.pop("PYVFIO_SYSROOT", None)
    if root:
        env["PYVFIO_SYSROOT"] = root
    return subprocess.run([sys.executable, "-m", "pyvfio", *args], capture_output=True,
                          text=True, env=env, timeout=60, cwd=REPO)   # this checkout's pyvfio


def one_line_error(r, *words):
    assert r.returncode != 0, r
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyvfio: error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture
def host(tmp_path):
    h = FakeHost(tmp_path)
    h.add_driver("vfio-pci")
    h.add_device(BRIDGE, 0x8086, 0x244E, 0x060401, header_type=1, pin=0, group=4)
    h.add_device(CARD, 0x10EC, 0x8139, driver="vfio-pci", group=4, irq=16, line=16,
                 bars=(0xE001, 0xF4004000),
                 resources=[(0xE000, 0xE0FF, 0x40101), (0xF4004000, 0xF40040FF, 0x40200)])
    h.add_device(OTHER, 0x8086, 0x100E, driver="e1000", group=5, irq=11, command=0x0407)
    h.write(f"sys/bus/pci/devices/{OTHER}/enable", "1\n")     # its driver enabled it
    h.add_device(THIRD, 0x1234, 0x11E8, 0x00FF00, driver="edu-host", group=4, pin=0)
    with open(os.path.join(FIX, "interrupts", "x86-ioapic-vfio.txt")) as f:
        text = f.read().replace("vfio-intx(0000:02:00.0)", f"vfio-intx({CARD})")
    h.write("proc/interrupts", text)
    h.write("sys/module/vfio_pci/parameters/nointxmask", "Y\n")
    return h


# --- list -----------------------------------------------------------------------------

def test_list_hides_bridges_and_speaks_lspci(host):
    r = pyvfio("list", root=host.root)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.splitlines() == [
        f"{CARD} Ethernet controller [0200]: Device [10ec:8139] (rev 01) DisINTx- masking:unknown; "
        "pin A routed to IRQ 16; IOMMU group: 4; driver: vfio-pci",
        f"{OTHER} Ethernet controller [0200]: Device [8086:100e] (rev 01) DisINTx+ masking:yes(disintx-set); "
        "pin A routed to IRQ 11; IOMMU group: 5; driver: e1000",
        f"{THIRD} Unclassified device [00ff]: Device [1234:11e8] (rev 01) DisINTx- "
        "masking:unknown; no interrupt pin; IOMMU group: 4; driver: edu-host",
    ]
    assert BRIDGE in pyvfio("list", "--all", root=host.root).stdout


def test_list_json_keys_are_stable(host):
    r = pyvfio("list", "--all", "--json", "-", root=host.root)
    data = json.loads(r.stdout)["devices"]
    assert [d["bdf"] for d in data] == [BRIDGE, CARD, OTHER, THIRD]
    assert set(data[1]) == {"bdf", "vendor", "device", "subsystem_vendor", "subsystem_device",
                            "class", "class_name", "revision", "driver", "driver_override",
                            "iommu_group", "irq", "enabled", "interrupt_pin", "is_bridge",
                            "disintx", "intx_mask", "name", "intx_route", "hex"}
    assert data[1]["hex"]["vendor"] == "10ec" and data[1]["hex"]["class"] == f"{data[1]['class'] >> 8:04x}"
    assert data[0]["is_bridge"] and data[1]["vendor"] == 0x10EC
    assert data[2]["intx_mask"]["basis"] == "disintx-set"
    assert data[1]["intx_route"]["basis"] == "requested" and data[1]["intx_route"]["irq"] == 16
    assert data[2]["intx_route"]["basis"] == "enabled" and data[0]["intx_route"] is None


def test_list_says_when_the_irq_is_still_the_firmwares(host):
    """Never enabled since boot: sysfs irq is config 0x3c, which the kernel may route
    elsewhere at pci_enable_device; list says so and does not open the card."""
    host.add_device("0000:02:08.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=6,
                    irq=10, line=10)
    out = pyvfio("list", root=host.root).stdout
    assert "pin A, IRQ 10 from firmware (the kernel routes it at enable)" in out
    host.write("sys/bus/pci/devices/0000:02:08.0/irq", "20\n")    # after an enable and disable
    out = pyvfio("list", root=host.root).stdout
    assert "0000:02:08.0" in out and "pin A routed to IRQ 20" in out


def test_list_on_this_machine_matches_sysfs():
    base = "/sys/bus/pci/devices"
    if not os.path.isdir(base) or not os.listdir(base):
        pytest.skip("no PCI devices here")
    r = pyvfio("list", "--all", "--json", "-")
    assert r.returncode == 0, r.stderr
    got = {d["bdf"]: d for d in json.loads(r.stdout)["devices"]}
    assert set(got) == set(os.listdir(base))
    for bdf, d in got.items():
        with open(os.path.join(base, bdf, "vendor")) as f:
            assert d["vendor"] == int(f.read(), 16)


# --- info -----------------------------------------------------------------------------

def test_info_shows_config_irq_controller_and_why_vfio_is_missing(host):
    r = pyvfio("info", "02:05.0", root=host.root)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "\tControl: I/O+ Mem+ BusMaster+" in out and "DisINTx-" in out
    assert "\tInterrupt: pin A routed to IRQ 16" in out
    assert f"\tIOMMU group: 4 (with {BRIDGE} bridge, no driver; {THIRD} edu-host)" in out
    assert "\tRegion 0: I/O ports at e000 [size=256]" in out
    assert "\tRegion 1: Memory at f4004000 (32-bit, non-prefetchable) [size=256]" in out
    assert ("IRQ 16: IR-IO-APIC hwirq 16 Level, 512 interrupts, held by: ehci_hcd:usb1, "
            f"vfio-intx({CARD})") in out
    assert "nointxmask: Y" in out
    assert "exclusively (controller masking): EBUSY while ehci_hcd:usb1 hold(s) it" in out
    assert "INTx masking (PCI 2.3 DisINTx) supported: unknown" in out
    assert "VFIO: not available for this device here:" in out
    assert "/dev/vfio does not exist" in out


def test_info_json(host):
    data = json.loads(pyvfio("info", CARD, "--json", "-", root=host.root).stdout)
    assert set(data) == {"tool", "version", "kind", "command", "started", "device", "names", "config", "host", "vfio"}
    assert data["kind"] == "info"
    assert data["host"]["irq_line"]["chip"] == "IR-IO-APIC"
    assert data["host"]["irq_shared_with"] == ["ehci_hcd:usb1"]
    assert data["host"]["exclusive_needed"] is True
    assert data["host"]["system"]["nointxmask"] is True
    assert data["config"]["intx_mask"]["supported"] is None
    assert data["vfio"]["available"] is False and data["vfio"]["blockers"]
    assert data["host"]["group_members"] == [
        {"bdf": BRIDGE, "driver": None, "is_bridge": True, "breaks_viability": False},
        {"bdf": THIRD, "driver": "edu-host", "is_bridge": False, "breaks_viability": True}]
    assert {"reason": f"IOMMU group 4 is not viable: {THIRD} (edu-host)",
            "fix": f"pyvfio bind {CARD} --group"} in data["vfio"]["blockers"]


def test_info_on_this_machine_explains_vfio():
    base = "/sys/bus/pci/devices"
    if not os.path.isdir(base) or not os.listdir(base):
        pytest.skip("no PCI devices here")
    bdf = sorted(os.listdir(base))[-1]
    r = pyvfio("info", bdf)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(bdf) and "\tControl: " in r.stdout
    if not os.path.isdir("/dev/vfio"):
        assert "VFIO: not available for this device here:" in r.stdout


# --- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["info", "bind", "unbind"])
def test_malformed_bdf(cmd, host):
    one_line_error(pyvfio(cmd, "00:3g.0", root=host.root), "malformed PCI address", "DDDD:BB:DD.F")


@pytest.mark.parametrize("cmd", ["info", "bind", "unbind"])
def test_nonexistent_device(cmd, host):
    one_line_error(pyvfio(cmd, "0000:09:00.0", root=host.root), "no PCI device 0000:09:00.0")


def test_require_vfio_on_a_device_not_bound_to_vfio_pci(host):
    one_line_error(pyvfio("info", OTHER, "--require-vfio", root=host.root),
                   "bound to e1000, not vfio-pci", f"pyvfio bind {OTHER}")


def test_require_vfio_without_dev_vfio(host):
    one_line_error(pyvfio("info", CARD, "--require-vfio", root=host.root), "/dev/vfio")


def test_unbind_not_bound_to_vfio_pci(host):
    one_line_error(pyvfio("unbind", OTHER, root=host.root), "not bound to vfio-pci", "e1000")


def test_bind_refusal_exits_4(host):
    host.add_net(OTHER, "eth0", up=True, default_route=True)
    r = pyvfio("bind", OTHER, root=host.root)
    assert r.returncode == EXIT['REFUSED']
    one_line_error(r, "refusing to bind", "eth0", "--force")
    assert host.driver_of(OTHER) == "e1000"


def test_bind_a_bridge(host):
    one_line_error(pyvfio("bind", BRIDGE, root=host.root), "is a bridge")


# --- bind/unbind through the command, with the simulated kernel ---------------------------

def test_bind_dry_run_prints_the_steps_and_changes_nothing(host):
    r = pyvfio("bind", OTHER, "--dry-run", root=host.root)
    assert r.returncode == 0
    assert f"echo vfio-pci > {host.dev(OTHER, 'driver_override')}" in r.stdout
    assert f"echo {OTHER} > {host.p('sys/bus/pci/drivers/e1000/unbind')}" in r.stdout
    assert host.driver_of(OTHER) == "e1000" and not os.path.exists(bind.state_path(host.root))
    plan = json.loads(pyvfio("bind", OTHER, "--dry-run", "--json", "-", root=host.root).stdout)
    assert plan["done"] is False and len(plan["steps"]) == 3


def test_bind_then_unbind_through_the_cli(host, monkeypatch, capsys):
    monkeypatch.setenv("PYVFIO_SYSROOT", host.root)
    monkeypatch.setattr(bind, "Kernel", lambda: FakeKernel(host))
    assert cli.main(["bind", OTHER]) == 0
    assert host.driver_of(OTHER) == "vfio-pci"
    assert f"done: `pyvfio unbind {OTHER}` gives it back" in capsys.readouterr().out
    assert cli.main(["unbind", OTHER, "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["targets"][0]["restore_to"] == "e1000" and data["not_restored"] == {}
    assert host.driver_of(OTHER) == "e1000"


def test_list_head_is_lspci_nn_on_this_machine():
    """Each line of `pyvfio list --all` starts with what `lspci -nn -D` prints."""
    import shutil
    if not shutil.which("lspci") or not os.listdir("/sys/bus/pci/devices"):
        pytest.skip("lspci (pciutils) not installed or no PCI devices")
    want = subprocess.run(["lspci", "-nn", "-D"], capture_output=True, text=True).stdout.splitlines()
    got = pyvfio("list", "--all").stdout.splitlines()
    assert len(got) == len(want)
    for ours, theirs in zip(got, want):
        assert ours.startswith(theirs + " DisINTx"), (ours, theirs)


def test_bind_and_unbind_without_root_say_so_in_one_line(tmp_path):
    """Run as `nobody` on a root-owned fabricated tree: one line, nothing changed."""
    import shutil
    import tempfile
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to switch to an unprivileged user")
    top = tempfile.mkdtemp(prefix="pyvfio-nonroot-")
    try:
        os.chmod(top, 0o755)
        h = FakeHost(top)
        h.add_driver("vfio-pci")
        h.add_device(OTHER, 0x8086, 0x100E, driver="e1000", group=5)
        h.add_device(CARD, driver="vfio-pci", group=4)
        # `nobody` may not be able to read this checkout (a clone under a 0700
        # folder): give it a world-readable copy of the package, compiled extension included
        shutil.copytree(os.path.join(REPO, "pyvfio"), os.path.join(top, "pkg", "pyvfio"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        # and of what it imports from the venv (ioctl-opt, cffi's backend, psutil): the
        # host code reads PCI constants from the compiled <linux/pci_regs.h> (pyvfio.uapi)
        import importlib.util
        for mod in ("ioctl_opt", "_cffi_backend", "psutil"):
            origin = importlib.util.find_spec(mod).origin
            if os.path.basename(origin) == "__init__.py":
                src = os.path.dirname(origin)
                shutil.copytree(src, os.path.join(top, "pkg", os.path.basename(src)),
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(origin, os.path.join(top, "pkg"))
        for folder, _, _ in os.walk(os.path.join(top, "pkg")):
            os.chmod(folder, 0o755)
        env = {**os.environ, "PYVFIO_SYSROOT": top, "PYTHONPATH": os.path.join(top, "pkg")}
        base = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                sys.executable, "-m", "pyvfio"]
        cwd = os.path.join(top, "pkg")
        for args in (["bind", OTHER], ["unbind", CARD]):
            r = subprocess.run(base + args, capture_output=True, text=True, env=env, cwd=cwd,
                               timeout=60)
            one_line_error(r, "needs root", f"sudo pyvfio {args[0]}")
        assert h.driver_of(OTHER) == "e1000" and h.driver_of(CARD) == "vfio-pci"
        # a dry run needs no privilege
        r = subprocess.run(base + ["bind", OTHER, "--dry-run"], capture_output=True, text=True,
                           env=env, cwd=cwd, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        shutil.rmtree(top)


def test_info_shows_regions_and_irqs_when_vfio_opens_the_device(host, monkeypatch, capsys):
    """With VFIO available, info lists what VFIO reports, in these words (the vfio
    layer is replaced by a stand-in; tests/lab/test_cli_lab.py runs the real one)."""
    import pyvfio.vfio
    from pyvfio import uapi
    from pyvfio.backend import IrqInfo

    class Dev:
        num_irqs = 5
        iommu = "type1v2"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def regions(self):
            rw = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE
            return [(0, rw, 0x100, 0), (1, rw | uapi.VFIO_REGION_INFO_FLAG_MMAP, 0x100, 1 << 40),
                    (2, 0, 0, 2 << 40), (7, rw, 0x100, 7 << 40)]

        def irq_info(self, index):
            flags = (uapi.VFIO_IRQ_INFO_EVENTFD | uapi.VFIO_IRQ_INFO_MASKABLE
                     | uapi.VFIO_IRQ_INFO_AUTOMASKED) if index == 0 else uapi.VFIO_IRQ_INFO_EVENTFD
            return IrqInfo(index, flags, 1 if index == 0 else 0)

        def irqs(self):
            return [self.irq_info(i) for i in range(self.num_irqs)]

    os.makedirs(host.p("dev/vfio"))
    host.write("dev/vfio/vfio", "")
    host.write("dev/vfio/4", "")
    host.unlink_driver(THIRD)                 # make group 4 viable
    opened = []
    monkeypatch.setattr(pyvfio.vfio, "open_device",
                        lambda bdf, root="/": opened.append((bdf, root)) or Dev())
    monkeypatch.setenv("PYVFIO_SYSROOT", host.root)
    assert cli.main(["info", CARD]) == 0
    out = capsys.readouterr().out
    assert opened == [(CARD, host.root)]
    assert "\tregion 0 BAR0: size 0x100, offset 0x0, pread/pwrite" in out
    assert "\tregion 1 BAR1: size 0x100, offset 0x10000000000, mmap" in out
    assert "region 2" not in out                             # size 0: absent
    assert "\tregion 7 config: size 0x100" in out
    assert "\tirq 0 INTx: count 1, automasked|eventfd|maskable" in out
    assert "VFIO (opened through type1v2):" in out
    assert cli.main(["info", CARD, "--json", "-"]) == 0
    vfio = json.loads(capsys.readouterr().out)["vfio"]
    assert vfio["available"] and vfio["blockers"] == [] and len(vfio["irqs"]) == 5


def test_info_on_power9_xive_warns_about_the_lazy_disable_stall(tmp_path):
    h = FakeHost(tmp_path)
    h.write("proc/sys/kernel/arch", "ppc64le\n")
    h.add_driver("vfio-pci")
    h.add_device("0001:00:01.0", 0x1234, 0x11E8, 0x00FF00, driver="vfio-pci", group=0, irq=22)
    with open(os.path.join(FIX, "interrupts", "power9-xive.txt")) as f:
        h.write("proc/interrupts", f.read())
    h.write("sys/module/vfio_pci/parameters/nointxmask", "Y\n")
    r = pyvfio("info", "0001:00:01.0", root=h.root)
    assert r.returncode == 0, r.stderr
    assert ("IRQ 22: XIVE-IRQ hwirq 4609 Level, 1 interrupts, held by: "
            "vfio-intx(0001:00:01.0)") in r.stdout
    assert "note: XIVE with controller masking" in r.stdout and "8b9f128947dd" in r.stdout
    assert "Host: Linux 6.12.0-test ppc64le" in r.stdout
    h.write("sys/module/vfio_pci/parameters/nointxmask", "N\n")
    h.add_device("0001:00:02.0", 0x8086, 0x10D3, driver="vfio-pci", group=0, irq=23,
                 caps=[(0xE0, 0x10, b"\x01\x00")])                 # PCIe: DisINTx masking
    r = pyvfio("info", "0001:00:02.0", "--json", "-", root=h.root)
    host = json.loads(r.stdout)["host"]
    assert host["exclusive_needed"] is False and host["notes"] == []


def test_info_leaves_the_devices_own_driver_out_of_the_line_holders(host):
    text = open(host.p("proc/interrupts")).read().replace("10-fasteoi   virtio0",
                                                          "10-fasteoi   eth3, e1000, acpi")
    host.write("proc/interrupts", text)
    host.add_net(OTHER, "eth3", up=False)
    host.write(f"sys/bus/pci/devices/{OTHER}/irq", "10\n")
    data = json.loads(pyvfio("info", OTHER, "--json", "-", root=host.root).stdout)
    assert data["host"]["irq_line"]["actions"] == ["eth3", "e1000", "acpi"]
    assert data["host"]["irq_shared_with"] == ["acpi"]
