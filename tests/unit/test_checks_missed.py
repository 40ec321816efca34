"""Issue #16, problems the checks missed on real apps: each class has a small app that must fire and one
that must not (written to disk and checked as `deploy check` does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_check_support import CONFIG, check, found, project

pytestmark = pytest.mark.unit

TWO_HOSTS = CONFIG.replace(
    "  domains: [demo.example.com]\n", "  domains: [demo.example.com]\n  hosts: [web1, web2]\n"
)
ONE_HOST = CONFIG.replace(
    "  domains: [demo.example.com]\n", "  domains: [demo.example.com]\n  hosts: [web1]\n"
)


def _findings(tmp_path: Path, check_id: str, files: dict[str, str | None], config: str | None) -> list[str]:
    root = project(tmp_path, files)
    if config is not None:
        (root / "deploy.yaml").write_text(config, encoding="utf-8")
    report = check(root, [check_id], config=config)
    assert not report.skipped, report.skipped
    return found(report).get(check_id, [])


# --- XL006: SQLite through config defaults, DATABASE, sqlite3.connect and app.env ------------------

FLASKBB_STYLE = """\
import os


class DefaultConfig:
    basedir = os.path.dirname(os.path.dirname(__file__))
    SQLALCHEMY_DATABASE_URI = "sqlite:///" + basedir + "/" + "forum.sqlite"
"""

FLASKR_STYLE = """\
import os
import sqlite3

from flask import Flask, current_app


def create_app():
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=os.environ["SECRET_KEY"],
        DATABASE=os.path.join(app.instance_path, "flaskr.sqlite"),
    )
    return app


def get_db():
    return sqlite3.connect(current_app.config["DATABASE"])
"""

ENV_DEFAULT = """\
import os

SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", f"sqlite:///{os.getcwd()}/app.db")
"""


@pytest.mark.parametrize(
    ("files", "config", "says"),
    [
        ({"myforum/configs/default.py": FLASKBB_STYLE}, TWO_HOSTS, "myforum/configs/default.py:6 SQLite"),
        ({"flaskr.py": FLASKR_STYLE}, TWO_HOSTS, "flaskr.py:11 SQLite (DATABASE)"),
        ({"flaskr.py": FLASKR_STYLE}, TWO_HOSTS, "flaskr.py:17 SQLite (sqlite3.connect)"),
        ({"config.py": ENV_DEFAULT}, TWO_HOSTS, "the default when DATABASE_URL is unset"),
        (
            {},
            TWO_HOSTS.replace(
                "  secrets: [SECRET_KEY]\n",
                "  secrets: [SECRET_KEY]\n  env: {DATABASE_URL: 'sqlite:////srv/demo/shared/app.db'}\n",
            ),
            "deploy.yaml:5 SQLite (DATABASE_URL in app.env)",
        ),
    ],
)
def test_xl006_finds_sqlite_through_config(
    tmp_path: Path, files: dict[str, str | None], config: str, says: str
) -> None:
    result = _findings(tmp_path, "XL006", files, config)
    assert any(says in f for f in result), result


@pytest.mark.parametrize(
    ("files", "config"),
    [
        ({"myforum/configs/default.py": FLASKBB_STYLE}, ONE_HOST),
        ({"flaskr.py": FLASKR_STYLE}, ONE_HOST),
        # deploy.yaml gives DATABASE_URL: the SQLite fallback never applies.
        (
            {"config.py": ENV_DEFAULT},
            TWO_HOSTS.replace("secrets: [SECRET_KEY]", "secrets: [SECRET_KEY, DATABASE_URL]"),
        ),
        (
            {"config.py": ENV_DEFAULT},
            TWO_HOSTS.replace(
                "  secrets: [SECRET_KEY]\n",
                "  secrets: [SECRET_KEY]\n  env: {DATABASE_URL: 'postgresql://db.internal/app'}\n",
            ),
        ),
        (
            {
                "config.py": "import os\n\nSQLALCHEMY_DATABASE_URI = os.environ['DATABASE_URL']\n"
                "DATABASE = 'shop'\n"
            },
            TWO_HOSTS,
        ),
    ],
)
def test_xl006_quiet_without_sqlite_on_several_hosts(
    tmp_path: Path, files: dict[str, str | None], config: str
) -> None:
    assert _findings(tmp_path, "XL006", files, config) == []
