"""The code stays as ruff wants it (lint and format), like any other failing check."""

import subprocess
import sys

from conftest import PROJECT


def test_ruff_lint_and_format_are_clean():
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=PROJECT, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout
