"""The code stays ruff- and mypy-clean (strict), as the project's habits require."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff")
    assert ruff, "ruff is a test dependency (pip install -e '.[test]')"
    out = subprocess.run(
        [ruff, "check", "--quiet", "."], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_is_clean_on_the_package() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "deploy"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
