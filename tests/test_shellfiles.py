"""The shell completions and the man page (share/, installed by pip under its
prefix's share/): generated from the parser, so every subcommand and option is in
them, and share/ is what the parser makes now."""

import argparse
import pathlib
import re

import pytest

from pyvfio.cli import dispatch, shellfiles

pytest.importorskip("shtab")
pytest.importorskip("argparse_manpage")

ROOT = pathlib.Path(shellfiles.ROOT)


def _options(parser):
    out = set()
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                out |= _options(sub)
        elif a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction):
            out.update(a.option_strings)
    return out


@pytest.fixture(scope="module")
def parser():
    return dispatch.full_parser()


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_names_every_subcommand_and_option(parser, shell):
    text = shellfiles.render(shell, parser)
    for name in dispatch.COMMANDS:
        assert re.search(rf"\b{name}\b", text), f"{shell} completion lacks the subcommand {name}"
    for sub in ("profile list", "profile check", "fleet run", "fleet status", "fleet release"):
        assert sub.split()[1] in text
    missing = [o for o in _options(parser) if o not in text]
    assert not missing, f"{shell} completion lacks {missing}"


def test_man_page_lists_every_option(parser):
    text = re.sub(r"\\f[BIR]|\\[,/]", "", shellfiles.render("man", parser)).replace("\\-", "-")
    missing = [o for o in sorted(_options(parser)) if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
    assert not missing, f"the man page lacks {missing}"
    assert all(f"'pyvfio {name}'" in text for name in dispatch.COMMANDS)


def _body(kind, text):
    # the man page's .TH line carries the day it was made
    return [line for line in text.splitlines() if not (kind == "man" and line.startswith(".TH "))]


@pytest.mark.parametrize("kind", sorted(shellfiles.FILES))
def test_share_is_current(parser, kind):
    shipped = (ROOT / shellfiles.FILES[kind]).read_text()
    assert _body(kind, shipped) == _body(kind, shellfiles.render(kind, parser)), (
        f"{shellfiles.FILES[kind]} is not what the parser makes: run python -m pyvfio.cli.shellfiles")


def test_pip_installs_share_where_the_tools_look():
    setup = (ROOT / "setup.py").read_text()
    for path in shellfiles.FILES.values():
        folder, name = path.rsplit("/", 1)
        assert f'"{folder}": "{name}"' in setup, path
    assert "graft share" in (ROOT / "MANIFEST.in").read_text()


def test_version():
    import subprocess
    import sys

    from pyvfio import __version__
    p = subprocess.run([sys.executable, "-m", "pyvfio", "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == f"pyvfio {__version__}\n"
