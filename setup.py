# cffi's setuptools hook lives here: pyproject.toml has no key for cffi_modules.
# data_files: the shell completions and the man page (generated from the parser by
# `python -m pyvfio.cli.shellfiles`), under the install prefix's share/, where
# bash-completion, zsh and man look for them.
from setuptools import setup

SHARE = {"share/bash-completion/completions": "pyvfio", "share/zsh/site-functions": "_pyvfio",
         "share/man/man1": "pyvfio.1"}

setup(cffi_modules=["csrc/build.py:ffibuilder"],
      data_files=[(folder, [f"{folder}/{name}"]) for folder, name in SHARE.items()])
