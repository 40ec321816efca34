"""Regressions from running `deploy check` on real Flask projects (QA): each failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.checkctx import Context
from deploy.checkrun import Finding, Report, run
from deploy.checkrun import check as register

from .test_check_support import CONFIG, check, found, project

pytestmark = pytest.mark.unit

ALEMBIC_ENV = """\
from alembic import context
from sqlalchemy import engine_from_config, pool


def run_migrations_online():
    connectable = engine_from_config({}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    return connectable
"""


def test_perf004_ignores_nullpool_in_alembic_env(tmp_path: Path) -> None:
    root = project(tmp_path, {"migrations/env.py": ALEMBIC_ENV, "other/env.py": ALEMBIC_ENV})
    assert "PERF004" not in found(check(root, ["PERF004"]))
    app = project(
        tmp_path / "app", {"db.py": "from sqlalchemy.pool import NullPool\nE = dict(poolclass=NullPool)\n"}
    )
    assert found(check(app, ["PERF004"]))["PERF004"] == [
        "db.py:2 poolclass=NullPool opens a new database connection for every checkout"
    ]


FAKE = """\
from faker import Faker
from .models import User


def users(count=100):
    fake = Faker()
    for _ in range(count):
        User(email=fake.email(), password="password")
"""


def test_sec008_skips_fake_data_generators_but_not_app_code(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "app/fake.py": FAKE,
            "app/gen.py": FAKE,  # uses Faker: a generator whatever its name
            "app/seed_admin.py": 'def run(User):\n    User(password="hunter22")\n',
            "app/views.py": 'def login(client):\n    return client.auth(password="hunter22")\n',
        },
    )
    assert found(check(root, ["SEC008"])) == {
        "SEC008": ["app/views.py:2 password is given a literal credential value"]
    }


def test_dep006_points_at_the_wsgi_module_not_the_first_flask_call(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        {
            "autoapp.py": "from app import create_app\n\napp = create_app()\nraise RuntimeError('boom')\n",
        },
    )
    config = CONFIG.replace('wsgi: "app:create_app()"', 'wsgi: "autoapp:app"')
    result = found(check(root, ["DEP006"], config=config, import_app=True))
    assert len(result["DEP006"]) == 1
    assert result["DEP006"][0].startswith("autoapp.py:3 ")


# --- one finding per problem: supersedes ----------------------------------------------------------


@register("ZZZ001", area="security", severity="high", title="crude", why="w", fix="f")
def _crude(ctx: Context) -> list[Finding]:
    return [Finding("crude guess", "app.py", 1)]


@register(
    "ZZZ002", area="security", severity="high", title="precise", why="w", fix="f", supersedes=("ZZZ001",)
)
def _precise(ctx: Context) -> list[Finding]:
    return []


def test_a_check_that_ran_drops_the_findings_of_the_check_it_supersedes(tmp_path: Path) -> None:
    root = project(tmp_path)
    report: Report = run([_crude, _precise], Context(root=root))
    assert report.active == []
    assert [(c.id, reason) for c, reason in report.skipped] == [("ZZZ001", "superseded by ZZZ002 (precise)")]
    # When the precise check cannot run, the crude finding stays.
    alone = run([_crude], Context(root=root))
    assert [r.finding.message for r in alone.active] == ["crude guess"]


STATIC_GAP_APP = """\
import os
from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    app.config.from_prefixed_env()

    @app.get("/health")
    def health():
        return "ok"

    return app
"""


def test_import_layer_supersedes_static_cookie_and_health_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, {"app.py": STATIC_GAP_APP}, base=False)
    monkeypatch.setenv("SECRET_KEY", "x" * 64)
    ids = ["SEC010", "SEC012", "SEC018", "OBS002", "OBS005"]
    static = found(check(root, ids, config=CONFIG))
    assert {"SEC010", "SEC012"} <= set(static)
    # The cookie settings come from FLASK_* variables: only the imported app knows them.
    monkeypatch.setenv("FLASK_SESSION_COOKIE_SECURE", "true")
    monkeypatch.setenv("FLASK_SESSION_COOKIE_SAMESITE", "Lax")
    report = check(root, ids, config=CONFIG, import_app=True)
    assert found(report) == {}
    skipped = {c.id: reason for c, reason in report.skipped}
    assert skipped["SEC010"].startswith("superseded by SEC018")
    assert skipped["SEC012"].startswith("superseded by SEC018")
    # Confirmed by the import: one finding, from SEC018, at the static setting when there is one.
    monkeypatch.delenv("FLASK_SESSION_COOKIE_SECURE")
    both = found(check(root, ids, config=CONFIG, import_app=True))
    assert set(both) == {"SEC018"}
    assert any("SESSION_COOKIE_SECURE is False in the imported app" in m for m in both["SEC018"])
