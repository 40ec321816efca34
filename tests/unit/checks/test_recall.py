"""Issue #16 recall: classes of real problems the checks missed on the corpus apps. Each class has a small
app that must fire and a close one that must stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import CONFIG, check, found, project

pytestmark = pytest.mark.unit

WORKERS = CONFIG + "gunicorn: {workers: 3}\n"
ONE_WORKER = CONFIG + "gunicorn: {workers: 1, worker_class: gthread, threads: 8}\n"


def _findings(tmp_path: Path, check_id: str, files: dict[str, str | None], config: str) -> list[str]:
    root = project(tmp_path, files)
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
