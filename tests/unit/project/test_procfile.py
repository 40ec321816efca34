"""deploy init reads a project's Procfile: the web line's WSGI target, the other lines as processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config.loader import load
from deploy.project.init import inspect_project
from deploy.project.procfile import gunicorn_target, read_procfile

pytestmark = pytest.mark.unit

APP = "from flask import Flask\n\napp = Flask(__name__)\n\ndef create_app():\n    return app\n"


@pytest.mark.parametrize(
    ("command", "target"),
    [
        ("gunicorn app:app", "app:app"),
        ("gunicorn -w 4 --bind 0.0.0.0:$PORT 'shop:create_app()'", "shop:create_app()"),
        ("gunicorn --bind=0.0.0.0:$PORT -k gevent wsgi:application --log-file -", "wsgi:application"),
        (".venv/bin/gunicorn -c gunicorn.conf.py app:app", "app:app"),
        ("uvicorn app:app", None),
        ("flask run", None),
        ("gunicorn 'unbalanced", None),
    ],
)
def test_the_wsgi_target_of_a_gunicorn_web_line(command: str, target: str | None) -> None:
    assert gunicorn_target(command) == target


def test_a_procfile_becomes_wsgi_and_processes(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(
        "# processes\n"
        "web: gunicorn -w 3 'app:create_app()'\n"
        "worker: rq worker --url $REDIS_URL high default\n"
        "beat_scheduler: celery -A tasks beat\n"
        "release: flask db upgrade\n"
        "nonsense line\n"
    )
    found = read_procfile(tmp_path)
    assert found is not None
    assert found.wsgi == "app:create_app()"
    assert found.processes == {
        "worker": "rq worker --url $REDIS_URL high default",
        "beat-scheduler": "celery -A tasks beat",
    }
    assert any("release line" in n for n in found.notes)
    assert any("nonsense line" in n for n in found.notes)
    assert read_procfile(tmp_path / "nowhere") is None


def test_deploy_init_writes_the_procfile_processes_into_a_valid_deploy_yaml(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "requirements.txt").write_text("flask==3.1.3\nrq==2.6.1\n")
    (tmp_path / "Procfile").write_text(
        'web: gunicorn "app:create_app()"\nworker: rq worker --url "$REDIS_URL" default\n'
    )
    assert inspect_project(tmp_path).wsgi == "app:create_app()"
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "init", "--domain", "a.example.com", "--host", "10.0.0.5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    config = load(tmp_path / "deploy.yaml")
    assert config.app.wsgi == "app:create_app()"
    assert {n: p.command for n, p in config.processes.items()} == {
        "worker": 'rq worker --url "$REDIS_URL" default'
    }
