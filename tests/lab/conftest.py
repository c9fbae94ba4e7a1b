"""In-guest lab tests: they run inside a `pyvfio lab` VM against the real kernel's
/dev/vfio and skip, with the reason, anywhere else.  The run's facts (arch,
kernel, interrupt controller, nointxmask, the bound cards and their BDFs) come
from pyvfio.lab.in_guest.facts(); tests are parametrized over the cards actually bound,
so a VM run has nothing to skip; the shared-line tests are collected only in a boot
with a host card."""
import os

import pytest

from pyvfio.lab import in_guest
from pyvfio.lab.config import FED_CARDS

FACTS = in_guest.facts()
FED = [b for b in FACTS["bound"] if b["card"] in FED_CARDS] if FACTS else []
# The shared-line tests need a host card on a vfio card's line (pyvfio lab --host-card),
# the external-source ones a card the host feeds (pci-serial).
collect_ignore = [] if FACTS and FACTS.get("host_cards") else ["test_shared_line.py"]
# POWER9 XIVE, controller masking, the lab's lazy policy: the line stalls after one
# interrupt, from outside as well (test_external_stall.py instead).
XIVE_LAZY = bool(FACTS) and FACTS["ic"] == "xive" and FACTS["nointxmask"] == 1 \
    and FACTS["policy"] == "lazy"
if FACTS and (not FED or XIVE_LAZY):
    collect_ignore.append("test_external.py")
if FACTS and (not FED or not XIVE_LAZY):
    collect_ignore.append("test_external_stall.py")
# iommufd and DMA run on edu (its DMA engine)
if FACTS and not any(b["card"] == "edu" for b in FACTS["bound"]):
    collect_ignore.append("test_iommufd_dma.py")
# The pytest plugin's user file (test_plugin_user.py) takes its card as a user's CI
# job gives it: PYVFIO_BDF, here the boot's edu.
EDU = next((b["bdf"] for b in FACTS["bound"] if b["card"] == "edu"), None) if FACTS else None
if EDU:
    os.environ.setdefault("PYVFIO_BDF", EDU)
elif FACTS:
    collect_ignore.append("test_plugin_user.py")
# MSI is indifferent to nointxmask and the masking policy (both INTx's): its tests run
# once per controller on 6.12, in the nointxmask=0 boots (CI's budget).
if FACTS and (FACTS["kernel"] != "6.12" or FACTS["nointxmask"] != 0):
    collect_ignore.append("test_msi.py")


def _message_kinds(bound):
    """The MSI kinds the builtin profile of a bound card serves (by the IDs the guest
    read, before any device is opened: the tests then check the kernel agrees)."""
    from pyvfio import profiles
    vendor, device = (int(x, 16) for x in bound["id"].split(":"))
    spec = next((p for p in profiles.available().values() if p.accepts(vendor, device)), None)
    return [k for k in (spec.irqs if spec else ()) if k != "intx"]


# Cards the user brings (--card qemu:DEVICE): only their profile's own checks
# (test_qemu_cards.py); the per-card suite knows each of pyvfio's cards' registers.
BROUGHT = [b for b in FACTS["bound"] if b["card"].startswith("qemu:")] if FACTS else []
if FACTS and not BROUGHT:
    collect_ignore.append("test_qemu_cards.py")
MSI = [dict(b, kinds=_message_kinds(b)) for b in FACTS["bound"] if b not in BROUGHT] if FACTS else []
# Cards in the lab for their MSI-X alone: the per-card suite (`card`) leaves them out
# (e1000e's run of it took ~130 s a boot, and it passed), test_msi.py's msi_card has them.
MESSAGE_ONLY = ("e1000e",)
# --explain's injected-delay checks (10 runs each, 20-50 s) ride in one boot per arch,
# the two the issue names (CI's budget): x86_64 6.12 nointxmask 0, ppc64le XIVE nointxmask 1.
EXPLAIN_BOOTS = {("6.12", "ioapic", 0), ("6.12", "xive", 1)}
if FACTS and (FACTS["kernel"], FACTS["ic"], FACTS["nointxmask"]) not in EXPLAIN_BOOTS:
    collect_ignore.append("test_explain.py")
# The KVM guest is x86_64's (docs/usage.md: why no KVM guest on POWER), and not on 6.12-rt
# under TCG (lab/modules.py prepare_kvm): the boots that load KVM say so in lab.json.
if FACTS and not FACTS.get("kvm"):
    collect_ignore.append("test_kvm.py")


def pytest_collection_modifyitems(config, items):
    if FACTS is not None:
        return
    skip = pytest.mark.skip(reason="not inside a lab VM: run through `pyvfio lab ARCH -- "
                                   "python -m pytest -m lab tests/lab` (see tests/test_lab_vms.py)")
    for item in items:
        if "tests/lab/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)


def pytest_generate_tests(metafunc):
    if "card" in metafunc.fixturenames:
        bound = [b for b in FACTS["bound"] if b["card"] not in MESSAGE_ONLY and b not in BROUGHT] \
            if FACTS else [{"card": "edu", "bdf": "none"}]
        metafunc.parametrize("card", bound, ids=[b["card"] for b in bound])
    if "brought" in metafunc.fixturenames:
        cards = BROUGHT or [{"card": "qemu:sdhci-pci", "bdf": "none", "id": "1b36:0007"}]
        metafunc.parametrize("brought", cards, ids=[b["card"] for b in cards])
    if "msi_card" in metafunc.fixturenames:  # the bound cards that have MSI or MSI-X
        cards = [b for b in MSI if b["kinds"]] or [{"card": "edu", "bdf": "none", "kinds": ["msi"]}]
        metafunc.parametrize("msi_card", cards, ids=[b["card"] for b in cards])
    if "fed_card" in metafunc.fixturenames:
        fed = FED or [{"card": "pci-serial", "bdf": "none"}]
        metafunc.parametrize("fed_card", fed, ids=[b["card"] for b in fed])


@pytest.fixture
def facts():
    return FACTS


@pytest.fixture
def one_card(facts):
    """For pyvfio's own paths, the same for every card (its error checks, its lock, its
    signal handling): one card a boot is enough."""
    return next(b for b in facts["bound"] if b["card"] not in MESSAGE_ONLY)


@pytest.fixture
def device(card):
    from pyvfio.vfio import open_device

    with open_device(card["bdf"]) as dev:
        yield dev
