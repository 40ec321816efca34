"""Helpers for the check tests: a clean Flask project to start from, and one call that runs checks on it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from deploy.checker.context import Context
from deploy.checker.registry import load_checks, select
from deploy.checker.results import Report
from deploy.checker.runner import run
from deploy.config.loader import load_text

pytestmark = pytest.mark.unit

CLEAN_APP = '''\
"""A small app that passes every static check."""
import logging
import os

import sentry_sdk
from flask import Flask, request
from flask_caching import Cache
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from wtforms import StringField
from wtforms.validators import DataRequired

cache = Cache()
csrf = CSRFProtect()


class NoteForm(FlaskForm):
    text = StringField("Note", validators=[DataRequired()])


def create_app():
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=os.environ["SECRET_KEY"],
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=1024 * 1024,
        TRUSTED_HOSTS=["demo.example.com"],
        CACHE_TYPE="RedisCache",
    )
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    sentry_sdk.init(dsn=os.environ.get("SENTRY_DSN"))
    csrf.init_app(app)
    cache.init_app(app)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.route("/notes", methods=["GET", "POST"])
    def notes():
        form = NoteForm()
        if form.validate_on_submit():
            return {"saved": form.text.data}
        return {"page": request.args.get("page", 1, type=int)}

    return app
'''

CLEAN_FILES: dict[str, str] = {
    "app.py": CLEAN_APP,
    "requirements.txt": "Flask==3.1.3\nFlask-WTF==1.3.0\nFlask-Caching==2.3.1\nsentry-sdk==2.19.0\n"
    "gunicorn==23.0.0\n",
    ".gitignore": ".env\n__pycache__/\n",
    "Dockerfile": (
        "FROM python:3.11.9-slim-bookworm\nWORKDIR /app\nCOPY requirements.txt .\n"
        "RUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\nUSER nobody\n"
        'CMD ["gunicorn", "-w", "3", "app:create_app()"]\n'
    ),
    ".dockerignore": ".env\n.git\n",
    "templates/notes.html": '<form method="post">{{ form.hidden_tag() }}{{ form.text }}</form>\n',
    "static/style.css": "body {}\n",
}

CONFIG = """\
app:
  name: demo
  wsgi: "app:create_app()"
  secrets: [SECRET_KEY]
  static: {url: /static, dir: static}
server:
  domains: [demo.example.com]
  tls: {email: ops@example.com}
"""


def write(root: Path, files: dict[str, str | None]) -> None:
    """Write files (None deletes one of the clean project's files)."""
    for rel, text in files.items():
        path = root / rel
        if text is None:
            if path.exists():
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if text.startswith("\n") else text, encoding="utf-8")


def project(root: Path, overrides: dict[str, str | None] | None = None, base: bool = True) -> Path:
    files: dict[str, str | None] = dict(CLEAN_FILES) if base else {}
    files.update(overrides or {})
    write(root, files)
    return root


def check(
    root: Path,
    ids: list[str] | None = None,
    config: str | None = None,
    import_app: bool = False,
    **ctx_args: object,
) -> Report:
    """Run the named checks (all built-ins by default) on the project at `root`."""
    cfg = load_text(config, "deploy.yaml") if config else None
    checks = load_checks(root, plugins=False)
    if ids:
        checks = select(checks, ids)
    ctx = Context(root=root, config=cfg, config_file="deploy.yaml", import_app=import_app, **ctx_args)  # type: ignore[arg-type]
    return run(checks, ctx)


def found(report: Report) -> dict[str, list[str]]:
    """{check id: ['file:line message', ...]} of the active findings."""
    out: dict[str, list[str]] = {}
    for r in report.active:
        out.setdefault(r.check.id, []).append(f"{r.finding.file}:{r.finding.line} {r.finding.message}")
    return out


def imported_by_app(files: dict[str, str | None]) -> dict[str, str | None]:
    """The files, with app.py importing every other Python module among them (at its end, so its line
    numbers stay): a module the served app never imports is code production never runs, which the
    source checks leave alone, so a fixture that means "this runs in production" says so."""
    out = dict(files)
    modules = [
        rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for rel, text in files.items()
        if rel.endswith(".py") and text is not None and rel != "app.py"
    ]
    if not modules or out.get("app.py", CLEAN_APP) is None:
        return out
    app = out.get("app.py") or CLEAN_APP
    out["app.py"] = app.rstrip("\n") + "\n\n" + "".join(f"import {m}  # noqa: F401\n" for m in modules)
    return out
