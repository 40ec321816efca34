"""flaskr: a small notes app used as deploy's example (app factory, a form, static files, /health)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def create_app(test_config: dict[str, object] | None = None) -> Flask:
    """Build the app; production settings come from the environment, never from the code."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY"),
        SESSION_COOKIE_SECURE=os.environ.get("SESSION_COOKIE_SECURE", "true") == "true",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=1024 * 1024,
        NOTES_FILE=os.path.join(app.instance_path, "notes.txt"),
    )
    if test_config:
        app.config.update(test_config)
    if not app.config["SECRET_KEY"]:
        raise RuntimeError("SECRET_KEY is not set: put it in the environment (deploy.yaml app.secrets)")

    # Error tracking when a DSN is configured on the host (never in the code). Imported only then:
    # the SDK takes half of the app's import time, which every release command and slot start pays.
    dsn = os.environ.get("SENTRY_DSN")
    if dsn:
        import sentry_sdk

        sentry_sdk.init(dsn=dsn, send_default_pii=False)

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    csrf.init_app(app)

    from flaskr import notes

    app.register_blueprint(notes.bp)
    app.cli.add_command(notes.init_db)

    @app.get("/health")
    def health() -> tuple[dict[str, str], int]:
        return {"status": "ok", "release": os.environ.get("DEPLOY_RELEASE", "dev")}, 200

    return app
