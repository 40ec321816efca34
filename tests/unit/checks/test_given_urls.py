"""An SQLite or local fallback in the code never applies when deploy.yaml gives the variable it falls back
from: through app.env, app.secrets or `services:` (which sets DATABASE_URL and REDIS_URL itself), and
however the code reshapes the variable before the fallback (`.replace("postgres://", "postgresql://")`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.checks.support import CONFIG, check, found, imported_by_app, project

pytestmark = pytest.mark.unit

TWO_WORKERS = (
    CONFIG.replace("  domains: [demo.example.com]\n", "  domains: [demo.example.com]\n  hosts: [web1]\n")
    + "gunicorn: {workers: 3}\n"
)

#: A Heroku-style URL fix-up before the SQLite fallback, the fallback built at run time.
RESHAPED = """\
import os

basedir = os.path.abspath(os.path.dirname(__file__))


class Config:
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", "").replace(
        "postgres://", "postgresql://") or "sqlite:///" + os.path.join(basedir, "app.db")
"""

PLAIN = """\
import os

SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or "sqlite:///app.db"
"""

IDS = ["PIT005", "XL003"]


def _findings(tmp_path: Path, source: str, config: str) -> dict[str, list[str]]:
    root = project(tmp_path, imported_by_app({"settings.py": source}))
    (root / "deploy.yaml").write_text(config, encoding="utf-8")
    report = check(root, IDS, config=config)
    assert not report.skipped, report.skipped
    return found(report)


GIVEN = [
    TWO_WORKERS.replace("secrets: [SECRET_KEY]", "secrets: [SECRET_KEY, DATABASE_URL]"),
    TWO_WORKERS + "services:\n  postgres: {}\n",
    TWO_WORKERS + "services:\n  postgres: {env: DB_URL}\n",
]


@pytest.mark.parametrize("source", [RESHAPED, PLAIN], ids=["reshaped", "plain"])
def test_sqlite_is_reported_when_nothing_gives_the_variable(tmp_path: Path, source: str) -> None:
    result = _findings(tmp_path, source, TWO_WORKERS)
    assert sorted(result) == IDS, result
    assert all("settings.py" in f for f in result["PIT005"] + result["XL003"])


@pytest.mark.parametrize("config", GIVEN[:2], ids=["secret", "services"])
@pytest.mark.parametrize("source", [RESHAPED, PLAIN], ids=["reshaped", "plain"])
def test_no_sqlite_finding_when_deploy_yaml_gives_the_variable(
    tmp_path: Path, source: str, config: str
) -> None:
    assert _findings(tmp_path, source, config) == {}


def test_a_service_under_another_variable_does_not_give_database_url(tmp_path: Path) -> None:
    result = _findings(tmp_path, PLAIN, GIVEN[2])
    assert sorted(result) == IDS, result


def test_xl022_counts_the_redis_service_url_as_given(tmp_path: Path) -> None:
    source = 'import os\n\nCELERY_BROKER_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")\n'
    two_hosts = CONFIG.replace(
        "  domains: [demo.example.com]\n", "  domains: [demo.example.com]\n  hosts: [10.0.0.1, 10.0.0.2]\n"
    )
    root = project(tmp_path, imported_by_app({"settings.py": source}))
    for config, fires in ((two_hosts, True), (two_hosts + "services:\n  redis: {}\n", False)):
        (root / "deploy.yaml").write_text(config, encoding="utf-8")
        result = found(check(root, ["XL022"], config=config)).get("XL022", [])
        assert bool(result) is fires, (config, result)
