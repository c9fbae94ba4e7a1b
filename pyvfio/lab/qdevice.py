"""A card the user brings: `--card qemu:DEVICE[,PROP=V...]`, any PCI device QEMU
models.  QEMU itself says whether it knows the device and whether it is PCI
(`-device help`), and what vendor:device ID it has: a paused machine (-S, no guest
code runs, well under a second) holding just that device, asked over QMP
(query-pci).  The answers are cached in the lab cache per QEMU binary, so asking
again costs nothing."""
import hashlib
import json
import os
import subprocess

from ..errors import UsageError
from ..results import write_json
from .errors import LabError

PREFIX = "qemu:"
PROBE_ID = "pyvfio-probe"
# the smallest machine of each arch with a PCI bus (-S: never started)
PROBE_MACHINE = {"x86_64": ["-machine", "q35"], "ppc64le": ["-machine", "pseries,x-vof=on"]}


def is_qemu_card(card):
    return card.startswith(PREFIX)


def qdev(card):
    """The -device text of a qemu: card."""
    return card[len(PREFIX):]


def check_syntax(card):
    """One line for a spec that cannot be a -device option, before QEMU is asked."""
    text = qdev(card)
    name = text.split(",", 1)[0]
    if not name or any(c.isspace() for c in text) or "=" in name:
        raise UsageError(f"bad card '{card}'", "write qemu:DEVICE[,PROP=VALUE...], "
                         "e.g. --card qemu:sdhci-pci")
    for prop in text.split(",")[1:]:
        key, eq, _value = prop.partition("=")
        if not key or not eq:
            raise UsageError(f"bad property '{prop}' in card '{card}'",
                             "write each one as PROP=VALUE (qemu-system-ARCH -device DEVICE,help lists them)")
        if key in ("bus", "addr", "id"):
            raise UsageError(f"card '{card}' sets '{key}'", "leave bus, addr and id to the lab: it "
                             "places each card where its IOMMU group holds nothing else")


def _run(cmd, stdin=""):
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise LabError("qemu", f"{cmd[0]} did not answer within 60 s") from None


def _cache_file(cache_root, qemu_bin):
    st = os.stat(qemu_bin)
    key = hashlib.sha256(f"{qemu_bin}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root / "qdevices" / f"{os.path.basename(qemu_bin)}-{key}.json"


def _load(path):
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}   # none yet, or unreadable: asked again and rewritten


def _pci_devices(qemu_bin):
    """QEMU's device names on a PCI bus (`-device help`: `name "edu", bus PCI`)."""
    p = _run([qemu_bin, "-device", "help"])
    if p.returncode != 0:
        raise LabError("qemu", f"{qemu_bin} -device help failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    names, other = [], []
    for line in p.stdout.splitlines():
        line = line.strip()
        if not line.startswith('name "'):
            continue
        name = line[6:].split('"', 1)[0]
        (names if ", bus PCI" in line else other).append(name)
    return names, other


def _probe_ids(arch, qemu_bin, text):
    """vendor:device of `-device text` on a paused machine, or QEMU's one-line refusal."""
    cmd = [qemu_bin, *PROBE_MACHINE[arch], "-accel", "tcg", "-nodefaults", "-display", "none",
           "-S", "-qmp", "stdio", "-device", f"{text},id={PROBE_ID}"]
    qmp = '{"execute":"qmp_capabilities"}\n{"execute":"query-pci"}\n{"execute":"quit"}\n'
    p = _run(cmd, qmp)
    for line in p.stdout.splitlines():
        try:
            answer = json.loads(line).get("return")
        except (ValueError, AttributeError):
            continue
        for bus in answer if isinstance(answer, list) else ():
            for dev in bus.get("devices", ()):
                if dev.get("qdev_id") == PROBE_ID:
                    return None, f"{dev['id']['vendor']:04x}:{dev['id']['device']:04x}"
    errors = [ln.split(": ", 2)[-1] for ln in p.stderr.splitlines() if "warning:" not in ln]
    return (errors[-1] if errors else f"QEMU exited {p.returncode} without the device"), None


def resolve(cfg, qemu_bin, cache_root):
    """{card: "vvvv:dddd"} for cfg's qemu: cards; one line for a device QEMU does
    not know, one that is not PCI, or one QEMU refuses (a bad property)."""
    cards = [c for c in cfg.cards if is_qemu_card(c)]
    if not cards:
        return {}
    path = _cache_file(cache_root, qemu_bin)
    known = _load(path)
    ids, changed = {}, False
    for card in cards:
        text = qdev(card)
        name = text.split(",", 1)[0]
        if "devices" not in known:
            known["devices"], known["other"] = _pci_devices(qemu_bin)
            changed = True
        if name not in known["devices"]:
            if name in known["other"]:
                raise UsageError(f"QEMU's '{name}' is not a PCI device ({os.path.basename(qemu_bin)} -device "
                                 "help names its bus)", "bring a device whose line there says 'bus PCI'")
            raise UsageError(f"{os.path.basename(qemu_bin)} has no device '{name}'",
                             f"see the PCI ones: {os.path.basename(qemu_bin)} -device help")
        probed = known.setdefault("ids", {})
        if text not in probed:
            refusal, got = _probe_ids(cfg.arch, qemu_bin, text)
            if refusal:
                raise UsageError(f"QEMU refused --card {card}: {refusal}",
                                 f"see its properties: {os.path.basename(qemu_bin)} -device {name},help")
            probed[text] = got
            changed = True
        ids[card] = probed[text]
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(str(path), known)
    return ids
