"""`deploy init` on project shapes met in real apps it had never seen: settings chosen inside a config
class's `if`, folders named through `os.pardir`, an SQLite file beside a package's code, a health route
spelled `/healthcheck`, test-suite scripts and WSGI environ reads that are not the app's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.project.init import inspect_project, write_deploy_yaml

pytestmark = pytest.mark.unit

CONFIG = """\
import os


class Config:
    SECRET_KEY = os.urandom(32)
    DATABASE_URL = os.environ.get("NOPE_DB")
    if not DATABASE_URL:
        DATABASE_URL = f"sqlite:///{os.path.dirname(os.path.abspath(__file__))}/board.db"
    if os.environ.get("USE_REDIS_CACHE"):
        CACHE_TYPE = "redis"
    else:
        CACHE_TYPE = "filesystem"
        CACHE_DIR = os.path.join(os.path.dirname(__file__), os.pardir, ".data", "filesystem_cache")
    LOG_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logs")
"""

APP = """\
from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config.from_object("board.config.Config")

    @app.route("/healthcheck")
    def healthcheck():
        return "OK"

    @app.route("/ip")
    def ip():
        from flask import request
        return request.environ.get("HTTP_X_REAL_IP", request.remote_addr)

    return app
"""


def _board(root: Path) -> None:
    (root / "board").mkdir()
    (root / "board" / "__init__.py").write_text(APP)
    (root / "board" / "config.py").write_text(CONFIG)
    (root / "requirements.txt").write_text("flask==3.1.3\n")


def test_settings_under_a_config_class_if_are_read_and_shared(tmp_path: Path) -> None:
    """The cache folder (a setting under the class's `else:`, named through os.pardir) and the log folder
    inside the package are shared; the package itself holds code, so its SQLite file (an f-string of the
    module's folder) is a shared file rather than a shared folder hiding the code."""
    _board(tmp_path)
    found = inspect_project(tmp_path)
    assert found.shared_dirs == [".data/filesystem_cache", "board/logs"]
    assert found.shared_files == ["board/board.db"]
    assert not any("holds committed files" in note for note in found.notes)


def test_a_healthcheck_route_is_the_health_path(tmp_path: Path) -> None:
    _board(tmp_path)
    assert inspect_project(tmp_path).health == "/healthcheck"


def test_wsgi_environ_and_test_suite_scripts_are_not_settings(tmp_path: Path) -> None:
    """`request.environ["HTTP_X_REAL_IP"]` is a request header, and a seed script in a test suite's
    folder (`docker/browser-test/`) is never what production runs: neither names a setting or secret."""
    _board(tmp_path)
    (tmp_path / "docker" / "browser-test").mkdir(parents=True)
    (tmp_path / "docker" / "browser-test" / "seed.py").write_text(
        'import os\nPASSWORD = os.environ.get("BROWSER_TEST_PASSWORD", "x")\n'
        'API = os.getenv("PDNS_API_KEY")\nHOST = os.getenv("PDNS_HOST")\n'
    )
    (tmp_path / "board" / "mail.py").write_text('import os\nHOST = os.environ["MAIL_SERVER"]\n')
    found = inspect_project(tmp_path)
    assert found.secrets == []
    assert sorted(found.env) == ["MAIL_SERVER", "NOPE_DB", "USE_REDIS_CACHE"]


def test_deploys_own_rendered_files_are_not_the_apps_code(tmp_path: Path) -> None:
    """`deploy render` writes deploy-out/gunicorn.conf.py into the project; init run again after it must
    not read that file's environment reads as the app's settings."""
    _board(tmp_path)
    (tmp_path / "deploy-out").mkdir()
    (tmp_path / "deploy-out" / "gunicorn.conf.py").write_text(
        'import os\nforwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")\n'
    )
    assert "FORWARDED_ALLOW_IPS" not in inspect_project(tmp_path).env


def test_an_rq_worker_gets_the_redis_service_that_sets_its_url(tmp_path: Path) -> None:
    """The RQ worker init writes reads $REDIS_URL: init adds services: redis, which sets it; a project
    already reading REDIS_URL as a secret keeps its own Redis."""
    (tmp_path / "app.py").write_text(
        "import redis\nfrom flask import Flask\nfrom rq import Queue\n\napp = Flask(__name__)\n\n\n"
        "@app.post('/tasks')\ndef tasks():\n    Queue(connection=redis.Redis()).enqueue(print, 1)\n"
        "    return ''\n"
    )
    (tmp_path / "requirements.txt").write_text("flask==3.1.3\nrq==2.1.0\n")
    text = write_deploy_yaml(inspect_project(tmp_path), hosts=["10.0.0.5"])
    assert load_text(text, "deploy.yaml", None).services.redis is not None
    (tmp_path / "settings.py").write_text('import os\nREDIS_URL = os.environ["REDIS_URL"]\n')
    text = write_deploy_yaml(inspect_project(tmp_path), hosts=["10.0.0.5"])
    assert "\nservices:" not in text
