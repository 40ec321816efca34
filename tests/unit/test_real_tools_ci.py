"""Under CI=true a real-tool test whose tool is missing fails (with the install line); locally it is
skipped with that line (issue 20: "a CI run with one real tool removed fails instead of skipping")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import INSTALL, require_tools

pytestmark = pytest.mark.unit


def test_a_missing_tool_fails_under_ci_with_its_install_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no tool at all
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_tools("nginx")
    assert str(failed.value) == (
        f"needs nginx: {INSTALL['nginx']} (CI=true: a missing tool fails the run instead of skipping)"
    )
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_tools("nginx")
    assert str(skipped.value) == f"needs nginx: {INSTALL['nginx']}"
