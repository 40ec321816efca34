"""Regressions from running `deploy check` on real Flask projects (QA): each failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.checker.context import Context
from deploy.checker.layers import Finding
from deploy.checker.registry import check as register
from deploy.checker.results import Report
from deploy.checker.runner import run
from tests.unit.checks.support import CLEAN_APP, CONFIG, check, found, imported_by_app, project

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
        imported_by_app(
            {
                "app/fake.py": FAKE,
                "app/gen.py": FAKE,  # uses Faker: a generator whatever its name
                "app/seed_admin.py": 'def run(User):\n    User(password="hunter22")\n',
                "app/views.py": 'def login(client):\n    return client.auth(password="hunter22")\n',
            }
        ),
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
from flask import Flask, session


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    app.config.from_prefixed_env()

    @app.get("/health")
    def health():
        return "ok"

    @app.get("/visit")
    def visit():
        session["visits"] = session.get("visits", 0) + 1  # the app keeps a session cookie
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


# --- --import: the production view ----------------------------------------------------------------

IMPORT_APP = """\
import os
from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    app.config["SESSION_COOKIE_SECURE"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    EXTRA

    @app.get("/health")
    def health():
        return "ok"

    return app
"""
STRONG = "5f1c0a7e9b3d4c2a8e6f0b1d3c5a7e9f2b4d6c8a0e1f3b5d7c9a1e3f5b7d9c0a"
IMPORT_IDS = ["SEC016", "SEC017", "SEC018", "OBS005", "DEP006"]


def _import_app(extra: str) -> str:
    return IMPORT_APP.replace("EXTRA", extra)


def test_placeholders_have_the_shape_libraries_parse() -> None:
    from deploy.project.inspect_app import PLACEHOLDER_PREFIX, placeholder

    assert placeholder("DATABASE_URL") == "sqlite://"
    assert placeholder("SQLALCHEMY_DATABASE_URI") == "sqlite://"
    assert placeholder("REDIS_URL") == "redis://localhost:6379/0"
    assert placeholder("SENTRY_DSN") == ""
    assert placeholder("SECRET_KEY").startswith(PLACEHOLDER_PREFIX)


def test_a_missing_database_url_does_not_break_the_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _import_app(
        "from urllib.parse import urlsplit\n"
        '    if not urlsplit(os.environ["DATABASE_URL"]).scheme:\n'
        '        raise ValueError("Could not parse SQLAlchemy URL")'
    )
    root = project(tmp_path, {"app.py": app}, base=False)
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = CONFIG.replace("secrets: [SECRET_KEY]", "secrets: [SECRET_KEY, DATABASE_URL]")
    assert found(check(root, IMPORT_IDS, config=config, import_app=True)) == {}


def test_a_failed_import_names_the_skipped_checks_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, {"app.py": _import_app('os.environ["API_TOKEN"]')}, base=False)
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.delenv("API_TOKEN", raising=False)
    report = check(root, IMPORT_IDS, config=CONFIG, import_app=True)
    reasons = {reason for _, reason in report.skipped}
    assert len(reasons) == 1
    reason = reasons.pop()
    assert "see DEP006" in reason and "KeyError: 'API_TOKEN'" in reason
    assert "hint: a variable the app needs is missing: list it in deploy.yaml app.secrets" in reason


def test_import_runs_on_a_copy_without_dotenv_and_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = (
        'os.makedirs("logs", exist_ok=True)\n'
        '    if os.path.exists(os.path.join(os.path.dirname(__file__), ".env")):\n'
        '        app.config["DEBUG"] = True\n'
        '    if os.environ.get("APP_DEBUG"):\n'
        '        app.config["TESTING"] = True'
    )
    root = project(
        tmp_path,
        {"app.py": _import_app(extra), ".env": "SECRET_KEY=" + STRONG + "\nAPP_DEBUG=1\n"},
        base=False,
    )
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("APP_DEBUG", raising=False)
    report = check(root, IMPORT_IDS, config=CONFIG, import_app=True)
    # .env gives SECRET_KEY (an app.secrets entry, as push reads it) but not APP_DEBUG, and the app
    # does not see the file itself: production has no .env.
    assert found(report) == {}
    assert not (root / "logs").exists()


def test_import_uses_the_activated_virtualenv_when_the_project_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy installed apart (pipx, system-wide) and the project's environment activated elsewhere."""
    import subprocess
    import sys

    root = project(tmp_path / "app", {"app.py": _import_app("")}, base=False)
    active = tmp_path / "envs" / "app"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(active)],
        check=True,
        timeout=120,
    )
    # A module only the activated environment has: the import fails with deploy's own Python.
    site = next(active.glob("lib/python*/site-packages"))
    (site / "only_in_active_env.py").write_text("VALUE = 1\n")
    (root / "app.py").write_text("import only_in_active_env\n" + (root / "app.py").read_text())
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    without = check(root, IMPORT_IDS, config=CONFIG, import_app=True)
    assert not any("virtualenv" in note for note in without.notes)
    assert "No module named 'only_in_active_env'" in found(without)["DEP006"][0]
    monkeypatch.setenv("VIRTUAL_ENV", str(active))
    report = check(root, IMPORT_IDS, config=CONFIG, import_app=True)
    assert found(report) == {}
    python = active / "bin" / "python"
    assert f"--import used the activated virtualenv ($VIRTUAL_ENV): {python}" in report.notes


def test_import_uses_the_projects_virtualenv_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    root = project(tmp_path, {"app.py": _import_app("")}, base=False)
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root / ".venv")],
        check=True,
        timeout=120,
    )
    monkeypatch.setenv("SECRET_KEY", STRONG)
    report = check(root, IMPORT_IDS, config=CONFIG, import_app=True)
    assert found(report) == {}
    assert f"--import used the project's virtualenv: {root / '.venv' / 'bin' / 'python'}" in report.notes


def test_the_import_child_needs_only_the_standard_library_and_python_3_8() -> None:
    import ast
    import sys

    from deploy.project import inspect_child

    text = Path(inspect_child.__file__).read_text(encoding="utf-8")
    tree = ast.parse(text, feature_version=(3, 8))
    imported = {
        (a.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for a in (node.names if isinstance(node, ast.Import) else [node])  # type: ignore[attr-defined]
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# --- --live: placeholder and unreachable hosts ---------------------------------------------------

LIVE_CONFIG = CONFIG + "  hosts: [HOSTS]\n"


def test_live_refuses_placeholder_hosts_before_any_lookup(tmp_path: Path) -> None:
    from deploy.checker.live_probe import placeholder_hosts
    from deploy.config.loader import load_text

    config = load_text(LIVE_CONFIG.replace("HOSTS", "web1.example.com, b.example.org, c.invalid, web.test"))
    assert placeholder_hosts(config) == ["web1.example.com", "b.example.org", "c.invalid"]
    root = project(tmp_path)
    report = check(
        root, ["LIVE001", "LIVE016"], config=LIVE_CONFIG.replace("HOSTS", "web1.example.com"), live=True
    )
    assert report.active == []
    assert all("placeholder hosts (web1.example.com)" in reason for _, reason in report.skipped)
    (root / "deploy.yaml").write_text(
        LIVE_CONFIG.replace("HOSTS", "10.0.0.5")
        + "environments:\n  staging:\n    server: {hosts: [staging1.example.com]}\n"
    )
    from tests.unit.cli.test_check import deploy

    proc = deploy("check", str(root), "--live", "-e", "staging")
    assert proc.returncode == 2
    assert "--live: deploy.yaml -e staging names placeholder hosts (staging1.example.com)" in proc.stderr


def test_an_unreachable_host_is_reported_as_unreachable_not_as_a_certificate(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = project(tmp_path)
    (root / "known_hosts").write_text("")
    config = LIVE_CONFIG.replace("HOSTS", f"deploy@127.0.0.1:{port}") + "  ssh: {known_hosts: known_hosts}\n"
    report = check(root, ["LIVE001", "LIVE012", "LIVE016"], config=config, live=True)
    messages = [(r.check.id, r.finding.message) for r in report.active]
    assert len(messages) == 1 and messages[0][0] == "LIVE001", messages
    assert messages[0][1].startswith("unreachable: ")
    assert {c.id: reason for c, reason in report.skipped} == {
        "LIVE012": "no host could be reached (see LIVE001)",
        "LIVE016": "no host could be reached (see LIVE001)",
    }


def test_perf003_wants_a_cache_only_where_views_repeat_expensive_work(tmp_path: Path) -> None:
    no_cache = {
        "app.py": CLEAN_APP.replace("from flask_caching import Cache\n", "")
        .replace("cache = Cache()\n", "")
        .replace("    cache.init_app(app)\n", "")
    }
    # The clean app's views read a form and a query-string value: nothing worth caching.
    assert "PERF003" not in found(check(project(tmp_path / "a", no_cache), ["PERF003"]))
    http = {
        "rates.py": "import requests\n\ndef rates():\n    return requests.get('https://api.example.com/rates').json()\n",
        "views.py": "from flask import Blueprint\nfrom .rates import rates\nbp = Blueprint('v', __name__)\n\n"
        "@bp.get('/rates')\ndef show():\n    return rates()\n",
    }
    result = found(check(project(tmp_path / "b", no_cache | http), ["PERF003"]))
    assert result["PERF003"] == [
        "views.py:6 no cache, and /rates (show) runs an HTTP request on every request"
    ]
