"""The code stays as ruff wants it (lint and format) and as mypy checks it, like any
other failing check."""

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


def test_mypy_finds_no_type_error_in_the_package():
    checked = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=PROJECT, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
