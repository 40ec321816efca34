"""`deploy init` on project shapes met in real apps it had never seen: settings chosen inside a config
class's `if`, folders named through `os.pardir`, an SQLite file beside a package's code, a health route
spelled `/healthcheck`, test-suite scripts and WSGI environ reads that are not the app's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.project.init import inspect_project

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
