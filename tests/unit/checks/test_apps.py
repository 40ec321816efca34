"""Realistic example apps with known defects get exactly the findings they should, and no others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
APPS = REPO / "tests" / "fixtures" / "apps"
TOOLS = "RND004,RND005,RND006,RND007,RND008,DEP007"


#: (check id, file, line) of one finding; file and line are None for a finding about the project.
Found = tuple[str, str | None, int | None]


def findings(app: Path, *args: str) -> tuple[int, list[Found]]:
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "check", str(app), "--format", "json", "--ignore", TOOLS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    found = [(f["id"], f["file"], f["line"]) for f in json.loads(out.stdout)["findings"]]
    return out.returncode, sorted(found, key=str)


def labels(app: Path) -> list[Found]:
    """The app's hand-reviewed findings; a missing or malformed expected.json fails, never drops out."""
    path = app / "expected.json"
    assert path.is_file(), f"{path} is missing: every example app states the findings it must get"
    doc = json.loads(path.read_text(encoding="utf-8"))
    labelled: list[Found] = []
    for item in doc["findings"]:
        assert set(item) == {"id", "file", "line", "why"}, item
        assert isinstance(item["why"], str) and item["why"].strip(), f"{item['id']}: say why it is true"
        labelled.append((item["id"], item["file"], item["line"]))
    return sorted(labelled, key=str)


# Every folder under fixtures/apps is an example app, with or without its expected.json.
@pytest.mark.parametrize("name", sorted(p.name for p in APPS.iterdir() if p.is_dir()))
def test_example_app_gets_exactly_its_findings(name: str) -> None:
    expected = labels(APPS / name)
    code, got = findings(APPS / name, "--fail-on", "low")
    missing = [f for f in expected if f not in got]
    unexpected = [f for f in got if f not in expected]
    assert not missing and not unexpected, f"missing: {missing}; not labelled: {unexpected}"
    assert got == expected  # and no finding twice
    assert code == (1 if expected else 0)


def test_there_are_example_apps_of_every_kind() -> None:
    assert {"factory", "single", "forms", "sqla", "clean"} <= {p.name for p in APPS.iterdir()}


def test_the_example_playbook_app_has_nothing_at_or_above_medium() -> None:
    code, got = findings(REPO / "playbooks" / "flaskr")
    assert code == 0, got
