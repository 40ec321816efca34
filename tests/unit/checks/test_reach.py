"""Code production never runs is not reported (issue #16): a finding in a module the served entry point
never imports, transitively, is dropped; one the served code imports is kept; with no entry point known,
every module counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.checks.support import CONFIG, check, found, imported_by_app, project

pytestmark = pytest.mark.unit

#: A CLI importer (read with the project, never imported by app.py): builds SQL from strings and opens
#: a SQLite file, like a command that loads a browser's bookmarks.
IMPORTER = """\
import sqlite3


def load(path, table):
    db = sqlite3.connect(path)
    return db.execute(f"SELECT id FROM {table}").fetchall()
"""

SQL_IN = ("SEC009", "PIT005", "XL003")


def _findings(root: Path, config: str | None = CONFIG) -> dict[str, list[str]]:
    return found(check(root, list(SQL_IN), config=config))


def test_module_the_served_app_never_imports_is_quiet(tmp_path: Path) -> None:
    project(tmp_path, {"tools/importer.py": IMPORTER})
    out = _findings(tmp_path)
    assert not [f for fs in out.values() for f in fs if f.startswith("tools/importer.py")], out


def test_module_the_served_app_imports_is_reported(tmp_path: Path) -> None:
    project(tmp_path, {"importer.py": IMPORTER})
    app = (tmp_path / "app.py").read_text(encoding="utf-8")
    (tmp_path / "app.py").write_text(app.replace("import logging\n", "import logging\nimport importer\n", 1))
    out = _findings(tmp_path)
    for cid in ("SEC009", "PIT005"):
        assert any(f.startswith("importer.py:") for f in out.get(cid, [])), (cid, out)


def test_unknown_entry_point_keeps_every_module(tmp_path: Path) -> None:
    # no deploy.yaml, no server command, no module creating a Flask app: nothing to tell what is served
    project(tmp_path, {"importer.py": IMPORTER}, base=False)
    out = _findings(tmp_path, config=None)
    assert any(f.startswith("importer.py:") for f in out.get("SEC009", [])), out


def test_main_guarded_call_in_served_module_is_quiet(tmp_path: Path) -> None:
    project(tmp_path)
    app = (tmp_path / "app.py").read_text(encoding="utf-8")
    (tmp_path / "app.py").write_text(
        app + '\n\nif __name__ == "__main__":\n    import sqlite3\n    sqlite3.connect("scratch.db")\n'
    )
    out = _findings(tmp_path)
    assert not [f for fs in out.values() for f in fs if f.startswith("app.py:")], out


# --- one view under two rules is one finding -------------------------------------------------------

TWO_RULES = """\
from flask import Flask, request

app = Flask(__name__)


@app.route("/topic/<int:id>/new", methods=["POST"])
@app.route("/topic/new", methods=["POST"])
def new_topic(id=None):
    return {"title": request.form["title"]}
"""


def test_view_under_two_rules_is_reported_once_naming_both(tmp_path: Path) -> None:
    project(tmp_path, {"app.py": TWO_RULES})
    out = found(check(tmp_path, ["SEC007"], config=CONFIG.replace("app:create_app()", "app:app")))
    assert len(out.get("SEC007", [])) == 1, out
    assert "/topic/<int:id>/new" in out["SEC007"][0] and "/topic/new" in out["SEC007"][0], out


def test_two_views_are_two_findings(tmp_path: Path) -> None:
    two = TWO_RULES.replace('@app.route("/topic/new", methods=["POST"])\n', "") + (
        '\n\n@app.post("/post/new")\ndef new_post():\n    return {"body": request.form["body"]}\n'
    )
    project(tmp_path, {"app.py": two})
    out = found(check(tmp_path, ["SEC007"], config=CONFIG.replace("app:create_app()", "app:app")))
    assert len(out.get("SEC007", [])) == 2, out


def test_entry_module_outside_the_project_keeps_every_module(tmp_path: Path) -> None:
    # deploy.yaml names a wrapper the user writes on the host: what it imports is not known here
    project(tmp_path, {"tools/importer.py": IMPORTER})
    out = _findings(tmp_path, config=CONFIG.replace("app:create_app()", "site_wsgi:app"))
    assert any(f.startswith("tools/importer.py:") for f in out.get("SEC009", [])), out


# --- a read-only SQLite connection is not the app's database ---------------------------------------

READ_ONLY = """\
import sqlite3


def import_bookmarks(path):
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True).execute("SELECT url FROM b").fetchall()
"""


@pytest.mark.parametrize("check_id", ["PIT005", "XL003"])
def test_read_only_sqlite_connection_is_quiet(tmp_path: Path, check_id: str) -> None:
    project(tmp_path, imported_by_app({"bookmarks.py": READ_ONLY}))
    out = found(check(tmp_path, [check_id], config=CONFIG + "gunicorn: {workers: 3}\n"))
    assert not [f for f in out.get(check_id, []) if f.startswith("bookmarks.py")], out


def test_writable_sqlite_connection_is_reported(tmp_path: Path) -> None:
    writable = READ_ONLY.replace('"file:%s?mode=ro" % path, uri=True', "path")
    project(tmp_path, imported_by_app({"bookmarks.py": writable}))
    out = found(check(tmp_path, ["PIT005"], config=CONFIG + "gunicorn: {workers: 3}\n"))
    assert any(f.startswith("bookmarks.py:5") for f in out.get("PIT005", [])), out


#: An event stream, as vendored copies of socket libraries (sockjs-tornado) have one.
STREAM = """\
from flask import Response


def events(gen):
    return Response(gen, mimetype="text/event-stream")
"""


@pytest.mark.parametrize(
    "folder", ["pkg/vendor/sockjs", "pkg/_vendor/lib", "third_party/lib", "node_modules/x", "vendored"]
)
def test_vendored_copies_are_never_scanned_even_when_the_app_imports_them(
    tmp_path: Path, folder: str
) -> None:
    """Other people's code kept inside the project is not the app's: no source check reports it, even
    when the served app imports it (the served-module reachability never reaches it either)."""
    files = imported_by_app({f"{folder}/stream.py": STREAM, f"{folder}/__init__.py": ""})
    project(tmp_path, files)
    out = found(check(tmp_path, ["PERF005", *SQL_IN], config=CONFIG))
    assert not [f for fs in out.values() for f in fs if f.startswith(folder)], out


def test_the_same_code_of_the_apps_own_is_reported(tmp_path: Path) -> None:
    project(tmp_path, imported_by_app({"pkg/live/stream.py": STREAM, "pkg/live/__init__.py": ""}))
    out = found(check(tmp_path, ["PERF005"], config=CONFIG))
    assert any(f.startswith("pkg/live/stream.py:") for f in out.get("PERF005", [])), out


def test_streams_of_another_server_the_entry_never_imports_are_quiet(tmp_path: Path) -> None:
    """PERF005 keeps to served code: a Tornado side server's module that the WSGI entry never imports."""
    project(tmp_path, {"pkg/tornado_side.py": STREAM})
    assert "PERF005" not in found(check(tmp_path, ["PERF005"], config=CONFIG))
