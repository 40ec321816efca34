"""The static reading of a project: what `deploy.project.scan` finds in sources and files, never importing."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.project.scan import from_files, parse_dockerfile, parse_requirements, scan

pytestmark = pytest.mark.unit

SOURCE = """\
import os
from flask import Blueprint, Flask, request

bp = Blueprint("b", __name__)


class Config:
    DEBUG = False
    SECRET_KEY = os.environ.get("SECRET_KEY")


class DevelopmentConfig(Config):
    DEBUG = True


def create_app():
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    app.config.update(SESSION_COOKIE_SAMESITE="Lax", TRUSTED_HOSTS=["a.example"])
    app.secret_key = os.getenv("KEY", "fallback")
    return app


@bp.route("/items", methods=["GET", "POST"])
def items():
    return request.form["x"]


@bp.delete("/items/<int:i>")
def remove(i):
    return ""


if __name__ == "__main__":
    create_app().run(debug=True)
"""


def test_settings_with_scope_and_values() -> None:
    p = from_files(Path("."), {"app.py": SOURCE})
    settings = {(s.key, s.scope): s for s in p.settings}
    assert settings[("DEBUG", "DevelopmentConfig")].production is False
    assert settings[("DEBUG", "Config")].value.is_false
    assert settings[("MAX_CONTENT_LENGTH", "")].value.literal == 16 * 1024 * 1024
    assert settings[("SESSION_COOKIE_SAMESITE", "")].value.literal == "Lax"
    assert settings[("TRUSTED_HOSTS", "")].value.literal == ["a.example"]
    key = next(s for s in p.setting("SECRET_KEY") if s.scope == "")
    assert (key.value.kind, key.value.env_name, key.value.default) == ("env", "KEY", "fallback")
    assert [s.scope for s in p.setting("DEBUG")] == ["Config"]  # the development class is not production


def test_routes_methods_and_request_reads() -> None:
    p = from_files(Path("."), {"app.py": SOURCE})
    routes = {(r.rule, r.methods) for r in p.routes}
    assert routes == {("/items", ("GET", "POST")), ("/items/<int:i>", ("DELETE",))}
    items = next(r for r in p.routes if r.function == "items")
    assert items.reads == {"form"} and items.changes_state and not items.validates


def test_calls_know_the_main_guard_and_the_function() -> None:
    p = from_files(Path("."), {"app.py": SOURCE})
    run = next(c for c in p.calls if c.leaf == "run")
    assert run.main_guarded and run.keywords["debug"].is_true
    (flask,) = p.apps
    assert flask.function == "create_app"


def test_a_syntax_error_is_kept_not_raised() -> None:
    p = from_files(Path("."), {"bad.py": "def f(:\n", "good.py": "x = 1\n"})
    assert [m.syntax_error for m in p.python] == ["line 1: invalid syntax", None]


def test_dockerfile_continuations_and_comments() -> None:
    text = (
        "FROM python:3.11\n# a comment\nRUN apt-get update \\\n"
        '    && apt-get install -y curl\nCMD ["gunicorn"]\n'
    )
    assert [(i.keyword, i.line) for i in parse_dockerfile(text)] == [("FROM", 1), ("RUN", 3), ("CMD", 5)]
    assert parse_dockerfile(text)[1].args == "apt-get update && apt-get install -y curl"


@pytest.mark.parametrize(
    ("line", "pinned"),
    [
        ("flask==3.1.3", True),
        ("flask>=3", False),
        ("flask", False),
        ("flask[async]==3.1.3", True),
        ("flask~=3.1", False),
        ("flask==3.1.3 ; python_version >= '3.11'", True),
        ("mypkg @ https://example.invalid/mypkg-1.0.tar.gz", True),
    ],
)
def test_requirement_pinning(line: str, pinned: bool) -> None:
    (req,) = parse_requirements(line + "\n", "requirements.txt")
    assert req.pinned is pinned


def test_scan_skips_virtualenvs_tests_and_hidden_folders(tmp_path: Path) -> None:
    for rel in (
        "app.py",
        ".venv/lib/x.py",
        "venv2/pyvenv.cfg",
        "venv2/lib/y.py",
        "tests/test_app.py",
        "test_other.py",
        ".hidden/z.py",
        "pkg/mod.py",
        "migrations/versions/0001.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    assert sorted(m.path for m in scan(tmp_path).python) == ["app.py", "pkg/mod.py"]
    assert "migrations/" in scan(tmp_path).files
