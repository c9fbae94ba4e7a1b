"""Binding to vfio-pci and back, on fabricated sysfs trees with a simulated kernel
(tests/fixtures/fakehost.py).  No real device is ever bound."""

import errno
import json
import os
import shutil

import pytest

from fixtures.fakehost import FakeHost, FakeKernel
from pyvfio.errors import PyvfioError, RefusedError, UsageError
from pyvfio.host import bind, inuse

CARD = "0000:02:05.0"
CARD2 = "0000:02:06.0"
BRIDGE = "0000:00:1e.0"


@pytest.fixture
def host(tmp_path):
    h = FakeHost(tmp_path)
    h.add_driver("vfio-pci")
    h.add_device(CARD, 0x10EC, 0x8139, driver="8139too", group=7)
    return h


def bound(h, plan, **kw):
    k = FakeKernel(h, **kw)
    bind.bind(plan, root=h.root, kernel=k)
    return k


def test_bind_writes_override_unbind_probe_and_remembers_the_driver(host):
    plan = bind.plan_bind("02:05.0", root=host.root)
    assert [s.describe() for s in plan.steps] == [
        f"echo vfio-pci > {host.dev(CARD, 'driver_override')}",
        f"echo {CARD} > {host.p('sys/bus/pci/drivers/8139too/unbind')}",
        f"echo {CARD} > {host.p('sys/bus/pci/drivers_probe')}",
    ]
    bound(host, plan)
    assert host.driver_of(CARD) == "vfio-pci"
    state = bind.load_state(host.root)
    assert state[CARD]["driver"] == "8139too" and state[CARD]["group"] == 7


def test_unbind_restores_the_original_driver_and_forgets_it(host):
    bound(host, bind.plan_bind(CARD, root=host.root))
    plan = bind.plan_unbind(CARD, root=host.root)
    assert plan.targets == [{"bdf": CARD, "driver": "vfio-pci", "restore_to": "8139too",
                             "known": True}]
    k = FakeKernel(host)
    assert bind.unbind(plan, root=host.root, kernel=k) == {}
    assert host.driver_of(CARD) == "8139too"
    assert bind.load_state(host.root) == {}
    with open(host.dev(CARD, "driver_override")) as f:
        assert f.read().strip() == "(null)"         # the override is cleared too
    assert (os.path.relpath(host.p("sys/bus/pci/drivers/8139too/bind"), host.root), CARD) in k.writes


def test_dry_run_plans_without_writing(host):
    before = sorted(os.walk(host.root))
    plan = bind.plan_bind(CARD, root=host.root)       # planning alone never writes
    assert plan.steps and sorted(os.walk(host.root)) == before
    assert host.driver_of(CARD) == "8139too"
    assert not os.path.exists(bind.state_path(host.root))


def test_state_file_is_json_and_replaced_atomically(host):
    bound(host, bind.plan_bind(CARD, root=host.root))
    path = bind.state_path(host.root)
    with open(path) as f:
        data = json.load(f)
    assert data["version"] == 1 and CARD in data["devices"]
    # no temp files left; the lock file of the bind/unbind sequence stays
    assert sorted(os.listdir(os.path.dirname(path))) == ["bindings.json", "bindings.lock"]


def test_already_bound_device_is_skipped(host):
    bound(host, bind.plan_bind(CARD, root=host.root))
    plan = bind.plan_bind(CARD, root=host.root)
    assert plan.targets == [] and plan.skipped[0]["why"] == "already bound to vfio-pci"


# --- refusals: the host is using the device -----------------------------------------------

def test_refuses_an_interface_that_is_up_and_routed_unless_forced(host):
    host.add_net(CARD, "eth0", up=True, default_route=True)
    with pytest.raises(RefusedError) as exc:
        bind.plan_bind(CARD, root=host.root)
    assert exc.value.exit_code == 4
    assert "eth0 is up and has 1 route(s), the default route among them" in str(exc.value)
    assert "--force" in str(exc.value) and "\n" not in str(exc.value)
    plan = bind.plan_bind(CARD, force=True, root=host.root)
    assert plan.refusals and plan.targets
    bound(host, plan)
    assert host.driver_of(CARD) == "vfio-pci"


def test_interface_that_is_down_and_unrouted_is_not_in_use(host):
    host.add_net(CARD, "eth1", up=False)
    assert inuse.host_uses(CARD, host.root) == []


def test_refuses_a_mounted_partition(host):
    host.add_block(CARD, "sda", "8:0", partitions=[("sda1", "8:1"), ("sda2", "8:2")])
    assert inuse.host_uses(CARD, host.root) == []
    host.mount("8:2", "/srv")
    assert inuse.host_uses(CARD, host.root) == ["block device sda2 is mounted on /srv"]
    with pytest.raises(RefusedError):
        bind.plan_bind(CARD, root=host.root)


def test_refuses_a_disk_under_a_mounted_lvm_volume(host):
    host.add_block(CARD, "sdb", "8:16", partitions=[("sdb1", "8:17")])
    host.add_holder("sdb1", "dm-0", "253:0")
    host.mount("253:0", "/home")
    assert inuse.host_uses(CARD, host.root) == ["block device dm-0 (on sdb, sdb1) is mounted on /home"]


def test_refuses_a_mounted_nvme_namespace_and_ignores_other_devices_disks(host):
    host.add_block(CARD, "nvme0n1", "259:0", partitions=[("nvme0n1p1", "259:1")], nvme=True)
    host.add_device("0000:03:00.0", driver="nvme")
    host.add_block("0000:03:00.0", "nvme1n1", "259:2", nvme=True)
    host.mount("259:2", "/")                   # someone else's disk
    assert inuse.host_uses(CARD, host.root) == []
    host.mount("259:1", "/data")
    assert inuse.host_uses(CARD, host.root) == ["block device nvme0n1p1 is mounted on /data"]


def test_refuses_swap(host):
    host.add_block(CARD, "sdc", "8:32")
    host.write("proc/swaps", "/dev/sdc\tpartition\t1024\t0\t-2\n", mode="a")
    assert inuse.host_uses(CARD, host.root) == ["block device sdc is in use as swap"]


def test_refuses_the_console(host):
    host.add_tty(CARD, "ttyS0")
    assert inuse.host_uses(CARD, host.root) == ["ttyS0 is the system console"]
    host.write(f"sys/bus/pci/devices/{CARD}/boot_vga", "1\n")
    assert "boot VGA" in inuse.host_uses(CARD, host.root)[1]


def test_a_serial_port_that_is_not_the_console_is_fine(host):
    host.add_tty(CARD, "ttyS4")
    assert inuse.host_uses(CARD, host.root) == []


# --- IOMMU groups: a legacy card behind a PCIe-to-PCI bridge --------------------------------

@pytest.fixture
def behind_bridge(tmp_path):
    h = FakeHost(tmp_path)
    h.add_driver("vfio-pci")
    h.add_device(BRIDGE, 0x8086, 0x244E, 0x060401, driver=None, group=9, header_type=1, pin=0)
    h.add_device(CARD, 0x10EC, 0x8139, driver="8139too", group=9)
    h.add_device(CARD2, 0x8086, 0x100E, driver="e1000", group=9)
    return h


def test_bind_without_group_warns_that_the_group_is_not_viable(behind_bridge):
    plan = bind.plan_bind(CARD, root=behind_bridge.root)
    assert [t["bdf"] for t in plan.targets] == [CARD]
    assert len(plan.notes) == 1 and f"{CARD2} (e1000)" in plan.notes[0]
    assert "--group" in plan.notes[0] and BRIDGE not in plan.notes[0]


def test_pcieport_and_pci_stub_members_do_not_break_viability(tmp_path):
    h = FakeHost(tmp_path)
    h.add_driver("vfio-pci")
    h.add_device("0000:00:1c.0", 0x8086, 0x2448, 0x060400, driver="pcieport", group=9,
                 header_type=1)
    h.add_device(CARD, driver="8139too", group=9)
    h.add_device(CARD2, driver="pci-stub", group=9)
    assert bind.plan_bind(CARD, root=h.root).notes == []


def test_bind_group_binds_every_endpoint_and_skips_the_bridge(behind_bridge):
    h = behind_bridge
    plan = bind.plan_bind(CARD, group=True, root=h.root)
    assert [t["bdf"] for t in plan.targets] == [CARD, CARD2]
    assert [s["bdf"] for s in plan.skipped] == [BRIDGE]
    bound(h, plan)
    assert (h.driver_of(CARD), h.driver_of(CARD2), h.driver_of(BRIDGE)) == ("vfio-pci", "vfio-pci", None)


def test_bind_group_says_a_bridge_on_a_dma_claiming_driver_keeps_the_group_unviable(tmp_path):
    h = FakeHost(tmp_path)
    h.add_driver("vfio-pci")
    h.add_device(BRIDGE, 0x8086, 0x244E, 0x060401, driver="shpchp", group=9, header_type=1, pin=0)
    h.add_device(CARD, driver="8139too", group=9)
    plan = bind.plan_bind(CARD, group=True, root=h.root)
    assert [s["bdf"] for s in plan.skipped] == [BRIDGE]
    assert any(BRIDGE in n and "not viable" in n for n in plan.notes), plan.notes


def test_unbind_of_one_member_restores_the_whole_group(behind_bridge):
    h = behind_bridge
    bound(h, bind.plan_bind(CARD, group=True, root=h.root))
    plan = bind.plan_unbind(CARD2, root=h.root)
    assert [t["bdf"] for t in plan.targets] == [CARD, CARD2]
    assert bind.unbind(plan, root=h.root, kernel=FakeKernel(h)) == {}
    assert (h.driver_of(CARD), h.driver_of(CARD2)) == ("8139too", "e1000")
    assert bind.load_state(h.root) == {}


def test_group_refusal_names_the_busy_member(behind_bridge):
    h = behind_bridge
    h.add_net(CARD2, "eth0", up=True)
    with pytest.raises(RefusedError, match=f"refusing to bind {CARD2}: network interface eth0 is up"):
        bind.plan_bind(CARD, group=True, root=h.root)
    bind.plan_bind(CARD, root=h.root)       # the free card alone is not refused


def test_a_bridge_itself_is_not_bound(behind_bridge):
    with pytest.raises(UsageError, match="is a bridge"):
        bind.plan_bind(BRIDGE, root=behind_bridge.root)


# --- failures -----------------------------------------------------------------------------

def test_vfio_pci_refusing_the_device_gives_it_back(host):
    plan = bind.plan_bind(CARD, root=host.root)
    with pytest.raises(PyvfioError, match="vfio-pci did not take 0000:02:05.0.*given back"):
        bound(host, plan, vfio_refuses=True)
    assert host.driver_of(CARD) == "8139too"
    assert bind.load_state(host.root) == {}


def test_vfio_pci_missing_is_modprobed(tmp_path):
    h = FakeHost(tmp_path)
    h.add_device(CARD, driver="8139too", group=7)
    plan = bind.plan_bind(CARD, root=h.root)
    assert plan.steps[0].describe() == "modprobe vfio-pci"
    k = bound(h, plan)
    assert k.modprobed == ["vfio-pci"] and h.driver_of(CARD) == "vfio-pci"


def test_modprobe_failure_is_one_line_and_changes_nothing(tmp_path):
    h = FakeHost(tmp_path)
    h.add_device(CARD, driver="8139too", group=7)
    with pytest.raises(PyvfioError, match="modprobe vfio-pci` failed: modprobe: FATAL") as exc:
        bound(h, bind.plan_bind(CARD, root=h.root), modprobe_ok=False)
    assert "\n" not in str(exc.value) and h.driver_of(CARD) == "8139too"


def test_without_write_permission_it_says_root_is_needed(host, monkeypatch):
    monkeypatch.setattr(bind.os, "access", lambda path, mode: False)
    with pytest.raises(PyvfioError, match="needs root") as exc:
        bind.bind(bind.plan_bind(CARD, root=host.root), root=host.root, kernel=FakeKernel(host))
    assert "sudo pyvfio bind" in str(exc.value)
    assert host.driver_of(CARD) == "8139too"


def test_unbind_of_a_device_not_on_vfio_pci_is_a_usage_error(host):
    with pytest.raises(UsageError, match="not bound to vfio-pci \\(driver: 8139too\\)"):
        bind.plan_unbind(CARD, root=host.root)


def test_unbind_of_a_device_bound_by_someone_else_lets_the_kernel_choose(tmp_path):
    h = FakeHost(tmp_path)
    h.add_device(CARD, driver="vfio-pci", group=7)
    h.natural[CARD] = "8139too"
    h.add_driver("8139too")
    plan = bind.plan_unbind(CARD, root=h.root)
    assert plan.targets[0]["known"] is False and "unknown" in plan.notes[0]
    assert plan.steps[-1].path.endswith("drivers_probe")
    assert bind.unbind(plan, root=h.root, kernel=FakeKernel(h)) == {}
    assert h.driver_of(CARD) == "8139too"


def test_device_without_a_driver_goes_back_to_none(tmp_path):
    h = FakeHost(tmp_path)
    h.add_driver("vfio-pci")
    h.add_device(CARD, group=7)
    plan = bind.plan_bind(CARD, root=h.root)
    assert len(plan.steps) == 2                        # nothing to unbind
    bound(h, plan)
    plan = bind.plan_unbind(CARD, root=h.root)
    assert not any(s.path.endswith(("drivers_probe", "/bind")) for s in plan.steps)
    bind.unbind(plan, root=h.root, kernel=FakeKernel(h))
    assert h.driver_of(CARD) is None and bind.load_state(h.root) == {}


def test_a_corrupt_state_file_is_a_one_line_error(host):
    os.makedirs(os.path.dirname(bind.state_path(host.root)))
    with open(bind.state_path(host.root), "w") as f:
        f.write("{not json")
    with pytest.raises(PyvfioError, match="cannot read .*bindings.json"):
        bind.load_state(host.root)


def test_unbind_leaves_alone_a_member_someone_already_gave_back(behind_bridge):
    h = behind_bridge
    bound(h, bind.plan_bind(CARD, group=True, root=h.root))
    h.unlink_driver(CARD2)                      # by hand: back to e1000
    h.link_driver(CARD2, "e1000")
    h.write(f"sys/bus/pci/devices/{CARD2}/driver_override", "(null)\n")
    plan = bind.plan_unbind(CARD, root=h.root)
    assert [t["bdf"] for t in plan.targets] == [CARD]
    assert plan.skipped == [{"bdf": CARD2, "why": "now on e1000, left alone"}]
    assert not any("e1000/unbind" in (s.path or "") for s in plan.steps)
    bind.unbind(plan, root=h.root, kernel=FakeKernel(h))
    assert (h.driver_of(CARD), h.driver_of(CARD2)) == ("8139too", "e1000")
    assert bind.load_state(h.root) == {}


def test_unbind_after_a_manual_unbind_from_vfio_pci_restores_the_driver(host):
    bound(host, bind.plan_bind(CARD, root=host.root))
    host.unlink_driver(CARD)                    # echo BDF > drivers/vfio-pci/unbind, by hand
    plan = bind.plan_unbind(CARD, root=host.root)
    assert not any(s.path.endswith("/unbind") for s in plan.steps)
    bind.unbind(plan, root=host.root, kernel=FakeKernel(host))
    assert host.driver_of(CARD) == "8139too"


def test_a_kernel_without_vfio_pci_is_said_at_plan_time(tmp_path):
    h = FakeHost(tmp_path)
    h.add_device(CARD, driver="8139too", group=7)
    os.unlink(h.p("proc/modules"))                  # CONFIG_MODULES=n, not built in
    with pytest.raises(PyvfioError, match="vfio-pci is not available on kernel 6.12.0-test "
                                          r"\(it cannot load modules\)"):
        bind.plan_bind(CARD, root=h.root)


def test_a_failed_unbind_write_clears_the_override_and_keeps_the_driver(host):
    class Stuck(FakeKernel):
        def write(self, path, value):
            if path.endswith("8139too/unbind"):
                self.writes.append((path, value))
                raise OSError(16, "Device or resource busy")
            super().write(path, value)
    k = Stuck(host)
    with pytest.raises(PyvfioError, match=r"Device or resource busy \(EBUSY\); 0000:02:05.0 was given back"):
        bind.bind(bind.plan_bind(CARD, root=host.root), root=host.root, kernel=k)
    assert host.driver_of(CARD) == "8139too"
    with open(host.dev(CARD, "driver_override")) as f:
        assert f.read().strip() == "(null)"
    assert sum(p.endswith("8139too/unbind") for p, _ in k.writes) == 1   # not unbound again
    assert bind.load_state(host.root) == {}


def test_a_read_only_sysfs_is_one_line_with_what_to_do(host):
    class ReadOnly(FakeKernel):
        def write(self, path, value):
            raise OSError(errno.EROFS, "Read-only file system")
    with pytest.raises(PyvfioError, match=r"\(EROFS\); 0000:02:05.0 was given back: /sys is mounted "
                                          "read-only"):
        bind.bind(bind.plan_bind(CARD, root=host.root), root=host.root, kernel=ReadOnly(host))
    assert host.driver_of(CARD) == "8139too"


def test_a_state_folder_that_cannot_be_made_stops_before_any_write(host):
    os.makedirs(host.p("run"), exist_ok=True)
    shutil.rmtree(host.p("run"))
    with open(host.p("run"), "w"):             # /run is a file: the folder cannot be made
        pass
    k = FakeKernel(host)
    with pytest.raises(PyvfioError, match=r"drivers to restore in .*run/pyvfio: Not a directory \(ENOTDIR\)"):
        bind.bind(bind.plan_bind(CARD, root=host.root), root=host.root, kernel=k)
    assert k.writes == [] and host.driver_of(CARD) == "8139too"
