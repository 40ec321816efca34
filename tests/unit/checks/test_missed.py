"""Issue #16, problems the checks missed on real apps: each class has a small app that must fire and one
that must not (written to disk and checked as `deploy check` does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.checks.support import CONFIG, check, found, imported_by_app, project

pytestmark = pytest.mark.unit

TWO_HOSTS = CONFIG.replace(
    "  domains: [demo.example.com]\n", "  domains: [demo.example.com]\n  hosts: [web1, web2]\n"
)
ONE_HOST = CONFIG.replace(
    "  domains: [demo.example.com]\n", "  domains: [demo.example.com]\n  hosts: [web1]\n"
)


def _findings(tmp_path: Path, check_id: str, files: dict[str, str | None], config: str | None) -> list[str]:
    root = project(tmp_path, imported_by_app(files))  # the fixture's modules are code the app runs
    if config is not None:
        (root / "deploy.yaml").write_text(config, encoding="utf-8")
    report = check(root, [check_id], config=config)
    assert not report.skipped, report.skipped
    return found(report).get(check_id, [])


# --- XL006: SQLite through config defaults, DATABASE, sqlite3.connect and app.env ------------------

FLASKBB_STYLE = """\
import os


class DefaultConfig:
    basedir = os.path.dirname(os.path.dirname(__file__))
    SQLALCHEMY_DATABASE_URI = "sqlite:///" + basedir + "/" + "forum.sqlite"
"""

FLASKR_STYLE = """\
import os
import sqlite3

from flask import Flask, current_app


def create_app():
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=os.environ["SECRET_KEY"],
        DATABASE=os.path.join(app.instance_path, "flaskr.sqlite"),
    )
    return app


def get_db():
    return sqlite3.connect(current_app.config["DATABASE"])
"""

ENV_DEFAULT = """\
import os

SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", f"sqlite:///{os.getcwd()}/app.db")
"""


ENGINE = (
    "from sqlalchemy import create_engine\n\n\ndef connect(path):\n"
    "    return create_engine('sqlite:///{0}'.format(path), echo=False)\n"
)
MEMORY_ENGINE = "from sqlalchemy import create_engine\n\nengine = create_engine('sqlite://')\n"


@pytest.mark.parametrize(
    ("files", "config", "says"),
    [
        ({"books/db.py": ENGINE}, TWO_HOSTS, "books/db.py:5 SQLite (create_engine) on 2 hosts"),
        ({"myforum/configs/default.py": FLASKBB_STYLE}, TWO_HOSTS, "myforum/configs/default.py:6 SQLite"),
        ({"flaskr.py": FLASKR_STYLE}, TWO_HOSTS, "flaskr.py:11 SQLite (DATABASE)"),
        ({"flaskr.py": FLASKR_STYLE}, TWO_HOSTS, "flaskr.py:17 SQLite (sqlite3.connect)"),
        ({"config.py": ENV_DEFAULT}, TWO_HOSTS, "the default when DATABASE_URL is unset"),
        (
            {},
            TWO_HOSTS.replace(
                "  secrets: [SECRET_KEY]\n",
                "  secrets: [SECRET_KEY]\n  env: {DATABASE_URL: 'sqlite:////srv/demo/shared/app.db'}\n",
            ),
            "deploy.yaml:5 SQLite (DATABASE_URL in app.env)",
        ),
    ],
)
def test_xl006_finds_sqlite_through_config(
    tmp_path: Path, files: dict[str, str | None], config: str, says: str
) -> None:
    result = _findings(tmp_path, "XL006", files, config)
    assert any(says in f for f in result), result


@pytest.mark.parametrize(
    ("files", "config"),
    [
        ({"myforum/configs/default.py": FLASKBB_STYLE}, ONE_HOST),
        ({"flaskr.py": FLASKR_STYLE}, ONE_HOST),
        ({"books/db.py": ENGINE}, ONE_HOST),
        ({"books/db.py": MEMORY_ENGINE}, TWO_HOSTS),
        # deploy.yaml gives DATABASE_URL: the SQLite fallback never applies.
        (
            {"config.py": ENV_DEFAULT},
            TWO_HOSTS.replace("secrets: [SECRET_KEY]", "secrets: [SECRET_KEY, DATABASE_URL]"),
        ),
        (
            {"config.py": ENV_DEFAULT},
            TWO_HOSTS.replace(
                "  secrets: [SECRET_KEY]\n",
                "  secrets: [SECRET_KEY]\n  env: {DATABASE_URL: 'postgresql://db.internal/app'}\n",
            ),
        ),
        (
            {
                "config.py": "import os\n\nSQLALCHEMY_DATABASE_URI = os.environ['DATABASE_URL']\n"
                "DATABASE = 'shop'\n"
            },
            TWO_HOSTS,
        ),
    ],
)
def test_xl006_quiet_without_sqlite_on_several_hosts(
    tmp_path: Path, files: dict[str, str | None], config: str
) -> None:
    assert _findings(tmp_path, "XL006", files, config) == []


# --- SEC023: a key generated per process, or generated and written to a file ----------------------

KEY_FILE_APP = """\
import os
import secrets

from flask import Flask


def init_app_secret(datastore):
    path = os.path.join(datastore, "secret.txt")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        secret = secrets.token_hex(32)
        with open(path, "w", encoding="utf-8") as f:
            f.write(secret)
        return secret


def create_app():
    app = Flask(__name__)
    app.secret_key = init_app_secret(os.environ.get("DATASTORE", "/srv/demo/shared"))
    return app
"""

KEY_IN_PATH_APP = """\
from pathlib import Path
import secrets

from flask import Flask


def create_app():
    app = Flask(__name__, instance_relative_config=True)
    key_file = Path(app.instance_path) / "secret_key"
    if key_file.exists():
        key = key_file.read_text()
    else:
        key = secrets.token_urlsafe(32)
        key_file.write_text(key)
    app.secret_key = key
    return app
"""

FALLBACK_APP = """\
import os

from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.getenv("SHOP_SECRET_KEY") or os.urandom(24)
    return app
"""

GUARDED_APP = """\
import os

from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config.from_prefixed_env()
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = os.urandom(24)
    return app
"""

CONFIG_OBJECT = """\
import os


class Config:
    def __init__(self):
        self.SECRET_KEY = os.urandom(32)
"""


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (
            {"app.py": KEY_FILE_APP},
            "app.py:21 SECRET_KEY is generated (app.py:13) and written to a file (line 14)",
        ),
        ({"app.py": KEY_IN_PATH_APP}, "app.py:15 SECRET_KEY is generated (app.py:13) and written to a file"),
        ({"app.py": FALLBACK_APP}, "app.py:8 SECRET_KEY is generated when SHOP_SECRET_KEY is unset"),
        ({"app.py": GUARDED_APP}, "app.py:10 SECRET_KEY is generated when none is configured"),
        (
            {"settings/config.py": CONFIG_OBJECT},
            "settings/config.py:6 SECRET_KEY is generated at every start",
        ),
    ],
)
def test_sec023_finds_generated_keys(tmp_path: Path, files: dict[str, str | None], says: str) -> None:
    result = _findings(tmp_path, "SEC023", files, CONFIG)
    assert any(says in f for f in result), result
    assert "deploy.yaml app.secrets" in result[0]


def test_sec023_names_the_variable_the_app_reads(tmp_path: Path) -> None:
    (result,) = _findings(tmp_path, "SEC023", {"app.py": FALLBACK_APP}, None)
    assert result.endswith("set SHOP_SECRET_KEY in deploy.yaml app.secrets")


@pytest.mark.parametrize(
    ("files", "config"),
    [
        # deploy.yaml gives the variable the app reads first: the generated key is never used.
        ({"app.py": FALLBACK_APP}, CONFIG.replace("secrets: [SECRET_KEY]", "secrets: [SHOP_SECRET_KEY]")),
        (
            {"app.py": FALLBACK_APP.replace("os.getenv", "os.environ.get")},
            CONFIG.replace("SECRET_KEY]", "SHOP_SECRET_KEY]"),
        ),
        # Generated only when unset, and deploy.yaml sets it through from_prefixed_env().
        ({"app.py": GUARDED_APP}, CONFIG.replace("secrets: [SECRET_KEY]", "secrets: [FLASK_SECRET_KEY]")),
        # The clean app reads SECRET_KEY from the environment; random tokens elsewhere are not keys.
        (
            {"tokens.py": "import secrets\n\ndef reset_token():\n    return secrets.token_urlsafe(16)\n"},
            CONFIG,
        ),
        (
            {
                "upload.py": "import uuid\n\ndef save(f):\n    name = uuid.uuid4().hex\n"
                "    open(name, 'wb').write(f)\n"
            },
            CONFIG,
        ),
    ],
)
def test_sec023_quiet_when_the_key_is_given(
    tmp_path: Path, files: dict[str, str | None], config: str
) -> None:
    assert _findings(tmp_path, "SEC023", files, config) == []


def test_sec003_leaves_generated_fallbacks_to_sec023(tmp_path: Path) -> None:
    assert _findings(tmp_path, "SEC003", {"app.py": FALLBACK_APP}, CONFIG) == []


OAUTH = """\
def exchange(config):
    if config["GITHUB_URL"] == "https://github.com":
        token_endpoint = "https://github.com/login/oauth/access_token"
    preferred_token_auth_method = "client_secret_post"
    slack_token = "https://hooks.slack.com/services/T0000000/B0000000/XXXXyyyyZZZZwwww11112222"
    api_token = "s3cr3t-Tok3n"
    return token_endpoint, preferred_token_auth_method, slack_token, api_token
"""


def test_sec008_an_endpoint_address_and_a_method_name_are_no_credentials(tmp_path: Path) -> None:
    """alerta: an OAuth token endpoint's URL and the token auth method's name were two high SEC008s; a
    webhook URL carrying a token and a password-like value still are."""
    assert _findings(tmp_path, "SEC008", {"auth.py": OAUTH}, CONFIG) == [
        "auth.py:5 slack_token is given a literal credential value",
        "auth.py:6 api_token is given a literal credential value",
    ]


def test_sec021_leaves_out_example_and_documentation_pages(tmp_path: Path) -> None:
    """alerta: eight high SEC021s on examples/oembed*.html, pages for the user to copy into another site."""
    page = '<html><head><script src="http://ajax.googleapis.com/jquery.js"></script></head></html>\n'
    files: dict[str, str | None] = {
        "examples/oembed.html": page,
        "docs/api.html": page,
        "docs/templates/page.html": page,
        "app/templates/index.html": page,
    }
    assert [f.split(" ")[0] for f in _findings(tmp_path, "SEC021", files, CONFIG)] == [
        "app/templates/index.html:1",
        "docs/templates/page.html:1",
    ]


MODEL_SERVER = """\
import pickle

from flask import Flask, jsonify, render_template, request

app = Flask(__name__)
model = pickle.load(open("model.pkl", "rb"))


@app.get("/")
def home():
    return render_template("index.html")


@app.post("/predict_api")
def predict_api():
    return jsonify(model.predict([list(request.get_json(force=True).values())])[0])
"""


def test_sec003_needs_a_key_only_where_the_app_uses_the_session(tmp_path: Path) -> None:
    """A model server that never signs a cookie needs no SECRET_KEY; the same app flashing a message does."""
    assert _findings(tmp_path / "api", "SEC003", {"app.py": MODEL_SERVER}, CONFIG) == []
    flashing = MODEL_SERVER.replace("jsonify,", "flash, jsonify,").replace(
        "    return render_template", '    flash("hi")\n    return render_template'
    )
    assert _findings(tmp_path / "flash", "SEC003", {"app.py": flashing}, CONFIG) == [
        "app.py:5 SECRET_KEY is never set"
    ]


# --- PERF005: streaming responses on sync workers ---------------------------------------------------

SSE_APP = """\
import json
import time

from flask import Blueprint, Response, stream_with_context

bp = Blueprint("live", __name__)


def ticker():
    while True:
        yield "data: " + json.dumps({"t": time.time()}) + "\\n\\n"
        time.sleep(1)


@bp.get("/events")
def events():
    return Response(ticker(), content_type="text/event-stream")


@bp.get("/export.csv")
def export():
    def rows():
        for n in range(100000):
            yield f"{n}\\n"

    return Response(stream_with_context(rows()), mimetype="text/csv")
"""

FLASK_SSE_APP = (
    "from flask_sse import sse\n\n\ndef init(app):\n    app.register_blueprint(sse, url_prefix='/stream')\n"
)
SOCKETIO_APP = "from flask_socketio import SocketIO\n\nsocketio = SocketIO()\n"


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"live.py": SSE_APP}, "live.py:17 a text/event-stream response on sync workers"),
        (
            {"live.py": SSE_APP},
            "live.py:26 stream_with_context() holds a sync worker until the generator ends",
        ),
        ({"live.py": FLASK_SSE_APP}, "live.py:1 Flask-SSE on sync workers"),
        ({"live.py": SOCKETIO_APP}, "live.py:3 Flask-SocketIO on sync workers"),
    ],
)
def test_perf005_finds_streams_on_sync_workers(
    tmp_path: Path, files: dict[str, str | None], says: str
) -> None:
    result = _findings(tmp_path, "PERF005", files, CONFIG)
    assert any(says in f for f in result), result


def test_perf005_generator_downloads_do_not_fail_the_gate(tmp_path: Path) -> None:
    root = project(tmp_path, imported_by_app({"live.py": SSE_APP}))  # served code: PERF005 keeps to it
    report = check(root, ["PERF005"], config=CONFIG)
    severities = {r.finding.line: r.severity.label for r in report.active}
    assert severities == {17: "high", 26: "low"}


@pytest.mark.parametrize(
    "config",
    [
        CONFIG + "gunicorn: {worker_class: gevent}\n",
        CONFIG + "gunicorn: {worker_class: eventlet}\n",
        # 3 workers x 40 threads: at least 100 open streams before the site stops answering.
        CONFIG + "gunicorn: {worker_class: gthread, threads: 40}\n",
        CONFIG + "gunicorn: {threads: 40}\n",
    ],
)
def test_perf005_quiet_on_workers_that_hold_many_connections(tmp_path: Path, config: str) -> None:
    assert _findings(tmp_path, "PERF005", {"live.py": SSE_APP}, config) == []


def test_perf005_quiet_without_streams(tmp_path: Path) -> None:
    plain = "from flask import Response\n\n\ndef page():\n    return Response('<p>hi</p>')\n"
    assert _findings(tmp_path, "PERF005", {"page.py": plain}, CONFIG) == []


# --- PIT006: the folder the app really writes, and never a folder of committed files -----------------

PACKAGE_APP = """\
import os

from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    os.makedirs(os.path.join(app.root_path, "uploads"), exist_ok=True)
    return app
"""

PACKAGE_LOGS = """\
import logging
from pathlib import Path

LOGS = Path(__file__).resolve().parent / "logs"


def setup():
    LOGS.mkdir(exist_ok=True)
    return logging.FileHandler(LOGS / "app.log")
"""

PACKAGE_CONFIG = """\
import os

basedir = os.path.abspath(os.path.dirname(__file__))


class Config:
    UPLOAD_FOLDER = os.path.join(basedir, "media")
"""

MODELS_APP = """\
import os

BASE = os.path.dirname(os.path.abspath(__file__))


def load():
    os.makedirs(os.path.join(BASE, "models"), exist_ok=True)
"""

TEMP_DB = """\
import os
import sqlite3
import tempfile


def snapshot(source):
    with tempfile.TemporaryDirectory() as directory:
        target = sqlite3.connect(os.path.join(directory, "copy.db"))
        source.backup(target)
"""


def _shared(*entries: str) -> str:
    return CONFIG.replace(
        "  secrets: [SECRET_KEY]\n", f"  secrets: [SECRET_KEY]\n  shared: [{', '.join(entries)}]\n"
    )


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (
            {"shop/__init__.py": PACKAGE_APP},
            "shop/__init__.py:9 os.makedirs() writes shop/uploads inside the release",
        ),
        ({"shop/__init__.py": PACKAGE_APP}, "add 'shop/uploads' to deploy.yaml app.shared"),
        ({"shop/logs.py": PACKAGE_LOGS}, "shop/logs.py:8 Path.mkdir() writes shop/logs inside the release"),
        ({"shop/logs.py": PACKAGE_LOGS}, "writes shop/logs/app.log inside the release"),
        ({"shop/config.py": PACKAGE_CONFIG}, "add 'shop/media' to deploy.yaml app.shared"),
    ],
)
def test_pit006_names_the_folder_the_app_really_writes(
    tmp_path: Path, files: dict[str, str | None], says: str
) -> None:
    result = _findings(tmp_path, "PIT006", files, _shared("uploads", "logs", "media"))
    assert any(says in f for f in result), result


@pytest.mark.parametrize(
    "files",
    [
        {"shop/__init__.py": PACKAGE_APP},
        {"shop/logs.py": PACKAGE_LOGS},
        {"shop/config.py": PACKAGE_CONFIG},
    ],
)
def test_pit006_quiet_when_the_real_folder_is_shared(tmp_path: Path, files: dict[str, str | None]) -> None:
    assert _findings(tmp_path, "PIT006", files, _shared("shop/uploads", "shop/logs", "shop/media")) == []


def test_pit006_never_advises_sharing_committed_files(tmp_path: Path) -> None:
    files = {"ml/predict.py": MODELS_APP, "ml/models/classifier.json": '{"weights": [1, 2]}\n'}
    (result,) = _findings(tmp_path, "PIT006", files, CONFIG)
    assert "do not share 'ml/models': it holds committed files (ml/models/classifier.json)" in result
    assert "add 'ml/models'" not in result


def test_pit006_quiet_for_tempfile_folders(tmp_path: Path) -> None:
    assert _findings(tmp_path, "PIT006", {"backup.py": TEMP_DB}, CONFIG) == []
    assert _findings(tmp_path, "XL006", {"backup.py": TEMP_DB}, TWO_HOSTS) == []


def test_pit006_a_log_path_without_suffix_is_a_folder(tmp_path: Path) -> None:
    config = "import os\n\nbasedir = os.path.dirname(__file__)\nLOG_PATH = os.path.join(basedir, 'logs')\n"
    (result,) = _findings(tmp_path, "PIT006", {"forum/config.py": config}, CONFIG)
    assert "add 'forum/logs' to deploy.yaml app.shared" in result


# --- SEC021: inline scripts against the strict default CSP ------------------------------------------

PAGE_WITH_HANDLERS = '<button onclick="save()">Save</button>\n<script>\n  init();\n</script>\n'

STRING_TEMPLATE_APP = '''\
from flask import Flask, render_template_string

app = Flask(__name__)

PAGE = """<!doctype html>
<title>Hi</title>
<script>alert("hi")</script>
"""


@app.get("/")
def index():
    return render_template_string(PAGE)
'''


def test_sec021_runs_without_deploy_yaml_against_the_default_policy(tmp_path: Path) -> None:
    result = _findings(tmp_path, "SEC021", {"shop/templates/base.html": PAGE_WITH_HANDLERS}, None)
    assert any(f.startswith("shop/templates/base.html:1 inline event handler onclick=") for f in result), (
        result
    )
    assert any(
        f.startswith("shop/templates/base.html:2 inline <script> is blocked by script-src") for f in result
    )


def test_sec021_reads_templates_written_in_the_source(tmp_path: Path) -> None:
    result = _findings(tmp_path, "SEC021", {"app.py": STRING_TEMPLATE_APP}, CONFIG)
    assert [f.split(":", 2)[:2] for f in result] == [["app.py", "7 inline <script> is blocked by script-src"]]


def test_sec021_quiet_for_pages_the_policy_allows(tmp_path: Path) -> None:
    clean = (
        "<script src=\"{{ url_for('static', filename='app.js') }}\"></script>\n"
        '<button class="save">Save</button>\n'
    )
    safe_string = STRING_TEMPLATE_APP.replace('<script>alert("hi")</script>', "<p>hi</p>")
    files = {"shop/templates/base.html": clean, "app.py": safe_string}
    assert _findings(tmp_path, "SEC021", files, None) == []
    assert _findings(tmp_path, "SEC021", files, CONFIG) == []


@pytest.mark.parametrize("check_id", ["PIT005", "PIT006"])
def test_sqlite_fallbacks_of_a_variable_deploy_yaml_gives_are_not_reported(
    tmp_path: Path, check_id: str
) -> None:
    files = {
        "config.py": "import os\n\nSQLALCHEMY_DATABASE_URI = os.environ.get('DATABASE_URL', 'sqlite:///app.db')\n"
    }
    assert _findings(tmp_path, check_id, files, CONFIG) != []
    given = CONFIG.replace("secrets: [SECRET_KEY]", "secrets: [SECRET_KEY, DATABASE_URL]")
    assert _findings(tmp_path / "given", check_id, files, given) == []


def test_pit006_asks_git_which_files_are_committed(tmp_path: Path) -> None:
    import subprocess

    files = {
        "ml/predict.py": MODELS_APP.replace('"models"', '"cache"'),
        "ml/cache/.gitkeep": "",
        ".gitignore": ".env\n__pycache__/\nml/cache/*\n!ml/cache/.gitkeep\n",
    }
    root = project(tmp_path, imported_by_app(files))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    # A file the app wrote while running locally: on disk, not committed.
    (root / "ml/cache/vectors.bin").write_bytes(b"\0")
    report = check(root, ["PIT006"], config=CONFIG)
    (finding,) = found(report)["PIT006"]
    assert "add 'ml/cache' to deploy.yaml app.shared" in finding


def test_sec021_fastapi_docs_pages_under_the_policy(tmp_path: Path) -> None:
    """fastapi-ml-skeleton's README says to open /docs and authorize there; behind deploy's Nginx the
    page was blank (Swagger UI from cdn.jsdelivr.net, started by an inline script)."""
    app = "from fastapi import FastAPI\n\napp = FastAPI(title='House prices', redoc_url=None)\n"
    assert _findings(tmp_path / "on", "SEC021", {"app.py": app}, CONFIG) == [
        "app.py:3 FastAPI serves /docs (Swagger UI) with scripts from https://cdn.jsdelivr.net started by "
        "an inline <script>, which script-src blocks: the page stays blank; pass docs_url=None in "
        "production, or allow it in nginx.csp_sources.script-src"
    ]
    off = app.replace("redoc_url=None", "docs_url=None, redoc_url=None")
    assert _findings(tmp_path / "off", "SEC021", {"app.py": off}, CONFIG) == []
    allowed = (
        CONFIG + 'nginx:\n  csp_sources:\n    script-src: ["https://cdn.jsdelivr.net", "\'unsafe-inline\'"]\n'
    )
    assert _findings(tmp_path / "allowed", "SEC021", {"app.py": app}, allowed) == []
