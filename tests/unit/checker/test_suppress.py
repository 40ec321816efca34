"""Suppressions: a reviewed file with reason and expiry (expired ones report again), or inline."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from deploy.checker import suppress
from deploy.checker.context import Context
from deploy.checker.registry import load_checks, select
from deploy.checker.results import Report
from deploy.checker.runner import run
from deploy.config.loader import ConfigError
from tests.unit.checks.support import imported_by_app, project

pytestmark = pytest.mark.unit

UNPINNED = {"requirements.txt": "Flask>=3\nFlask-WTF==1.3.0\ngunicorn==23.0.0\n"}
TODAY = date(2026, 6, 1)


def run_with(root: Path, text: str | None) -> Report:
    suppressions = suppress.parse(text) if text else []
    return run(
        select(load_checks(plugins=False), ["DEP002", "SEC009"]),
        Context(root=root),
        suppressions,
        today=TODAY,
    )


def test_file_suppression_with_reason_and_future_expiry(tmp_path: Path) -> None:
    root = project(tmp_path, UNPINNED)
    report = run_with(
        root, "suppressions:\n  - id: DEP002\n    reason: pinned by the lock in CI\n    expires: 2026-12-31\n"
    )
    assert report.active == []
    assert [r.suppressed_by.reason for r in report.suppressed if r.suppressed_by] == [
        "pinned by the lock in CI"
    ]


def test_expired_suppression_reports_again_with_a_note(tmp_path: Path) -> None:
    root = project(tmp_path, UNPINNED)
    report = run_with(
        root, "suppressions:\n  - id: dep002\n    reason: pinned by the lock in CI\n    expires: 2026-05-31\n"
    )
    assert [r.check.id for r in report.active] == ["DEP002"]
    assert report.active[0].note == (
        "suppression expired on 2026-05-31 (deploy-check.yaml:2): pinned by the lock in CI"
    )


def test_path_glob_limits_a_suppression(tmp_path: Path) -> None:
    root = project(tmp_path, UNPINNED)
    report = run_with(
        root,
        "suppressions:\n  - id: DEP002\n    path: other/*.txt\n    reason: not this one\n    "
        "expires: 2026-12-31\n",
    )
    assert [r.check.id for r in report.active] == ["DEP002"]
    assert report.notes == ["deploy-check.yaml:2: suppression of DEP002 matched nothing; remove it"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "suppressions:\n  - id: DEP002\n    expires: 2026-12-31\n",
            "deploy-check.yaml:2: suppressions[0].reason: every suppression needs a reason",
        ),
        (
            "suppressions:\n  - id: DEP002\n    reason: because\n",
            "suppressions[0].expires: expected a date such as 2026-12-31, got None",
        ),
        (
            "suppressions:\n  - id: DEP002\n    reason: because\n    expires: soon\n",
            "deploy-check.yaml:4: suppressions[0].expires: expected a date",
        ),
        (
            "suppressions:\n  - id: DEP002\n    reason: because\n    expires: 2026-12-31\n    until: x\n",
            "deploy-check.yaml:5: suppressions[0].until: unknown key",
        ),
        ("ignore: [DEP002]\n", "expected a mapping with one key, suppressions:"),
    ],
)
def test_bad_suppression_file_names_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        suppress.parse(text)
    assert message in str(error.value)


def test_inline_suppression_with_reason(tmp_path: Path) -> None:
    code = (
        "def find(db, table):\n"
        "    # deploy: ignore[SEC009] table comes from a fixed allow-list\n"
        "    return db.execute(f'SELECT * FROM {table} WHERE 1 = 1')\n"
    )
    root = project(tmp_path, imported_by_app({"db.py": code}))
    report = run_with(root, None)
    assert report.active == []
    assert report.suppressed[0].suppressed_by is not None
    assert report.suppressed[0].suppressed_by.reason == "table comes from a fixed allow-list"


def test_inline_suppression_on_the_same_line(tmp_path: Path) -> None:
    code = (
        "def find(db, t):\n    return db.execute(f'SELECT * FROM {t} WHERE 1 = 1')  # deploy: "
        "ignore[SEC009] fixed list\n"
    )
    root = project(tmp_path, imported_by_app({"db.py": code}))
    assert run_with(root, None).active == []


def test_inline_suppression_without_reason_is_not_honoured(tmp_path: Path) -> None:
    code = (
        "def find(db, t):\n    return db.execute(f'SELECT * FROM {t} WHERE 1 = 1')  # deploy: "
        "ignore[SEC009]\n"
    )
    root = project(tmp_path, imported_by_app({"db.py": code}))
    report = run_with(root, None)
    assert [r.check.id for r in report.active] == ["SEC009"]
    assert report.active[0].note is not None and "without a reason" in report.active[0].note


def test_inline_suppression_of_another_check_does_not_hide_this_one(tmp_path: Path) -> None:
    code = (
        "def find(db, t):\n    return db.execute(f'SELECT * FROM {t} WHERE 1 = 1')  # deploy: "
        "ignore[SEC001] wrong id\n"
    )
    root = project(tmp_path, imported_by_app({"db.py": code}))
    assert [r.check.id for r in run_with(root, None).active] == ["SEC009"]


def test_requirements_lines_take_inline_suppressions(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "requirements.txt": "Flask>=3  # deploy: ignore[DEP002] tracked by renovate\n"
            "gunicorn==23.0.0\nflask-wtf==1.3.0\n"
        },
    )
    assert run_with(root, None).active == []


def test_suppression_of_a_check_that_did_not_run_is_not_called_unused(tmp_path: Path) -> None:
    root = project(tmp_path)
    report = run_with(
        root, "suppressions:\n  - id: SEC016\n    reason: checked by hand\n    expires: 2026-12-31\n"
    )
    assert report.notes == []


def test_a_file_that_does_not_parse_is_named(tmp_path: Path) -> None:
    root = project(tmp_path, {"broken.py": "def f(:\n    pass\n"})
    report = run_with(root, None)
    assert report.notes == [
        "broken.py: cannot be parsed (line 1: invalid syntax); the source checks could not read it"
    ]
