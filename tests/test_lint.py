"""ruff, with the rules in pyproject.toml's [tool.ruff], finds nothing in the tree's
Python (pyvfio/, tools/, tests/, csrc/).  ruff comes with the `test` extra."""

import subprocess
import sys
from pyvfio.checkout import CHECKOUT

ROOT = CHECKOUT
LINTED = ["pyvfio", "tools", "tests", "csrc"]


def test_ruff_finds_nothing():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise", *LINTED],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "No module named ruff" not in proc.stderr, "ruff is missing: run tools/setup (the test extra has it)"
    assert proc.returncode == 0, f"ruff check {' '.join(LINTED)} (fix with `ruff check --fix`):\n" \
        + proc.stdout + proc.stderr


def test_ruff_reads_the_projects_rules():
    # a rule set that never applies would pass anything: a file with an unused import
    # and a too-long line, checked with the project's config, must be found
    probe = "import os\nX = '" + "x" * 130 + "'\n"
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise",
         "--config", str(ROOT / "pyproject.toml"), "--stdin-filename", "probe.py", "-"],
        cwd=ROOT, input=probe, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "F401" in proc.stdout and "E501" in proc.stdout, proc.stdout
