"""pyvfio on the x86_64 6.12 lab machine, installed from its sdist with pip and run
over SSH as a user types it: doctor, bind (the e1000 refusal and restoration), run
as a non-root user in group vfio, repro BDF --scenario seed (vfio-pci reloaded with
modprobe per nointxmask value, the policy module built from the installed headers),
unbind.  Each test leaves the machine as it found it: nothing bound, vfio-pci's
parameter as it was."""
import json
import pathlib
import re

import pytest
from pyvfio.errors import EXIT

pytestmark = pytest.mark.labhost

EDU, E1000 = 0, 1   # positions in conftest.X86's cards


def sh(m, cmd, user=None, timeout=300):
    return m.run(cmd, timeout=timeout, user=user)


def driver(m, bdf):
    p = sh(m, f"basename $(readlink /sys/bus/pci/devices/{bdf}/driver) 2>/dev/null")
    return p.stdout.strip() or None


def test_installed_with_pip_from_the_sdist(machine_x86):
    m = machine_x86
    p = sh(m, "pyvfio --version; readlink -f $(command -v pyvfio); "
              "ls /opt/pyvfio/venv/lib/python3.11/site-packages/pyvfio/ | grep '^_ffi'; ls /opt/pyvfio/wheels")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("pyvfio 0.1.0\n/opt/pyvfio/venv/bin/pyvfio\n")
    # the extension compiled there, for the machine's arch, into a wheel built there
    assert re.search(r"^_ffi\..*\.so$", p.stdout, re.M)
    assert re.search(r"^pyvfio-0\.1\.0-cp311-cp311-linux_x86_64\.whl$", p.stdout, re.M), p.stdout
    # Debian's cffi backend and psutil, from the system's site packages
    p = sh(m, "/opt/pyvfio/venv/bin/python -c 'import cffi, psutil; print(cffi.__file__, psutil.__file__)'")
    assert p.stdout.count("/usr/lib/python3/dist-packages/") == 2, p.stdout


def test_a_second_deploy_keeps_the_install(machine_x86):
    from pyvfio import deploy

    m = machine_x86
    before = sh(m, "stat -c %Y /opt/pyvfio/venv/bin/pyvfio").stdout
    assert deploy.deploy_machine(m) == "/opt/pyvfio/venv/bin/pyvfio"
    assert sh(m, "stat -c %Y /opt/pyvfio/venv/bin/pyvfio").stdout == before


def test_doctor_reads_the_modules_under_lib_modules(machine_x86):
    m = machine_x86
    edu = m.cards[EDU]["bdf"]
    p = sh(m, f"pyvfio doctor --json - {edu}")
    d = json.loads(p.stdout)
    checks = {c["name"]: c for c in d["checks"]}
    # on a fresh machine vfio-pci is not loaded and the card has no driver
    assert checks["vfio_pci"]["status"] == "fail" and "modprobe vfio-pci" in checks["vfio_pci"]["fix"]
    assert checks["driver"]["status"] == "fail" and p.returncode == 1
    fix = checks["unlazy_fix"]
    assert fix["status"] == "ok"
    assert fix["evidence"].startswith(f"/lib/modules/{m.release}/kernel/drivers/vfio/pci/vfio-pci-core.ko")
    assert "imports irq_modify_status" in fix["evidence"]


def test_e1000_with_its_interface_up_is_refused_then_restored(machine_x86):
    m = machine_x86
    nic = m.cards[E1000]
    assert nic["card"] == "e1000" and nic["driver"] == "e1000"
    bdf = nic["bdf"]
    ifname = sh(m, f"ls /sys/bus/pci/devices/{bdf}/net").stdout.strip()
    assert ifname
    assert sh(m, f"ip link set {ifname} up").returncode == 0
    p = sh(m, f"pyvfio bind {bdf}")
    assert p.returncode == EXIT['REFUSED'], p.stdout + p.stderr
    assert p.stderr.startswith(f"pyvfio: error: refusing to bind {bdf}: network interface {ifname} is up")
    assert len(p.stderr.strip().splitlines()) == 1 and driver(m, bdf) == "e1000"
    try:
        p = sh(m, f"pyvfio bind --force {bdf}")
        assert p.returncode == 0, p.stderr
        assert driver(m, bdf) == "vfio-pci"
        assert sh(m, f"ls /sys/class/net/{ifname}").returncode != 0     # gone with its driver
    finally:
        p = sh(m, f"pyvfio unbind {bdf}")
    assert p.returncode == 0, p.stderr
    assert "vfio-pci -> e1000" in p.stdout
    assert driver(m, bdf) == "e1000"
    assert sh(m, f"ls /sys/bus/pci/devices/{bdf}/net").stdout.strip() == ifname
    assert sh(m, f"ip link set {ifname} up && ip -br link show {ifname}").stdout.split()[1] in ("UP", "UNKNOWN")
    sh(m, f"ip link set {ifname} down")


def test_bind_run_as_a_user_in_group_vfio_unbind(machine_x86):
    m = machine_x86
    edu = m.cards[EDU]["bdf"]
    p = sh(m, f"pyvfio bind {edu}")
    assert p.returncode == 0, p.stderr
    try:
        assert driver(m, edu) == "vfio-pci"
        group = sh(m, f"basename $(readlink /sys/bus/pci/devices/{edu}/iommu_group)").stdout.strip()
        assert sh(m, f"stat -c '%G %a' /dev/vfio/{group}").stdout.split() == ["vfio", "660"]
        p = sh(m, f"cd && pyvfio run {edu} -l 2000 -q --json run.json", user="lab")
        assert p.returncode == 0, p.stderr
        r = json.loads(sh(m, "cat run.json", user="lab").stdout)
        assert r["verdict"] == "ok"
        assert r["counts"]["raised"] == r["counts"]["delivered"] == 2000
        assert r["host_interrupts"] == 2000        # /proc/interrupts agrees, one per delivery
    finally:
        p = sh(m, f"pyvfio unbind {edu}")
    assert p.returncode == 0 and driver(m, edu) is None
    assert sh(m, "cat /run/pyvfio/bindings.json").stdout.count("0000:") == 0


def test_repro_seed_reloads_vfio_pci_with_modprobe(machine_x86):
    m = machine_x86
    edu = m.cards[EDU]["bdf"]
    # the policy module, as docs/usage.md says: from the sdist, against the installed headers
    p = sh(m, "cd /tmp && tar xzf /opt/pyvfio/dist/pyvfio-*.tar.gz && make -C /tmp/pyvfio-*/tools/policy "
              "&& insmod /tmp/pyvfio-*/tools/policy/pyvfio_policy.ko", timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert sh(m, "pyvfio bind " + edu).returncode == 0
    try:
        before = sh(m, "cat /sys/module/vfio_pci/parameters/nointxmask").stdout.strip()
        p = sh(m, f"cd /tmp && pyvfio repro {edu} --scenario seed --json seed.json", timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        assert "reloading vfio-pci with nointxmask=1" in p.stderr
        d = json.loads(sh(m, "cat /tmp/seed.json").stdout)
        cells = d["cells"]
        assert {c["key"]["nointxmask"] for c in cells} == {0, 1}
        assert all(c["match"] for c in cells), [(c["key"], c["verdict"]) for c in cells if not c["match"]]
        assert all(c["counts"]["delivered"] == c["counts"]["raised"] > 0 for c in cells)
        # the lazy policy on the IOAPIC: delivered, a spurious re-trigger per interrupt
        lazy = [c for c in cells if c["key"].get("policy") == "lazy"]
        assert lazy and all(c["verdict"] == "ok" for c in lazy)
        # the original parameter is back, the card still bound
        assert sh(m, "cat /sys/module/vfio_pci/parameters/nointxmask").stdout.strip() == before == "N"
        assert driver(m, edu) == "vfio-pci"
    finally:
        sh(m, f"pyvfio unbind {edu}; rmmod pyvfio_policy")
    assert driver(m, edu) is None


def test_the_machine_cli_lists_reaches_and_copies(machine_x86, tmp_path):
    import subprocess
    import sys

    m = machine_x86

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pyvfio", "lab", "machine", *args],
                              capture_output=True, text=True, timeout=120)

    listed = {x["name"]: x for x in json.loads(cli("list", "--json", "-").stdout)["machines"]}
    assert listed[m.name]["ssh_port"] == m.ssh_port and listed[m.name]["ssh_host"] == "127.0.0.1"
    assert cli("ssh", m.name, "--", "uname", "-r").stdout.strip() == m.release
    assert cli("ssh", m.name, "--user", "lab", "--", "id -nG").stdout.split() == ["lab", "vfio"]
    (tmp_path / "a.txt").write_text("there and back\n")
    assert cli("copy", m.name, str(tmp_path / "a.txt"), ":/tmp/a.txt").returncode == 0
    assert cli("copy", m.name, ":/tmp/a.txt", str(tmp_path / "b.txt")).returncode == 0
    assert (tmp_path / "b.txt").read_text() == "there and back\n"
    p = cli("ssh", "no-such-machine", "--", "true")
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "pyvfio: error: no lab machine named no-such-machine: see pyvfio lab machine list"]
    # sshd is reachable on 127.0.0.1 only: QEMU's forward is bound there
    assert f"hostfwd=tcp:127.0.0.1:{m.ssh_port}-:22" in (pathlib.Path(m.dir) / "qemu.cmd").read_text()
