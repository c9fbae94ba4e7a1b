"""The pytest plugin on the host (pyvfio/pytest_plugin.py): loaded in every pytest
run through its entry point, so it must import nothing of pyvfio's and do nothing
without a card; its tests skip with the reason when there is no card or no VFIO.
Its fixtures on a real card: tests/lab/test_plugin_user.py, in the lab's batches."""

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from pyvfio import pytest_plugin

pytest_plugins = ["pytester"]

USER_TEST = """
import pytest

@pytest.mark.vfio_card(profile="edu")
def test_card(vfio_card):
    assert vfio_card.profile.name == "edu"

def test_intx(intx):
    assert intx.roundtrip()

def test_measure(measure):
    assert measure(loops=10, engine="c")["verdict"] == "ok"

def test_without_a_card():
    pass
"""


def run(pytester, *args):
    """pytest in this process (fast; labgrid's plugin starts its logger once a process)."""
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:labgrid", *args)


@pytest.fixture
def no_card_env(monkeypatch):
    for e in pytest_plugin.ENV:
        monkeypatch.delenv(e, raising=False)


def test_the_entry_point_names_the_plugin():
    eps = {e.name: e.value for e in entry_points(group="pytest11")}
    assert eps.get("pyvfio.pytest_plugin") == "pyvfio.pytest_plugin"


def test_importing_it_imports_nothing_of_pyvfio():
    code = ("import sys; import pyvfio.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m.startswith('pyvfio')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['pyvfio', 'pyvfio.pytest_plugin']"


def test_without_a_card_every_card_test_skips_with_the_reason(pytester, no_card_env):
    pytester.makepyfile(USER_TEST)
    r = run(pytester, "-rs")
    r.assert_outcomes(passed=1, skipped=3)
    assert r.stdout.str().count("no card: give --vfio-bdf BDF (or $PYVFIO_BDF or $VFIO_SELFTESTS_BDF)") == 3


@pytest.mark.parametrize("how", ["option", "PYVFIO_BDF", "VFIO_SELFTESTS_BDF"])
def test_a_card_named_that_vfio_cannot_give_skips_with_why(pytester, no_card_env, monkeypatch, how):
    """ff:1f.7 is on no host: with /dev/vfio missing the reason is VFIO's, else the card's."""
    pytester.makepyfile(USER_TEST)
    args = ["-rs"]
    if how == "option":
        args += ["--vfio-bdf", "0000:ff:1f.7"]
    else:
        monkeypatch.setenv(how, "0000:ff:1f.7")
    r = run(pytester, *args)
    r.assert_outcomes(passed=1, skipped=3)
    why = ("no VFIO here (/dev/vfio missing): modprobe vfio-pci" if not os.path.isdir("/dev/vfio")
           else "no card: no PCI device 0000:ff:1f.7 on this host")
    assert r.stdout.str().count(why) == 3, r.stdout.str()


def test_the_option_comes_before_the_environment(pytester, monkeypatch):
    monkeypatch.setenv("PYVFIO_BDF", "0000:00:01.0")
    monkeypatch.setenv("VFIO_SELFTESTS_BDF", "0000:00:02.0")
    pytester.makepyfile("""
from pyvfio.pytest_plugin import bdf_of
def test_which(request):
    assert bdf_of(request.config) == "0000:00:03.0"
""")
    run(pytester, "--vfio-bdf", "0000:00:03.0",
                       "test_the_option_comes_before_the_environment.py").assert_outcomes(passed=1)
    monkeypatch.delenv("PYVFIO_BDF")
    pytester.makepyfile(test_env="""
from pyvfio.pytest_plugin import bdf_of
def test_selftests_variable(request):
    assert bdf_of(request.config) == "0000:00:02.0"
""")
    run(pytester, "test_env.py").assert_outcomes(passed=1)


def test_a_mistyped_marker_fails_in_one_line(pytester, no_card_env):
    pytester.makepyfile("""
import pytest
@pytest.mark.vfio_card(profil="edu")
def test_typo(vfio_card):
    pass
""")
    r = run(pytester)
    r.assert_outcomes(errors=1)
    assert "@pytest.mark.vfio_card takes profile, nointxmask, unmask, access as keywords, not profil" \
        in r.stdout.str()


@pytest.mark.parametrize("marker, message", [
    ('unmask="evenfd"', "@pytest.mark.vfio_card(unmask='evenfd'): unmask is 'ioctl' or 'eventfd'"),
    ('nointxmask="yes"', "@pytest.mark.vfio_card(nointxmask='yes'): nointxmask is 0 or 1 (None: either)"),
])
def test_a_marker_value_it_cannot_take_is_one_error(pytester, no_card_env, marker, message):
    """Caught before the card is looked for: the same error with or without one."""
    pytester.makepyfile(f"""
import pytest
@pytest.mark.vfio_card({marker})
def test_typo(vfio_card):
    pass
""")
    r = run(pytester)
    r.assert_outcomes(errors=1)
    out = r.stdout.str()
    assert message in out and "Traceback" not in out and "def _options" not in out, out


MEASURE_TEST = """
import types
import pytest

@pytest.fixture
def vfio_card():   # a card that is never touched: measure must refuse before it runs
    return types.SimpleNamespace(bdf="0000:00:04.0", device=None, profile=None,
                                 options={"access": "mmap", "unmask": "ioctl"})

def test_unknown_option(measure):
    measure(loops=10, engin="c")

def test_bad_value(measure):
    measure(loops=0)
"""


def test_measure_refuses_a_mistyped_option_in_one_line(pytester, no_card_env):
    pytester.makepyfile(MEASURE_TEST)
    r = run(pytester)
    r.assert_outcomes(failed=2)
    out = r.stdout.str()
    assert "measure() takes loops, interval_us" in out and "as keywords, not engin" in out, out
    assert "measure(): loop count 0 is out of range" in out, out
    assert "unexpected keyword" not in out and "During handling" not in out, out
