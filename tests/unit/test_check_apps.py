"""Realistic example apps with known defects get exactly the findings they should, and no others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "fixtures" / "apps"
TOOLS = "RND004,RND005,RND006,RND007,RND008,DEP007"


def findings(app: Path, *args: str) -> tuple[int, dict[str, list[str]]]:
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "check", str(app), "--format", "json", "--ignore", TOOLS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    result: dict[str, list[str]] = {}
    for f in json.loads(out.stdout)["findings"]:
        result.setdefault(f["id"], []).append(f"{f['file']}:{f['line'] or ''}" if f["file"] else "(project)")
    return out.returncode, result


@pytest.mark.parametrize("name", sorted(p.name for p in APPS.iterdir() if (p / "expected.json").is_file()))
def test_example_app_gets_exactly_its_findings(name: str) -> None:
    expected = json.loads((APPS / name / "expected.json").read_text())["findings"]
    code, got = findings(APPS / name, "--fail-on", "low")
    assert got == expected
    assert code == (1 if expected else 0)


def test_there_are_example_apps_of_every_kind() -> None:
    assert {"factory", "single", "forms", "sqla", "clean"} <= {p.name for p in APPS.iterdir()}


def test_the_example_playbook_app_has_nothing_at_or_above_medium() -> None:
    code, got = findings(REPO / "playbooks" / "flaskr")
    assert code == 0, got
