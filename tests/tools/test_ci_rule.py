"""A CI run with one real tool removed fails instead of skipping (issue 20), run for real: pytest on a
real-tool test with nginx taken off PATH, as CI runs it and as a developer does (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import INSTALL

pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]


def test_a_ci_run_of_the_nginx_tests_without_nginx_fails_instead_of_skipping(tmp_path: Path) -> None:
    """The real run: tests/tools/test_nginx.py with nginx removed from PATH (only Python's own folder
    left on it), once as CI does and once as a developer does."""
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "CI": "true"}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-n",  # in this process, whatever PYTEST_ADDOPTS says: under xdist -x ends a run with exit 2
        "0",
        "-q",
        "-x",
        "tests/tools/test_nginx.py::test_http_only_site_before_the_certificate_exists",
    ]
    ci = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ci.returncode == 1, ci.stdout[-2000:]
    assert "CI=true: a missing tool fails the run instead of skipping" in ci.stdout
    assert "needs nginx" in ci.stdout and INSTALL["nginx"] in ci.stdout
    local = subprocess.run(argv, cwd=ROOT, env={**env, "CI": ""}, capture_output=True, text=True, timeout=300)
    assert local.returncode == 0 and " skipped" in local.stdout and " failed" not in local.stdout, (
        local.stdout[-2000:]
    )
