"""Shell completion (bash, zsh) and the man page, generated from the parser by shtab
and argparse-manpage, into share/ of the checkout, which pip installs under its
prefix's share/ (setup.py's data_files), where bash-completion, zsh and man look.

    python -m pyvfio.cli.shellfiles        # after changing an option (pip install '.[test]')

tests/test_shellfiles.py fails when share/ is not what the parser makes."""

import os
import sys

from .. import __version__
from ..results import write_atomic
from ..checkout import CHECKOUT

# what each generated file is, where it goes under a prefix
FILES = {
    "bash": "share/bash-completion/completions/pyvfio",
    "zsh": "share/zsh/site-functions/_pyvfio",
    "man": "share/man/man1/pyvfio.1",
}
ROOT = str(CHECKOUT)


def render(kind, parser=None):
    """The text of FILES[kind] for the parser (default: every command's)."""
    from .dispatch import full_parser
    parser = parser or full_parser()
    if kind == "man":
        from argparse_manpage.manpage import Manpage
        page = Manpage(parser, {"project_name": "pyvfio", "version": __version__,
                                "manual_title": "pyvfio manual", "date": "",
                                "description": "userspace VFIO INTx passthrough for legacy PCI cards"})
        return str(page)
    import shtab
    return shtab.complete(parser, shell=kind)


def main():
    for kind, path in FILES.items():
        target = os.path.join(ROOT, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        write_atomic(target, render(kind), "write the generated file to")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
