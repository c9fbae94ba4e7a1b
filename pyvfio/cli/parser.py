"""The argument parser every pyvfio command line uses: a usage error is one line
("pyvfio run: argument -l/--loops: ...: see pyvfio run --help") and exit 2, raised
as a UsageError for the entry point to print, instead of argparse's usage block."""

import argparse

from ..errors import UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}", f"see {self.prog} --help")
