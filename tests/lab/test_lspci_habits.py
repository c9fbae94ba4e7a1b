"""`pyvfio list` and `info` against the guest's own `lspci -vv -nn`, field by field,
on every card the boot bound: the head (class, names, IDs, revision), Subsystem,
Control, Status, Latency, the pin and IRQ, each Region, each capability (and the
lines we decode under PM, MSI and MSI-X), the driver, the JSON's hex IDs, the
-s/-d selections, lspci's error words for a bad selector, and the -t tree."""

import json
import re
import subprocess
import sys

import pytest

from pyvfio.lab import in_guest

pytestmark = pytest.mark.lab

FACTS = in_guest.facts()
CARDS = FACTS["bound"] if FACTS else [{"card": "edu", "bdf": "none"}]


def run(*argv):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=180)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def pyvfio(*args):
    return run(sys.executable, "-m", "pyvfio", *args)


def lspci(*args):
    p = run("lspci", *args)
    assert p.returncode == 0, p.stderr
    return p.stdout


def fields(text, name):
    return re.findall(rf"^\t{re.escape(name)}: (.*)$", text, re.M)


def cap_blocks(text):
    """[(offset, header, [lines under it])] of `lspci -vv`'s Capabilities."""
    return [(int(off, 16), head, [ln[2:] for ln in body.splitlines()])
            for off, head, body in re.findall(
                r"^\tCapabilities: \[([0-9a-f]+)\] (.*)\n((?:\t\t.*\n)*)", text, re.M)]


@pytest.fixture(scope="module")
def listing():
    p = pyvfio("list", "--all", "--json", "-")
    assert p.returncode == 0, p.stderr
    return {d["bdf"]: d for d in json.loads(p.stdout)["devices"]}


@pytest.mark.parametrize("lab_card", CARDS, ids=[c["card"] for c in CARDS])
def test_info_and_list_say_what_lspci_vv_says(lab_card, listing):
    bdf = lab_card["bdf"]
    # info enables an idle vfio-pci card a moment to learn its IRQ (host/irq_route.py),
    # and the kernel's first enable routes sysfs `irq` (firmware line 10 -> GSI 20 on
    # q35): a card no test enabled yet (e1000e, a brought card) reads otherwise before
    # and after.  One info first, so lspci and ours read the card in one state.
    assert pyvfio("info", bdf).returncode == 0
    want = lspci("-D", "-vv", "-nn", "-s", bdf)
    text = pyvfio("info", bdf)
    assert text.returncode == 0, text.stderr
    ours = text.stdout
    info = json.loads(pyvfio("info", bdf, "--json", "-").stdout)
    # the head: lspci -vv adds the prog-if, which we leave out
    head = re.sub(r" \(prog-if [^)]*\)$", "", want.splitlines()[0])
    assert ours.splitlines()[0] == head
    line = pyvfio("list", "-s", bdf).stdout.strip()
    assert line.split(" DisINTx")[0] == head
    for name in ("Subsystem", "Control", "Status"):
        assert fields(ours, name) == fields(want, name), name
    # ours adds the driver_override, if any, in brackets, and says "none" where lspci is silent
    assert [f.split(" (")[0] for f in fields(ours, "Kernel driver in use") if f != "none"] == \
        fields(want, "Kernel driver in use")
    assert re.findall(r"^\t(Latency: .*)$", ours, re.M) == re.findall(r"^\t(Latency: .*)$", want, re.M)
    # lspci's Interrupt line is sysfs `irq` (host/irq_route.py: ours may say more)
    irq = fields(want, "Interrupt")
    d = info["device"]
    if irq:
        pin, routed = re.fullmatch(r"pin ([A-D]) routed to IRQ (\d+)", irq[0]).groups()
        assert (dev_pin(d), d["irq"]) == (pin, int(routed))
    else:
        assert d["interrupt_pin"] == 0
    assert re.findall(r"^\tRegion (\d): (.*)$", ours, re.M) == re.findall(
        r"^\tRegion (\d): (.*)$", want, re.M)
    theirs, mine = cap_blocks(want), cap_blocks(ours)
    assert [c[0] for c in mine] == [c[0] for c in theirs]
    for (off, t_head, t_lines), (_, m_head, m_lines) in zip(theirs, mine):
        # lspci says more after a comma (Express's interrupt message number) or a colon
        assert t_head.startswith(m_head), (off, t_head, m_head)
        assert t_lines[:len(m_lines)] == m_lines, (off, t_lines, m_lines)
    assert any(c[2] for c in mine) or not any(h.startswith(("MSI", "Power")) for _, h, _ in theirs)
    # the hex IDs, as lspci -n prints them
    n = lspci("-D", "-n", "-s", bdf).split()
    cls, ids = n[1].rstrip(":"), n[2]
    hx = listing[bdf]["hex"]
    assert (hx["class"], f"{hx['vendor']}:{hx['device']}") == (cls, ids)
    assert (hx["vendor"], hx["device"]) == (f"{d['vendor']:04x}", f"{d['device']:04x}")
    sub = re.search(r"\[([0-9a-f]{4}):([0-9a-f]{4})\]$", (fields(want, "Subsystem") or [""])[0])
    if sub:
        assert (hx["subsystem_vendor"], hx["subsystem_device"]) == sub.groups()


def dev_pin(d):
    return "ABCD"[d["interrupt_pin"] - 1] if d["interrupt_pin"] else None


def selected(args):
    p = pyvfio("list", *args, "--json", "-")
    assert p.returncode == 0, p.stderr
    return sorted(d["bdf"] for d in json.loads(p.stdout)["devices"])


def lspci_selected(args):
    return sorted(line.split()[0] for line in lspci("-D", "-n", *args).splitlines())


def test_s_and_d_select_what_lspci_selects(listing):
    """The syntax is the cards' common lot: one card's selectors (a process costs
    seconds in a TCG guest)."""
    bdf = CARDS[0]["bdf"]
    domain, bus, rest = bdf.split(":")
    hx = listing[bdf]["hex"]
    for args in (["-s", bdf], ["-s", f"{bus}:"], ["-s", f".{rest.split('.')[1]}"],
                 ["-d", f"{hx['vendor']}:"], ["-d", f":{hx['device']}"],
                 ["-d", f"{hx['vendor']}:{hx['device']}:{hx['class'][:2]}xx"]):
        assert selected(args) == lspci_selected(args), args


def test_a_bad_selector_is_lspcis_error_in_one_line():
    for args, words in ((["-s", "1f.8"], "Invalid function number"),
                        (["-s", "100:"], "Invalid bus number"),
                        (["-d", "8086"], "At least two fields must be given")):
        p = pyvfio("list", *args)
        assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
        assert f"{args[0]}: {words}" in p.stderr
        assert words in run("lspci", *args).stderr


def test_the_tree_is_lspcis():
    p = pyvfio("list", "-t")
    assert p.returncode == 0, p.stderr
    assert p.stdout == lspci("-t")
