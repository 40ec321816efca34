"""Issue #16 recall: classes of real problems the checks missed on the corpus apps. Each class has a small
app that must fire and a close one that must stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import CONFIG, check, found, imported_by_app, project

pytestmark = pytest.mark.unit

WORKERS = CONFIG + "gunicorn: {workers: 3}\n"
ONE_WORKER = CONFIG + "gunicorn: {workers: 1, worker_class: gthread, threads: 8}\n"


def _findings(tmp_path: Path, check_id: str, files: dict[str, str | None], config: str) -> list[str]:
    root = project(tmp_path, imported_by_app(files))
    (root / "deploy.yaml").write_text(config, encoding="utf-8")
    report = check(root, [check_id], config=config)
    assert not report.skipped, report.skipped
    return found(report).get(check_id, [])


# --- XL003: per-process state the views change --------------------------------------------------

STATE_VIEWS = """\
import threading

from flask import Blueprint, request

bp = Blueprint("db", __name__)
datasets = {}
lock = threading.Lock()
NAMES = {"a": 1}
registry = {}
registry["x"] = 1


def _load(name):
    with lock:
        datasets[name] = object()


@bp.post("/load")
def load():
    _load(request.form["name"])
    return "ok"


@bp.get("/list")
def listing():
    seen = {}
    seen["n"] = len(datasets) + len(registry) + len(NAMES)
    return seen
"""

READ_ONLY_VIEWS = STATE_VIEWS.replace('    _load(request.form["name"])\n', "")

LIMITER = """\
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address, storage_uri="memory://")
"""

TINY = """\
from flask import current_app, g
from tinydb import TinyDB


def get_db():
    if "db" not in g:
        g.db = TinyDB(current_app.config["DB_PATH"])
    return g.db
"""


def test_xl003_module_state_changed_through_a_view_helper(tmp_path: Path) -> None:
    got = _findings(tmp_path, "XL003", {"views.py": STATE_VIEWS}, WORKERS)
    assert got == [
        "views.py:6 module-level 'datasets' is changed by a view (line 15): each of the 3 workers has its "
        "own copy, so what one request stores the next may not see"
    ]


@pytest.mark.parametrize(
    ("files", "config"),
    [({"views.py": READ_ONLY_VIEWS}, WORKERS), ({"views.py": STATE_VIEWS}, ONE_WORKER)],
    ids=["views-only-read", "one-worker"],
)
def test_xl003_module_state_quiet(tmp_path: Path, files: dict[str, str | None], config: str) -> None:
    assert _findings(tmp_path, "XL003", files, config) == []


def test_xl003_memory_rate_limits_and_tinydb(tmp_path: Path) -> None:
    got = _findings(tmp_path, "XL003", {"limits.py": LIMITER, "store.py": TINY}, WORKERS)
    assert [g.split(" ", 1)[0] for g in got] == ["limits.py:4", "store.py:7"]
    assert "limits multiply" in got[0] and "without locking" in got[1]


def test_xl003_redis_rate_limits_quiet(tmp_path: Path) -> None:
    redis = "import os\n" + LIMITER.replace('"memory://"', 'os.environ["REDIS_URL"]')
    assert _findings(tmp_path, "XL003", {"limits.py": redis}, WORKERS) == []


# --- PIT006: caches and search indexes under the project, cwd-based defaults, the instance folder --

CONSTANTS = """\
import os

BASE_DIR = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
STATIC_DIR = os.path.join(BASE_DIR, "shop", "static")
DEFAULT_CACHE_DIR = os.path.join(BASE_DIR, "shop", "cache")
"""

SEARCH_CONFIG = """\
import os
import sys
from pathlib import Path


class DefaultConfig:
    basedir = os.path.abspath(os.path.dirname(os.path.dirname(__file__)))
    WHOOSHEE_DIR = os.path.join(basedir, "whoosh_index", sys.version[:3])
    THUMBNAIL_CACHE_DIR = str(Path.cwd() / "thumbs")
"""

INSTANCE = """\
import os

from flask import Flask


def make_app():
    app = Flask("shop")
    if not os.path.exists(app.instance_path):
        os.makedirs(app.instance_path)
    return app
"""


def test_pit006_cache_index_and_instance_folders_in_the_release(tmp_path: Path) -> None:
    files: dict[str, str | None] = {
        "shop/constants.py": CONSTANTS,
        "shop/config.py": SEARCH_CONFIG,
        "shop/factory.py": INSTANCE,
    }
    got = _findings(tmp_path, "PIT006", files, WORKERS)
    where = sorted(g.split(" ", 1)[0] for g in got)
    assert where == ["shop/config.py:8", "shop/config.py:9", "shop/constants.py:5", "shop/factory.py:9"]
    assert any("add 'shop/cache' to deploy.yaml app.shared" in g for g in got)
    assert any("add 'thumbs' to deploy.yaml app.shared" in g for g in got)
    assert any("add 'instance' to deploy.yaml app.shared" in g for g in got)


def test_pit006_shared_cache_index_and_instance_quiet(tmp_path: Path) -> None:
    files: dict[str, str | None] = {
        "shop/constants.py": CONSTANTS,
        "shop/config.py": SEARCH_CONFIG,
        "shop/factory.py": INSTANCE,
    }
    config = WORKERS.replace(
        "  secrets: [SECRET_KEY]\n",
        "  secrets: [SECRET_KEY]\n  shared: [shop/cache, whoosh_index, thumbs, instance]\n",
    )
    assert _findings(tmp_path, "PIT006", files, config) == []


# --- SEC002: a module that is its own config (`app.config.from_object(__name__)`) ------------------

SELF_CONFIG = """\
from flask import Flask

DEBUG = False
SECRET_KEY = "browser-0.1.0"

app = Flask(__name__)
app.config.from_object(__name__)
"""


def test_sec002_literal_key_of_a_module_loaded_as_config(tmp_path: Path) -> None:
    got = _findings(tmp_path, "SEC002", {"browser.py": SELF_CONFIG}, WORKERS)
    assert got == ["browser.py:4 SECRET_KEY is a string literal in the source"]


def test_sec002_module_constant_not_loaded_as_config_quiet(tmp_path: Path) -> None:
    other = SELF_CONFIG.replace("app.config.from_object(__name__)\n", 'app.config.from_object("settings")\n')
    assert _findings(tmp_path, "SEC002", {"browser.py": other}, WORKERS) == []


# --- SEC023: a key a helper generates and keeps in a file -------------------------------------------

KEY_HELPER = """\
import os

from cryptography.fernet import Fernet


def get_encryption_key(key_path):
    key_file = os.path.join(key_path, ".key")
    if os.path.exists(key_file):
        with open(key_file, "rb") as f:
            return f.read()
    key = Fernet.generate_key()
    with open(key_file, "wb") as f:
        f.write(key)
    return key
"""

KEY_USER = """\
from .keys import get_encryption_key

KEY = get_encryption_key("config")
"""


def test_sec023_key_helper_in_another_module(tmp_path: Path) -> None:
    files: dict[str, str | None] = {"shop/keys.py": KEY_HELPER, "shop/store.py": KEY_USER}
    (got,) = _findings(tmp_path, "SEC023", files, WORKERS)
    assert got.startswith(
        "shop/keys.py:6 get_encryption_key() generates a key (line 11) and writes it to a file (line 12)"
    )


def test_sec023_uncalled_or_unnamed_helper_quiet(tmp_path: Path) -> None:
    unnamed = KEY_HELPER.replace("get_encryption_key", "save_upload")
    caller = KEY_USER.replace(".keys", ".up").replace("get_encryption_key", "save_upload")
    files: dict[str, str | None] = {
        "shop/keys.py": KEY_HELPER,
        "shop/up.py": unnamed,
        "shop/store.py": caller,
    }
    assert _findings(tmp_path, "SEC023", files, WORKERS) == []


# --- PERF005: Socket.IO / event streams on a small gthread pool -------------------------------------

SOCKETS = """\
from flask import Flask
from flask_socketio import SocketIO


def init_socketio(app: Flask) -> SocketIO:
    return SocketIO(app, async_mode="threading")
"""


def test_perf005_socketio_on_few_gthread_threads(tmp_path: Path) -> None:
    config = CONFIG + "gunicorn: {workers: 1, worker_class: gthread, threads: 8}\n"
    (got,) = _findings(tmp_path, "PERF005", {"realtime.py": SOCKETS}, config)
    assert got.startswith(
        "realtime.py:6 Flask-SocketIO on gthread workers: each open page holds one of the 8"
    )


@pytest.mark.parametrize(
    "gunicorn",
    ["{workers: 1, worker_class: gthread, threads: 100}", "{workers: 1, worker_class: gevent}"],
    ids=["many-threads", "gevent"],
)
def test_perf005_socketio_quiet_with_enough_threads_or_gevent(tmp_path: Path, gunicorn: str) -> None:
    config = CONFIG + f"gunicorn: {gunicorn}\n"
    assert _findings(tmp_path, "PERF005", {"realtime.py": SOCKETS}, config) == []


def test_perf005_generator_response_quiet_on_gthread(tmp_path: Path) -> None:
    streamed = "from flask import Response, stream_with_context\n\ndef rows(gen):\n"
    streamed += "    return Response(stream_with_context(gen))\n"
    config = CONFIG + "gunicorn: {workers: 2, worker_class: gthread, threads: 4}\n"
    assert _findings(tmp_path, "PERF005", {"export.py": streamed}, config) == []


# --- SEC005: state-changing routes behind HTTP Basic auth -------------------------------------------

BASIC = """\
from flask import Blueprint, Response, request

bp = Blueprint("jobs", __name__)


@bp.before_request
def basic_http_auth():
    auth = request.authorization
    if auth is None or auth.password != "secret":
        return Response("login", 401, {"WWW-Authenticate": 'Basic realm="jobs"'})


@bp.route("/requeue/<queue>", methods=["GET", "POST"])
def requeue_all(queue):
    return {"queue": queue}


@bp.post("/api/jobs")
def create(queue):
    return {"job": request.get_json()["name"]}
"""


def test_sec005_state_change_behind_basic_auth(tmp_path: Path) -> None:
    files: dict[str, str | None] = {"jobs.py": BASIC, "app.py": None}
    root = project(tmp_path, files)
    got = found(check(root, ["SEC005"], config=WORKERS)).get("SEC005", [])
    assert [g.split(" (", 1)[0] for g in got] == ["jobs.py:14 GET, POST /requeue/<queue>"]
    assert "behind HTTP Basic auth (jobs.py:7)" in got[0]


def test_sec005_same_routes_without_basic_auth_quiet(tmp_path: Path) -> None:
    no_basic = BASIC.replace("request.authorization", "request.headers.get('X-Token')")
    root = project(tmp_path, {"jobs.py": no_basic, "app.py": None})
    assert found(check(root, ["SEC005"], config=WORKERS)).get("SEC005", []) == []


# --- PIT001: the dependencies are declared in setup.py -----------------------------------------------

SETUP = """\
from setuptools import setup

setup(name="jobs", install_requires=["rq>=1.0", "Flask", "redis"])
"""


def test_pit001_no_server_in_setup_py_install_requires(tmp_path: Path) -> None:
    files: dict[str, str | None] = {"setup.py": SETUP, "requirements.txt": None}
    got = _findings(tmp_path, "PIT001", files, WORKERS)
    assert [g.split(" ", 1)[1] for g in got] == [
        "no production WSGI server (gunicorn, uwsgi, waitress) among the requirements"
    ]


def test_pit001_server_in_setup_py_quiet(tmp_path: Path) -> None:
    files: dict[str, str | None] = {
        "setup.py": SETUP.replace('"redis"', '"redis", "gunicorn>=22"'),
        "requirements.txt": None,
    }
    assert _findings(tmp_path, "PIT001", files, WORKERS) == []
