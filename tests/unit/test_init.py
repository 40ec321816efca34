"""`deploy init` finds the app in the common Flask project shapes and writes a valid deploy.yaml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.initproject import inspect_project
from deploy.loader import load

pytestmark = pytest.mark.unit

FLASKR = Path(__file__).resolve().parents[2] / "playbooks" / "flaskr"


def run_init(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy", "init", str(directory), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_factory_package(tmp_path: Path) -> None:
    shutil.copytree(FLASKR / "flaskr", tmp_path / "flaskr")
    shutil.copy(FLASKR / "requirements.txt", tmp_path)
    out = run_init(tmp_path, "--domain", "notes.example.org", "--host", "10.0.0.5")
    assert out.returncode == 0, out.stderr
    config = load(tmp_path / "deploy.yaml")
    assert config.app.wsgi == "flaskr:create_app()"
    assert config.app.static is not None and config.app.static.dir == "flaskr/static"
    assert config.app.secrets == ["SECRET_KEY"]
    assert config.app.shared == ["instance"]
    assert config.server.domains == ["notes.example.org"]
    assert config.server.hosts[0].address == "10.0.0.5"
    assert run_init(tmp_path).returncode == 2  # refuses to overwrite


def test_single_file_app(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import os\nfrom flask import Flask\n\napp = Flask(__name__)\n"
        "app.config['SECRET_KEY'] = os.environ['SECRET_KEY']\n"
        "DSN = os.getenv('SENTRY_DSN')\nLEVEL = os.environ.get('LOG_LEVEL')\n\n"
        "@app.get('/healthz')\ndef health():\n    return 'ok'\n"
    )
    (tmp_path / "static").mkdir()
    (tmp_path / "requirements.txt").write_text("flask==3.1.3\n")
    found = inspect_project(tmp_path)
    assert found.wsgi == "app:app"
    assert found.health == "/healthz"
    assert found.static_dir == "static"
    assert found.secrets == ["SECRET_KEY", "SENTRY_DSN"]
    assert run_init(tmp_path).returncode == 0
    assert load(tmp_path / "deploy.yaml").app.health == "/healthz"


def test_factory_preferred_over_instance_and_tests_ignored(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "wsgi.py").write_text("from web import create_app\napp = create_app()\n")
    (tmp_path / "web.py").write_text(
        "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("from flask import Flask\napp = Flask('t')\n")
    found = inspect_project(tmp_path)
    assert found.wsgi == "web:create_app()"
    assert any("no /health route" in n for n in found.notes)
    assert any("no requirements.txt" in n for n in found.notes)


def test_no_flask_app_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("print('hi')\n")
    out = run_init(tmp_path)
    assert out.returncode == 2
    assert "found no Flask app" in out.stderr and "Traceback" not in out.stderr
