"""pyvfio's pytest plugin (the `pytest11` entry point): a lab writes its own card
tests in pytest and gets pytest's, labgrid's and JUnit's reporting with them.

The card: `--vfio-bdf BDF`, else `PYVFIO_BDF`, else `VFIO_SELFTESTS_BDF` (the
kernel's vfio selftests' variable).  Fixtures:

    vfio_card   the card bound to vfio-pci, opened through VFIO and its profile
                probed (VfioCard: bdf, device, profile); held under pyvfio's card
                lock; at the end quiesced and closed, its driver as it was
    intx        its INTx armed with the profile's programs (ArmedIntx: intx,
                profile, roundtrip()); disabled at the end
    measure     measure(**RunConfig options) runs the engine on the card and returns
                the result as `pyvfio run --json` writes it; its verdict and round
                trip percentiles become the test's JUnit properties

    @pytest.mark.vfio_card(profile="edu", nointxmask=1, unmask="eventfd", access="rw")

A test skips, with the reason, when no card is named, there is no VFIO here, the
card is not bound to vfio-pci, vfio-pci's nointxmask is not the one the marker
asks for, or the card is not the one the profile drives.

Without a BDF the plugin does nothing (it is loaded in every pytest run where
pyvfio is installed): its import is pytest's and os's alone.
"""

import os
from dataclasses import dataclass

import pytest

ENV = ("PYVFIO_BDF", "VFIO_SELFTESTS_BDF")
MARKER = ("vfio_card(profile=None, nointxmask=None, unmask='ioctl', access='mmap'): the card "
          "profile and vfio-pci nointxmask the test needs (it skips otherwise), and how `intx` unmasks")


def pytest_addoption(parser):
    group = parser.getgroup("pyvfio", "a card through VFIO (pyvfio)")
    group.addoption("--vfio-bdf", metavar="BDF", default=None,
                    help=f"the card the vfio_card fixtures use (else ${ENV[0]}, else ${ENV[1]})")


def pytest_configure(config):
    config.addinivalue_line("markers", MARKER)


def bdf_of(config):
    """The BDF named by the option or the environment, or None."""
    return config.getoption("vfio_bdf", None) or next((os.environ[e] for e in ENV if os.environ.get(e)), None)


@dataclass
class VfioCard:
    bdf: str
    device: object        # pyvfio.vfio.device.Device
    profile: object       # the probed card profile (pyvfio.profiles)
    options: dict         # the marker's


@dataclass
class ArmedIntx:
    intx: object          # pyvfio.intx.DeviceIrq, enabled
    profile: object

    def roundtrip(self, timeout=1.0):
        """The card raises, the trigger must fire within `timeout`, the profile acks
        and the line is unmasked; the card's cause (0: the trigger never came)."""
        self.profile.raise_irq()
        if not self.intx.trigger.wait(timeout):
            self.profile.ack()      # the card left quiet for whoever comes next
            return 0
        cause = self.profile.ack()
        self.intx.eoi()
        return cause


# what each marker argument may be (pyvfio.intx.UNMASK_MODES, profiles.format.ACCESS),
# written here so that loading the plugin imports nothing of pyvfio's
WANT = {"profile": "a profile's name or file", "nointxmask": "0 or 1 (None: either)",
        "unmask": "'ioctl' or 'eventfd'", "access": "'mmap' or 'rw'"}


def _valid(k, v):
    if k == "profile":
        return v is None or isinstance(v, str)
    if k == "nointxmask":
        return v is None or (isinstance(v, int) and v in (0, 1))    # True and False too
    from .vocabulary import VFIO_UNMASK, Access, words   # the plugin imports nothing of pyvfio at load
    return v in words(VFIO_UNMASK if k == "unmask" else Access)


def _options(request):
    marker = request.node.get_closest_marker("vfio_card")
    opts = {"profile": None, "nointxmask": None, "unmask": "ioctl", "access": "mmap"}
    if marker:
        unknown = set(marker.kwargs) - set(opts)
        if unknown or marker.args:
            pytest.fail(f"@pytest.mark.vfio_card takes {', '.join(opts)} as keywords, "
                        f"not {', '.join(sorted(unknown)) or marker.args}", pytrace=False)
        for k, v in marker.kwargs.items():
            if not _valid(k, v):
                pytest.fail(f"@pytest.mark.vfio_card({k}={v!r}): {k} is {WANT[k]}", pytrace=False)
        opts.update(marker.kwargs)
    return opts


def _why_not(bdf, opts):
    """Why this host cannot give the test its card (None: it can)."""
    from .errors import UsageError
    from .host import pci, system

    if not os.path.isdir("/dev/vfio"):
        return "no VFIO here (/dev/vfio missing): modprobe vfio-pci"
    try:
        dev = pci.device(bdf)
    except UsageError as exc:
        return f"no card: {exc}"
    if dev.driver != "vfio-pci":
        return f"{dev.bdf} is bound to {dev.driver or 'no driver'}, not vfio-pci: pyvfio bind {dev.bdf}"
    want = opts["nointxmask"]
    have = system.nointxmask()
    if want is not None and bool(want) != bool(have):
        return (f"the test needs vfio-pci loaded with nointxmask={int(bool(want))}, "
                f"this one has {int(bool(have))}")
    return None


@pytest.fixture
def vfio_card(request):
    opts = _options(request)     # a mistyped marker fails with or without a card
    bdf = bdf_of(request.config)
    if not bdf:
        pytest.skip(f"no card: give --vfio-bdf BDF (or ${ENV[0]} or ${ENV[1]})")
    why = _why_not(bdf, opts)
    if why:
        pytest.skip(why)
    from . import profiles
    from .cardlock import card_lock
    from .errors import UsageError
    from .host.pci import require
    from .vfio import open_device

    bdf = require(bdf)
    with card_lock(bdf), open_device(bdf) as dev:
        try:
            prof = profiles.probe(dev, opts["access"], opts["profile"])
        except UsageError as exc:
            pytest.skip(f"not the card the test is for: {exc}")
        try:
            yield VfioCard(bdf, dev, prof, opts)
        finally:
            prof.quiesce()      # the card quiet, as found; the driver was never touched


@pytest.fixture
def intx(vfio_card):
    from .intx import DeviceIrq

    vfio_card.profile.init()
    with DeviceIrq(vfio_card.device, unmask_mode=vfio_card.options["unmask"]) as i:
        i.check_info()
        i.enable()
        yield ArmedIntx(i, vfio_card.profile)


@pytest.fixture
def measure(vfio_card, request, record_property):
    if "intx" in request.fixturenames:
        pytest.fail("measure arms the card's INTx itself: use it without the intx fixture", pytrace=False)

    def run(**options):
        from .engine import Run, RunConfig
        from .errors import UsageError
        from .results import envelope

        options.setdefault("access", vfio_card.options["access"])
        options.setdefault("unmask", vfio_card.options["unmask"])
        # before the card is touched: a mistyped option is the test's error, in one line
        fields = RunConfig.__dataclass_fields__
        unknown = sorted(set(options) - set(fields))
        if unknown:
            pytest.fail(f"measure() takes {', '.join(fields)} as keywords, not {', '.join(unknown)}",
                        pytrace=False)
        config = RunConfig(**options)
        why = None
        try:
            config.check()
        except UsageError as exc:
            why = f"measure(): {exc}"
        if why:   # outside the except: no "during handling of the above exception"
            pytest.fail(why, pytrace=False)
        r = Run(vfio_card.device, vfio_card.profile, config).execute()
        result = envelope("run", bdf=vfio_card.bdf, card=vfio_card.profile.describe(),
                          modes=dict(config.__dict__), **r.to_json())
        record_property("verdict", result["verdict"])
        rt = result.get("latency", {}).get("round_trip", {})
        for k in ("p50_us", "p99_us", "max_us"):
            if rt.get(k) is not None:
                record_property(f"round_trip_{k}", rt[k])
        return result
    return run
