"""Time a static `deploy check` (source and project layers) of generated Flask apps of 50 and 200 files.

Run: python benchmarks/bench_check.py [--runs N]
Each app has blueprints with routes and forms, models, services, templates and a requirements file.
Measures the whole check as the CLI runs it (read and parse every file, run every check), in process,
and `deploy check` as a command (interpreter start included). Writes benchmarks/results/check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from deploy.checker.context import Context
from deploy.checker.registry import load_checks
from deploy.checker.runner import run

HERE = Path(__file__).resolve().parent

VIEW = '''\
"""Views of part {n}."""

from flask import Blueprint, redirect, render_template, request

from app.forms import Form{n}
from app.services.s{n} import Service{n}

bp = Blueprint("part{n}", __name__, url_prefix="/part{n}")


@bp.get("/")
def index():
    page = request.args.get("page", 1, type=int)
    return render_template("part{n}.html", items=Service{n}().list(page))


@bp.route("/new", methods=["GET", "POST"])
def create():
    form = Form{n}()
    if form.validate_on_submit():
        Service{n}().add(form.name.data)
        return redirect("/part{n}/")
    return render_template("part{n}.html", form=form)


@bp.get("/<int:item_id>")
def show(item_id):
    return {{"id": item_id, "name": Service{n}().get(item_id)}}
'''

SERVICE = '''\
"""Data access of part {n}."""

from sqlalchemy import text

from app.models import db


class Service{n}:
    def list(self, page):
        query = text("SELECT id, name FROM item{n} LIMIT 20 OFFSET :o")
        return db.session.execute(query, {{"o": page * 20}}).all()

    def get(self, item_id):
        return db.session.execute(text("SELECT name FROM item{n} WHERE id = :id"), {{"id": item_id}}).scalar()

    def add(self, name):
        db.session.execute(text("INSERT INTO item{n} (name) VALUES (:name)"), {{"name": name}})
        db.session.commit()
'''

FACTORY = '''\
"""The app factory."""

import logging
import os

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from app.models import db

csrf = CSRFProtect()


def create_app():
    app = Flask(__name__)
    app.config.from_mapping(SECRET_KEY=os.environ["SECRET_KEY"], SESSION_COOKIE_SECURE=True,
                            SESSION_COOKIE_SAMESITE="Lax", SQLALCHEMY_DATABASE_URI=os.environ["DATABASE_URL"])
    logging.basicConfig(level="INFO")
    csrf.init_app(app)
    db.init_app(app)
{registrations}

    @app.get("/health")
    def health():
        return {{"status": "ok"}}

    return app
'''


def make_app(root: Path, files: int) -> int:
    """Write an app of about `files` Python files (views and services in pairs); return the .py count."""
    parts = max(1, (files - 4) // 2)
    pkg = root / "app"
    (pkg / "views").mkdir(parents=True)
    (pkg / "services").mkdir()
    (pkg / "templates").mkdir()
    registrations = []
    forms = ["from flask_wtf import FlaskForm", "from wtforms import StringField", ""]
    for n in range(parts):
        (pkg / "views" / f"v{n}.py").write_text(VIEW.format(n=n))
        (pkg / "services" / f"s{n}.py").write_text(SERVICE.format(n=n))
        (pkg / "templates" / f"part{n}.html").write_text(
            '<form method="post">{{ form.hidden_tag() }}{{ form.name() }}</form>\n'
        )
        registrations.append(f"    from app.views.v{n} import bp as bp{n}\n    app.register_blueprint(bp{n})")
        forms.append(f"class Form{n}(FlaskForm):\n    name = StringField('name')\n")
    (pkg / "__init__.py").write_text(FACTORY.format(registrations="\n".join(registrations)))
    (pkg / "forms.py").write_text("\n".join(forms))
    (pkg / "models.py").write_text("from flask_sqlalchemy import SQLAlchemy\n\ndb = SQLAlchemy()\n")
    (pkg / "views" / "__init__.py").write_text("")
    (pkg / "services" / "__init__.py").write_text("")
    (root / "requirements.txt").write_text(
        "Flask==3.1.3\nFlask-WTF==1.3.0\nFlask-SQLAlchemy==3.1.1\ngunicorn==23.0.0\n"
    )
    return len(list(root.rglob("*.py")))


def in_process(root: Path) -> tuple[float, int]:
    started = time.perf_counter()
    report = run(load_checks(root, plugins=False), Context(root=root))
    return time.perf_counter() - started, len(report.results)


def as_command(root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "deploy", "check", str(root), "--format", "json"],
        capture_output=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (50, 200):
            root = Path(tmp) / f"app{size}"
            py_files = make_app(root, size)
            in_process(root)  # warm-up: imports the check modules once, as a long-lived process would have
            timings = [in_process(root) for _ in range(args.runs)]
            commands = [as_command(root) for _ in range(max(3, args.runs // 2))]
            rows.append(
                {
                    "files": size,
                    "python_files": py_files,
                    "lines": sum(len(p.read_text().splitlines()) for p in root.rglob("*.py")),
                    "findings": timings[0][1],
                    "in_process_median_s": round(statistics.median(t for t, _ in timings), 4),
                    "in_process_max_s": round(max(t for t, _ in timings), 4),
                    "command_median_s": round(statistics.median(commands), 4),
                }
            )
    result = {
        "benchmark": "static deploy check (source and project layers, no deploy.yaml)",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "target": "a 50-file app in under a second",
        "runs": args.runs,
        "results": rows,
    }
    out = HERE / "results" / "check.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| files | .py | lines | in process (median) | `deploy check` command (median) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['files']} | {r['python_files']} | {r['lines']} | {r['in_process_median_s']:.3f} s | "
            f"{r['command_median_s']:.3f} s |"
        )


if __name__ == "__main__":
    main()
