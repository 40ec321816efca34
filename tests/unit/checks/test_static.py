"""Every source, project and config check: one failing and one passing fixture, on a real project on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.checker.layers import Layer
from deploy.checker.registry import load_checks
from tests.unit.checks.support import CLEAN_APP, CONFIG, check, found, imported_by_app, project

pytestmark = pytest.mark.unit

NO_TLS = CONFIG.replace("  tls: {email: ops@example.com}\n", "")


def app_with(old: str, new: str) -> dict[str, str | None]:
    assert old in CLEAN_APP, old
    return {"app.py": CLEAN_APP.replace(old, new)}


@dataclass
class Case:
    bad: dict[str, str | None]
    good: dict[str, str | None] = field(default_factory=dict)
    config: str | None = CONFIG
    good_config: str | None = None
    #: A fragment the failing finding's message must contain.
    says: str = ""


SINGLE = """\
import os
from flask import Flask
app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]

@app.get("/health")
def health():
    return "ok"
"""

#: An inline script, sha256 5KYv+PUb... (SEC021 fires until deploy.yaml lists that hash).
NOTES_WITH_SCRIPT = '<form method="post">{{ form.hidden_tag() }}<script>go()</script></form>\n'

USER_MODEL = """\
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()

class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    nickname = db.Column(db.String(80))
"""
DROP_NICKNAME = """\
from alembic import op

revision = "b2"
down_revision = "a1"


def upgrade():
    op.drop_column("user", "nickname")
"""

CASES: dict[str, Case] = {
    "SEC001": Case(
        bad=app_with("SESSION_COOKIE_SECURE=True,", "SESSION_COOKIE_SECURE=True, DEBUG=True,"),
        good=app_with("SESSION_COOKIE_SECURE=True,", "SESSION_COOKIE_SECURE=True, DEBUG=False,"),
        says="DEBUG is set to True",
    ),
    "SEC002": Case(
        bad=app_with('SECRET_KEY=os.environ["SECRET_KEY"]', 'SECRET_KEY=os.environ.get("SECRET_KEY", "dev")'),
        says="falls back to a literal",
    ),
    "SEC003": Case(
        bad=app_with('SECRET_KEY=os.environ["SECRET_KEY"],', ""),
        good=app_with('SECRET_KEY=os.environ["SECRET_KEY"],', "")
        | {"extra.py": "def x(app):\n    app.config.from_prefixed_env()\n"},
        says="never set",
    ),
    "SEC004": Case(bad={}, config=NO_TLS, good_config=CONFIG, says="plain HTTP"),
    "SEC005": Case(
        bad=app_with("    csrf.init_app(app)\n", "")
        | {
            "views.py": (
                "from flask import Blueprint, request\nbp = Blueprint('v', __name__)\n\n"
                "@bp.post('/comment')\ndef comment():\n    return request.form['text']\n"
            )
        },
        good=app_with("    csrf.init_app(app)\n", "")
        | {
            "views.py": (
                "from flask import Blueprint\nfrom app import NoteForm\nbp = Blueprint('v', __name__)\n\n"
                "@bp.post('/comment')\ndef comment():\n    form = NoteForm()\n    "
                "form.validate_on_submit()\n    return ''\n"
            )
        },
        says="POST /comment (comment) reads request.form",
    ),
    "SEC006": Case(
        bad={},
        config=None,
        good={
            "headers.py": (
                "def secure(app):\n    @app.after_request\n    def h(response):\n"
                "        response.headers['Content-Security-Policy'] = \"default-src 'self'\"\n"
                "        response.headers['X-Content-Type-Options'] = 'nosniff'\n"
                "        response.headers['X-Frame-Options'] = 'DENY'\n"
                "        response.headers['Strict-Transport-Security'] = 'max-age=63072000'\n      "
                "  return response\n"
            )
        },
        says="does not set",
    ),
    "SEC007": Case(
        bad={
            "api.py": "from flask import Blueprint, request\nbp = Blueprint('a', __name__)\n\n"
            "@bp.put('/item')\ndef put():\n    data = request.get_json()\n    return data\n"
        },
        good={
            "api.py": (
                "from flask import Blueprint, request\nfrom schemas import ItemSchema\nbp = "
                "Blueprint('a', __name__)\n\n"
                "@bp.put('/item')\ndef put():\n    data = ItemSchema().load(request.get_json())\n  "
                "  return data\n"
            )
        },
        says="request.json with no validation",
    ),
    "SEC008": Case(
        bad={"mail.py": 'SMTP_PASSWORD = "hunter2hunter2"\n'},
        good={"mail.py": 'import os\nSMTP_PASSWORD = os.environ["SMTP_PASSWORD"]\n'},
        says="SMTP_PASSWORD",
    ),
    "SEC009": Case(
        bad={
            "db.py": 'def find(db, name):\n    return db.execute(f"SELECT * FROM user WHERE name '
            "= '{name}'\")\n"
        },
        good={
            "db.py": "def find(db, name):\n    return db.execute('SELECT * FROM user WHERE name = "
            "?', (name,))\n"
        },
        says="f-string",
    ),
    "SEC010": Case(
        bad=app_with("SESSION_COOKIE_SECURE=True,", ""),
        good=app_with(
            "SESSION_COOKIE_SECURE=True,",
            'SESSION_COOKIE_SECURE=os.environ.get("COOKIE_SECURE", "1") == "1",',
        ),
        says="not set",
    ),
    "SEC011": Case(
        bad=app_with(
            "SESSION_COOKIE_SECURE=True,", "SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=False,"
        ),
        good=app_with(
            "SESSION_COOKIE_SECURE=True,", "SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True,"
        ),
    ),
    "SEC012": Case(
        bad=app_with('SESSION_COOKIE_SAMESITE="Lax",', "SESSION_COOKIE_SAMESITE=None,"),
        good=app_with('SESSION_COOKIE_SAMESITE="Lax",', 'SESSION_COOKIE_SAMESITE="Strict",'),
        says="None",
    ),
    "SEC013": Case(
        bad=app_with('TRUSTED_HOSTS=["demo.example.com"],', ""),
        config=None,
        good={},
        says="Host header",
    ),
    "SEC014": Case(
        bad=app_with(
            "SESSION_COOKIE_SECURE=True,",
            'SESSION_COOKIE_SECURE=True, SECRET_KEY_FALLBACKS=["old-key-1234"],',
        ),
        good=app_with(
            "SESSION_COOKIE_SECURE=True,",
            'SESSION_COOKIE_SECURE=True, SECRET_KEY_FALLBACKS=os.environ.get("OLD", "").split(),',
        ),
    ),
    "SEC015": Case(bad=app_with("MAX_CONTENT_LENGTH=1024 * 1024,", ""), config=None, good={}),
    "SEC022": Case(
        bad={"static/settings.py": "SECRET_KEY = 'x'\n"},
        good={"static/style.css": "body {}\n"},
        says="app.static.dir 'static' holds static/settings.py: Nginx would serve code to anyone",
    ),
    "SEC023": Case(
        bad=app_with(
            'SECRET_KEY=os.environ["SECRET_KEY"],',
            'SECRET_KEY=os.environ.get("SECRET_KEY") or os.urandom(24),',
        ),
        good=app_with(
            'SECRET_KEY=os.environ["SECRET_KEY"],',
            'SECRET_KEY=os.environ.get("SECRET_KEY") or os.urandom(24),',
        ),
        config=CONFIG.replace("  secrets: [SECRET_KEY]\n", ""),
        good_config=CONFIG,
        says="SECRET_KEY is generated when SECRET_KEY is unset",
    ),
    "PERF005": Case(
        bad={
            "live.py": "from flask import Response\n\ndef events(gen):\n"
            "    return Response(gen, mimetype='text/event-stream')\n"
        },
        good={
            "live.py": "from flask import Response\n\ndef events(gen):\n"
            "    return Response(gen, mimetype='text/event-stream')\n"
        },
        good_config=CONFIG + "gunicorn: {worker_class: gevent}\n",
        says="a text/event-stream response on sync workers",
    ),
    "PERF001": Case(
        bad={},
        config=CONFIG + "  cores: 2\ngunicorn: {workers: 4}\n",
        good_config=CONFIG + "  cores: 2\ngunicorn: {workers: 5}\n",
        says="(2 x 2) + 1 = 5",
    ),
    "PERF002": Case(
        bad={},
        config=CONFIG.replace("  static: {url: /static, dir: static}\n", ""),
        good_config=CONFIG,
        says="static/ exists",
    ),
    "PERF003": Case(
        bad={
            "app.py": CLEAN_APP.replace("from flask_caching import Cache\n", "")
            .replace("cache = Cache()\n", "")
            .replace("    cache.init_app(app)\n", ""),
            "views.py": "from flask import Blueprint\nfrom .models import Product\n"
            "bp = Blueprint('v', __name__)\n\n@bp.get('/top')\ndef top():\n"
            "    return {'top': Product.query.limit(10).all()}\n",
        },
        good={},
        says="/top (top) runs a database query on every request",
    ),
    "PERF004": Case(
        bad={"db.py": "import psycopg2\n\ndef get_db():\n    return psycopg2.connect('dbname=app')\n"},
        good={
            "db.py": "from psycopg2.pool import ThreadedConnectionPool\nimport psycopg2\n\ndef "
            "get_db():\n    return psycopg2.connect('dbname=app')\n"
        },
        says="without a pool",
    ),
    "OBS001": Case(
        bad=app_with('    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))\n', ""),
        good=app_with(
            '    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))\n',
            "    logging.config.dictConfig({})\n",
        ),
    ),
    "OBS002": Case(bad=app_with('@app.get("/health")', '@app.get("/status")'), good={}, says="/health"),
    "OBS003": Case(bad=app_with('    sentry_sdk.init(dsn=os.environ.get("SENTRY_DSN"))\n', ""), good={}),
    "OBS004": Case(
        bad=app_with(
            'sentry_sdk.init(dsn=os.environ.get("SENTRY_DSN"))',
            'sentry_sdk.init(dsn="https://abc@o1.ingest.sentry.io/1")',
        ),
        good={},
    ),
    "DEP001": Case(bad={"Dockerfile": None}, config=None, good={}),
    "DEP002": Case(
        bad={"requirements.txt": "Flask>=3\nFlask-WTF==1.3.0\ngunicorn\n"},
        good={"requirements.txt": "Flask==3.1.3\nFlask-WTF==1.3.0\ngunicorn==23.0.0\n"},
        says="Flask is not pinned",
    ),
    "DEP003": Case(
        bad={"Dockerfile": "FROM python:3.11.9-slim\nENV SECRET_KEY=abc123abc123\nCOPY . .\n"},
        good={
            "Dockerfile": "FROM python:3.11.9-slim\nENV LOG_LEVEL=info\nCOPY . .\n",
            ".env": "SECRET_KEY=x\n",
        },
        says="SECRET_KEY is baked into the image",
    ),
    "DEP004": Case(
        bad={".env": "SECRET_KEY=abc\n", ".gitignore": "__pycache__/\n"}, good={".env": "SECRET_KEY=abc\n"}
    ),
    "DEP005": Case(
        bad={
            "models.py": "from flask_sqlalchemy import SQLAlchemy\ndb = SQLAlchemy()\n\ndef "
            "init(app):\n    db.create_all()\n"
        },
        good={
            "models.py": "from flask_sqlalchemy import SQLAlchemy\ndb = SQLAlchemy()\n",
            "migrations/env.py": "# alembic env\n",
        },
        config=None,
        says="no migrations",
    ),
    "DEP008": Case(
        bad={"requirements.txt": "Flask==2.2.3\ngunicorn==23.0.0\n"},
        good={"requirements.txt": "Flask==2.2.3\nWerkzeug<3\ngunicorn==23.0.0\n"},
        config=None,
        says="add `Werkzeug<3` to requirements.txt",
    ),
    "PIT001": Case(
        bad={"Dockerfile": "FROM python:3.11.9-slim\nCOPY . .\nCMD flask --app app run --host 0.0.0.0\n"},
        good={},
        says="development server",
    ),
    "PIT002": Case(bad={"app.py": SINGLE}, good={}, says="module level"),
    "PIT003": Case(
        bad={
            "requirements.txt": "Flask==3.1.3\ngunicorn==23.0.0\n",
            "app.py": CLEAN_APP.replace(
                "from flask_wtf import FlaskForm\nfrom flask_wtf.csrf import CSRFProtect\n", ""
            ).replace("class NoteForm(FlaskForm):", "class NoteForm:"),
            "templates/notes.html": '<form method="POST"><input name="text"></form>\n',
        },
        good={},
        says="POST form",
    ),
    "PIT004": Case(
        bad={},
        config=CONFIG + "gunicorn: {workers: 1}\n",
        good_config=CONFIG + "gunicorn: {workers: 1, worker_class: gthread, threads: 8}\n",
    ),
    "PIT005": Case(
        bad=app_with(
            'CACHE_TYPE="RedisCache",', 'CACHE_TYPE="RedisCache", SQLALCHEMY_DATABASE_URI="sqlite:///app.db",'
        ),
        good=app_with(
            'CACHE_TYPE="RedisCache",',
            'CACHE_TYPE="RedisCache", SQLALCHEMY_DATABASE_URI=os.environ["DATABASE_URL"],',
        ),
        says="SQLite",
    ),
    "XL001": Case(
        bad={},
        config=NO_TLS,
        good_config=CONFIG,
        says="never comes back",
    ),
    "XL002": Case(
        bad=app_with("MAX_CONTENT_LENGTH=1024 * 1024,", "MAX_CONTENT_LENGTH=64 * 1024 * 1024,"),
        good=app_with("MAX_CONTENT_LENGTH=1024 * 1024,", "MAX_CONTENT_LENGTH=16 * 1024 * 1024,"),
        says="16m",
    ),
    "XL003": Case(
        bad=app_with('CACHE_TYPE="RedisCache",', 'CACHE_TYPE="SimpleCache",'),
        good=app_with('CACHE_TYPE="RedisCache",', 'CACHE_TYPE="SimpleCache",'),
        good_config=CONFIG + "gunicorn: {workers: 1, worker_class: gthread, threads: 8}\n",
        # workers: auto is decided on each host; the message must not invent a number.
        says="with 2 × cores + 1 workers (auto)",
    ),
    "XL006": Case(
        bad=app_with(
            'CACHE_TYPE="RedisCache",', 'CACHE_TYPE="RedisCache", SQLALCHEMY_DATABASE_URI="sqlite:///app.db",'
        ),
        good=app_with(
            'CACHE_TYPE="RedisCache",', 'CACHE_TYPE="RedisCache", SQLALCHEMY_DATABASE_URI="sqlite:///app.db",'
        ),
        # The base runs on one host; production's overlay on two: that is where the data would split.
        config=CONFIG
        + "environments:\n  production:\n    server: {hosts: [web1.example.com, web2.example.com]}\n",
        good_config=CONFIG + "environments:\n  production:\n    server: {hosts: [web1.example.com]}\n",
        says="SQLite (SQLALCHEMY_DATABASE_URI) on 2 hosts (environment production): one database per host",
    ),
    "SEC019": Case(
        bad={
            "views.py": "from flask import Blueprint, render_template_string, request\n"
            "bp = Blueprint('v', __name__)\n\n@bp.get('/hello')\ndef hello():\n"
            "    name = request.args.get('name', '')\n"
            "    return render_template_string('<h1>' + name + '</h1>')\n"
        },
        good={
            "views.py": "from flask import Blueprint, render_template_string, request\n"
            "bp = Blueprint('v', __name__)\n\n@bp.get('/hello')\ndef hello():\n"
            "    name = request.args.get('name', '')\n"
            "    return render_template_string('<h1>{{ name }}</h1>', name=name)\n"
        },
        says="request.args is put into it by string concatenation",
    ),
    "PIT006": Case(
        bad={
            "logs.py": "import logging, os\nos.makedirs('logs', exist_ok=True)\n"
            "handler = logging.FileHandler('logs/app.log')\n"
        },
        good={
            "logs.py": "import logging, os\nos.makedirs('logs', exist_ok=True)\n"
            "handler = logging.FileHandler('logs/app.log')\n"
        },
        good_config=CONFIG.replace(
            "  secrets: [SECRET_KEY]\n", "  secrets: [SECRET_KEY]\n  shared: [logs]\n"
        ),
        says="writes logs inside the release",
    ),
    "SEC020": Case(
        bad={".env": "SECRET_KEY=not-so-secret\n"},
        good={".env": "SECRET_KEY=5f1c0a7e9b3d4c2a8e6f0b1d3c5a7e9f2b4d6c8a0e1f3b5d7c9a1e3f5b7d9c0a\n"},
        says="SECRET_KEY from .env is a well-known placeholder; push would ship it",
    ),
    "SEC021": Case(
        bad={"templates/notes.html": NOTES_WITH_SCRIPT},
        good={"templates/notes.html": NOTES_WITH_SCRIPT},
        good_config=CONFIG
        + "nginx: {csp_sources: {script-src: [\"'sha256-5KYv+PUboo5h+0+YAtGRPbwv5d/QxzHslP4YGnUaxRw='\"]}}\n",
        says="templates/notes.html:1 inline <script> is blocked by script-src: add 'sha256-5KYv+PUboo5h",
    ),
    "XL004": Case(
        bad={".env": "FLASK_DEBUG=1\n"},
        good={".env": "FLASK_DEBUG=0\n"},
        says="FLASK_DEBUG",
    ),
    "XL005": Case(
        bad={
            "headers.py": "def secure(app):\n    @app.after_request\n    def h(response):\n"
            "        response.headers['X-Frame-Options'] = 'SAMEORIGIN'\n        return response\n"
        },
        good={
            "headers.py": "def secure(app):\n    @app.after_request\n    def h(response):\n"
            "        response.headers['X-Request-Id'] = '1'\n        return response\n"
        },
        says="X-Frame-Options",
    ),
    "RND009": Case(
        bad={"templates/gunicorn.conf.py.j2": "{% if %}\n"},
        good={},
        says="template error: Expected an expression",
    ),
    "RND001": Case(bad={"templates/nginx-security-headers.conf.j2": "# nothing\n"}, good={}, says="sends no"),
    "RND002": Case(
        bad={
            "templates/nginx-site.conf.j2": "server {\n  listen 443 ssl;\n  server_name {{ "
            "server.domains[0] }};\n"
            "  server_tokens off;\n  ssl_protocols TLSv1 TLSv1.2;\n  location / { proxy_pass http://x; }\n}\n"
        },
        good={},
        says="TLSv1",
    ),
    "RND003": Case(
        bad={
            "templates/nginx-site.conf.j2": "server {\n  listen 80;\n  server_name {{ server.domains[0] }};\n"
            "  location / { proxy_pass http://x; }\n}\n"
        },
        good={},
    ),
    "XL020": Case(
        bad={"api.py": "from fastapi import FastAPI\n\napi = FastAPI()\n"},
        good={"api.py": "from fastapi import FastAPI\n\napi = FastAPI()\n"},
        good_config=CONFIG + "gunicorn: {worker_class: asgi}\n",
        says="FastAPI is an ASGI app, but gunicorn.worker_class sync is a WSGI worker",
    ),
    "XL021": Case(
        bad={"chat.py": "from flask_socketio import SocketIO\n\nsocketio = SocketIO()\n"},
        good={"chat.py": "from flask_socketio import SocketIO\n\nsocketio = SocketIO()\n"},
        good_config=CONFIG + "gunicorn: {workers: 1, worker_class: gevent}\n",
        says="Flask-SocketIO with 2 x cores + 1 (auto) Gunicorn workers per slot",
    ),
    "XL022": Case(
        bad={
            "tasks.py": 'from celery import Celery\n\ncelery_app = Celery("t", broker="redis://localhost:6379/0")\n'
        },
        good={
            "tasks.py": 'from celery import Celery\n\ncelery_app = Celery("t", broker="redis://localhost:6379/0")\n'
        },
        config=CONFIG
        + "environments:\n  production:\n    server: {hosts: [web1.example.com, web2.example.com]}\n",
        good_config=CONFIG + "environments:\n  production:\n    server: {hosts: [web1.example.com]}\n",
        says="a different server on each of 2 hosts (environment production)",
    ),
    "PIT010": Case(
        bad={"models.py": USER_MODEL, "migrations/versions/b2_drop.py": DROP_NICKNAME},
        good={
            "models.py": USER_MODEL.replace("    nickname = db.Column(db.String(80))\n", ""),
            "migrations/versions/b2_drop.py": DROP_NICKNAME,
        },
        says="drops column user.nickname, which the code still uses: User.nickname (models.py:7)",
    ),
    "XL034": Case(
        bad={},
        config=CONFIG
        + "  hosts: [10.0.0.1]\ngunicorn: {workers: 9, worker_class: gthread, threads: 4}\n"
        + "services: {postgres: {max_connections: 20}}\n",
        good_config=CONFIG
        + "  hosts: [10.0.0.1]\ngunicorn: {workers: 2}\nservices: {postgres: {max_connections: 20}}\n",
        says="72 connections at the peak of a push",
    ),
    "XL036": Case(
        bad={
            "requirements.txt": "flask==3.1.3\nflask-sqlalchemy==3.1.1\npsycopg[binary]==3.2.9\n",
            "settings.py": "import os\n\nSQLALCHEMY_DATABASE_URI = os.environ['DATABASE_URL']\n",
        },
        good={
            "requirements.txt": "flask==3.1.3\nflask-sqlalchemy==3.1.1\npsycopg2-binary==2.9.10\n",
            "settings.py": "import os\n\nSQLALCHEMY_DATABASE_URI = os.environ['DATABASE_URL']\n",
        },
        config=CONFIG + "  hosts: [10.0.0.1]\nservices: {postgres: {}}\n",
        says="the requirements have psycopg, not psycopg2",
    ),
    "XL030": Case(
        bad={},
        config=CONFIG + "processes:\n  worker: {command: rq worker default}\n",
        good_config=CONFIG + "processes:\n  worker: {command: rq worker default, stop_timeout: 180}\n",
        says="stop_timeout 60 s is shorter than its jobs may run (180 s, RQ's default job timeout",
    ),
    "XL031": Case(
        bad={},
        config=CONFIG + "processes:\n  beat: {command: celery -A app.celery beat}\n",
        good_config=CONFIG + "processes:\n  beat: {command: celery -A app.celery beat, singleton: true}\n",
        says="runs celery beat without singleton: true",
    ),
    "XL035": Case(
        bad={},
        config=CONFIG + "processes:\n  beat: {command: celery -A app.celery beat, singleton: true}\n",
        good_config=CONFIG.replace(
            "  secrets: [SECRET_KEY]\n", "  secrets: [SECRET_KEY]\n  shared: [celerybeat]\n"
        )
        + "processes:\n  beat: {command: 'celery -A app.celery beat -s celerybeat/beat', singleton: true}\n",
        says="celery beat keeps its schedule in celerybeat-schedule, Celery's default",
    ),
    "XL032": Case(
        bad={
            "sched.py": "from apscheduler.schedulers.background import BackgroundScheduler\n\n"
            "scheduler = BackgroundScheduler()\nscheduler.start()\n"
        },
        good={
            "sched.py": "from apscheduler.schedulers.background import BackgroundScheduler\n\n"
            "scheduler = BackgroundScheduler()\nscheduler.start()\n"
        },
        good_config=CONFIG + "gunicorn: {workers: 1}\n",
        says="BackgroundScheduler() in the web app runs its jobs once per process",
    ),
    "XL033": Case(
        bad={},
        config=CONFIG + "jobs:\n  sync: {command: flask sync, schedule: minutely}\n",
        good_config=CONFIG + "jobs:\n  sync: {command: flask sync, schedule: minutely, timeout: 50}\n",
        says="jobs.sync runs every 60 s (minutely) but a run may take 3600 s (the default timeout)",
    ),
    "DEP020": Case(
        bad={},
        good={
            "requirements.txt": "Flask==3.1.3\nFlask-WTF==1.3.0\nFlask-Caching==2.3.1\nsentry-sdk==2.19.0\n"
            "gevent==25.9.1\ngunicorn[gevent]==27.0.1\n"
        },
        config=CONFIG + "gunicorn: {worker_class: gevent}\n",
        says="gunicorn.worker_class gevent needs gevent, which is not among the requirements",
    ),
}

TOOL_CASES = {"RND004", "RND005", "RND006", "RND007", "RND008", "DEP007"}


@pytest.fixture(autouse=True)
def _no_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SEC020 reads app.secrets values from the environment before .env, as push does."""
    monkeypatch.delenv("SECRET_KEY", raising=False)


def _run(
    tmp_path: Path, check_id: str, files: dict[str, str | None], config: str | None
) -> dict[str, list[str]]:
    root = project(tmp_path, imported_by_app(files))
    report = check(root, [check_id], config=config)
    assert not report.skipped, report.skipped
    return found(report)


@pytest.mark.parametrize("check_id", sorted(CASES))
def test_failing_fixture_fires(tmp_path: Path, check_id: str) -> None:
    case = CASES[check_id]
    result = _run(tmp_path, check_id, case.bad, case.config)
    assert check_id in result, f"{check_id} did not fire"
    assert case.says in " ".join(result[check_id])


@pytest.mark.parametrize("check_id", sorted(CASES))
def test_passing_fixture_is_clean(tmp_path: Path, check_id: str) -> None:
    case = CASES[check_id]
    result = _run(tmp_path, check_id, case.good, case.good_config or case.config)
    assert check_id not in result, result.get(check_id)


def test_every_check_without_hosts_or_import_has_cases() -> None:
    needs_more = {Layer.EFFECTIVE, Layer.IMPORT, Layer.LIVE}
    ids = {c.id for c in load_checks(plugins=False) if not needs_more & set(c.layers)}
    assert ids - set(CASES) - TOOL_CASES == set()


def test_clean_project_has_no_findings_with_config(tmp_path: Path) -> None:
    root = project(tmp_path)
    report = check(root, config=CONFIG)
    assert found(report) == {}


SEC008_LABELS = """\
AUTH_STATUS_INVALID_CREDENTIALS = "invalid_credentials"
ACCESS_TOKEN_SCOPE_SYNC = "sync"
SYNC_TOKEN_HEADER = "x-kobo-synctoken"
API_TOKEN_FIELD = "api_token"
TOKEN_HEADER_NAME = "Authorization"
GITHUB_TOKEN_ENV = "GITHUB_TOKEN"
SMTP_PASSWORD = "changeme"
API_KEY = "<your-api-key>"
watch_callback_token = "target=app-watch_files"  # nosec
"""

SEC008_SECRETS = """\
ADMIN_PASSWORD = "admin"
DEFAULT_PASSWORD = "admin123"  # nosec
FLASK_SECRET_TOKEN = "SparkleAndShine"
API_KEY = "57558043c53943d5d1e96a9ad425b0eb85532ee6"
SYNC_TOKEN_HEADER = "Zx81-ab92-QQ7c"
watch_callback_token = "target=app-watch_files"
"""


def test_sec008_skips_names_labels_headers_and_placeholders(tmp_path: Path) -> None:
    root = project(tmp_path, {"labels.py": SEC008_LABELS})
    assert found(check(root, ["SEC008"], CONFIG)).get("SEC008", []) == []


def test_sec008_still_reports_secret_looking_values_even_under_nosec(tmp_path: Path) -> None:
    root = project(tmp_path, imported_by_app({"labels.py": SEC008_SECRETS}))
    reported = found(check(root, ["SEC008"], CONFIG))["SEC008"]
    assert sorted(int(r.split(":")[1].split()[0]) for r in reported) == [1, 2, 3, 4, 5, 6]


DEP002_NOT_REPORTED = """\
Flask==3.1.3
gunicorn===23.0.0
bs4<=4.15.0,>=4.15.0
inscriptis>=2.7.5,<2.7.6
pywin32>=300; sys_platform == "win32"
Flask<=1.1.4; python_version < '3.7'
appnope; sys_platform == "darwin"
rpi-gpio>=0.7; platform_machine == "armv7l"
mylib @ https://example.com/mylib-1.0.tar.gz
"""

DEP002_REPORTED = """\
requests>=2.31; sys_platform == "linux"
pandas>=2; python_version >= '3.9'
numpy~=1.26.4
attrs>=23.1,<23.2
click==8.*
uvloop; platform_machine == "x86_64"
odd>=1; python_version ~= "abc"
"""


def test_dep002_skips_one_version_ranges_and_markers_that_exclude_the_hosts(tmp_path: Path) -> None:
    root = project(tmp_path, {"requirements.txt": DEP002_NOT_REPORTED})
    assert found(check(root, ["DEP002"], CONFIG)).get("DEP002", []) == []


def test_dep002_reports_ranges_and_lines_whose_markers_hold_on_the_hosts(tmp_path: Path) -> None:
    root = project(tmp_path, {"requirements.txt": DEP002_REPORTED})
    reported = found(check(root, ["DEP002"], CONFIG))["DEP002"]
    assert [r.split()[0] for r in reported] == [f"requirements.txt:{n}" for n in range(1, 8)]


def test_dep002_evaluates_markers_for_the_python_in_deploy_yaml(tmp_path: Path) -> None:
    root = project(tmp_path, {"requirements.txt": "tomli>=2; python_version < '3.11'\n"})
    assert "DEP002" not in found(check(root, ["DEP002"], CONFIG))
    older = CONFIG.replace("  secrets: [SECRET_KEY]\n", '  secrets: [SECRET_KEY]\n  python: "3.10"\n')
    assert older != CONFIG
    assert found(check(root, ["DEP002"], older))["DEP002"] == [
        "requirements.txt:1 tomli is not pinned (>=2; python_version < '3.11')"
    ]


def _health_config(path: str) -> str:
    return CONFIG.replace("  secrets: [SECRET_KEY]\n", f"  secrets: [SECRET_KEY]\n  health: {path}\n")


RESTFUL_APP = """\
from flask import Blueprint, Flask
from flask_restful import Api, Resource

class HealthAPI(Resource):
    def get(self):
        return {"status": "ok"}

def create_app():
    app = Flask(__name__)
    bp = Blueprint("api", __name__, url_prefix="/api/v1")
    api = Api(bp)
    api.add_resource(HealthAPI, "/health", "/healthz")
    app.register_blueprint(bp)
    return app
"""

HELPER_APP = {
    "app.py": "from flask import Flask\nfrom pkg.api import api_blueprint\n\ndef create_app():\n"
    "    app = Flask(__name__)\n    app.register_blueprint(api_blueprint)\n    return app\n",
    "pkg/__init__.py": "",
    "pkg/const.py": 'API_PREFIX = "/api"\n',
    "pkg/api.py": "from flask import Blueprint\nfrom flask.views import MethodView\n"
    "from pkg.const import API_PREFIX\n\n"
    'api_blueprint = Blueprint("api", __name__, url_prefix=API_PREFIX)\n\n'
    "class Metadata(MethodView):\n    def get(self):\n        return {}\n\n"
    "def register_endpt(resource, url, name):\n"
    "    api_blueprint.add_url_rule(url, endpoint=name, view_func=resource.as_view(name))\n\n"
    'register_endpt(Metadata, "/metadata/", "metadata")\n',
}


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/healthz"])
def test_obs002_sees_flask_restful_resources_on_a_prefixed_blueprint(tmp_path: Path, path: str) -> None:
    root = project(tmp_path, {"app.py": RESTFUL_APP}, base=False)
    assert "OBS002" not in found(check(root, ["OBS002"], _health_config(path)))
    # without the blueprint's prefix the rule is not served: still reported
    assert "OBS002" in found(check(root, ["OBS002"], _health_config("/health")))


def test_obs002_sees_routes_registered_through_a_helper_with_a_constant_prefix(tmp_path: Path) -> None:
    root = project(tmp_path, HELPER_APP, base=False)
    assert "OBS002" not in found(check(root, ["OBS002"], _health_config("/api/metadata/")))
    assert "OBS002" in found(check(root, ["OBS002"], _health_config("/metadata/")))


def test_route_discovery_prefixes_decorated_routes_and_reads_resource_methods(tmp_path: Path) -> None:
    from deploy.project.scan import scan

    files = dict(HELPER_APP)
    files["pkg/admin.py"] = (
        "from flask import Blueprint\n"
        'admin = Blueprint("admin", __name__)\n\n@admin.get("/health")\ndef health():\n    return "ok"\n'
    )
    files["app.py"] += "\n\ndef more(app):\n    from pkg.admin import admin\n"
    files["app.py"] += '    app.register_blueprint(admin, url_prefix="/admin")\n'
    root = project(tmp_path, files, base=False)
    routes = {(r.rule, r.methods, r.function) for r in scan(root).routes}
    assert ("/admin/health", ("GET",), "health") in routes
    assert ("/api/metadata/", ("GET",), "Metadata") in routes
    assert not any(r[0] == "/health" for r in routes)


STATIC_APP = {
    "shop/__init__.py": "",
    "shop/app.py": "from flask import Flask\nfrom shop.views import bp\n\n"
    'app = Flask(__name__, static_folder="assets")\napp.register_blueprint(bp)\n',
    "shop/views.py": "from flask import Blueprint\n"
    'bp = Blueprint("ui", __name__, static_folder="static")\n\n'
    '@bp.get("/health")\ndef health():\n    return "ok"\n',
    "shop/assets/js/app.js": "go()\n",
    "shop/static/ui.css": "body {}\n",
}


def _static_config(folder: str) -> str:
    return CONFIG.replace("static: {url: /static, dir: static}", f"static: {{url: /static, dir: {folder}}}")


@pytest.mark.parametrize("folder", ["shop/assets", "shop/assets/js"])
def test_perf002_takes_the_apps_static_folder_not_a_blueprints(tmp_path: Path, folder: str) -> None:
    root = project(tmp_path, STATIC_APP, base=False)
    assert "PERF002" not in found(check(root, ["PERF002"], _static_config(folder)))


def test_perf002_still_reports_a_static_dir_that_is_not_the_apps(tmp_path: Path) -> None:
    root = project(tmp_path, STATIC_APP, base=False)
    reported = found(check(root, ["PERF002"], _static_config("shop/static")))["PERF002"]
    assert reported == [
        "deploy.yaml:None app.static.dir is 'shop/static' but the static folder is 'shop/assets'"
    ]


def test_route_prefixes_follow_the_blueprint_of_each_module(tmp_path: Path) -> None:
    """Two modules each call their blueprint `bp`: each rule gets its own module's prefix."""
    from deploy.project.scan import scan

    files = {
        "flaskr/__init__.py": "from flask import Flask\n\ndef create_app():\n    app = Flask(__name__)\n"
        "    from . import auth, blog, admin\n    app.register_blueprint(auth.bp)\n"
        "    app.register_blueprint(blog.bp)\n"
        '    app.register_blueprint(admin.bp, url_prefix="/admin")\n    return app\n',
        "flaskr/auth.py": "from flask import Blueprint\n"
        'bp = Blueprint("auth", __name__, url_prefix="/auth")\n\n'
        '@bp.route("/login")\ndef login():\n    return ""\n',
        "flaskr/blog.py": 'from flask import Blueprint\nbp = Blueprint("blog", __name__)\n\n'
        '@bp.get("/health")\ndef health():\n    return "ok"\n',
        "flaskr/admin.py": 'from flask import Blueprint\nbp = Blueprint("admin", __name__)\n\n'
        '@bp.get("/stats")\ndef stats():\n    return ""\n',
    }
    root = project(tmp_path, files, base=False)
    assert sorted(r.rule for r in scan(root).routes) == ["/admin/stats", "/auth/login", "/health"]


def test_obs002_helper_in_another_module_than_the_blueprint(tmp_path: Path) -> None:
    files = dict(HELPER_APP)
    api = files["pkg/api.py"]
    assert api is not None
    head, _, helper = api.partition("def register_endpt")
    files["pkg/api.py"] = head.replace("class Metadata", "class Unused")
    files["pkg/endpoints.py"] = (
        "from flask.views import MethodView\nfrom pkg.api import api_blueprint\n\n"
        "class Metadata(MethodView):\n    def get(self):\n        return {}\n\n"
        "def register_endpt" + helper
    )
    root = project(tmp_path, files, base=False)
    assert "OBS002" not in found(check(root, ["OBS002"], _health_config("/api/metadata/")))
    assert "OBS002" in found(check(root, ["OBS002"], _health_config("/metadata/")))


def test_obs002_sees_views_registered_by_a_helper_looping_over_its_rules(tmp_path: Path) -> None:
    """flaskbb's `register_view(bp, routes=[...], view_func=View.as_view(...))`, blueprint prefix "" ."""
    files = {
        "app.py": "from flask import Flask\nfrom forum import forum\n\ndef create_app():\n"
        '    app = Flask(__name__)\n    app.register_blueprint(forum, url_prefix="")\n    return app\n',
        "helpers.py": "def register_view(bp_or_app, routes, view_func, *args, **kwargs):\n"
        "    for route in routes:\n"
        "        bp_or_app.add_url_rule(route, view_func=view_func, *args, **kwargs)\n",
        "forum.py": "from flask import Blueprint\nfrom flask.views import MethodView\n"
        "from helpers import register_view\n\n"
        'forum = Blueprint("forum", __name__)\n\n'
        "class ForumIndex(MethodView):\n    def get(self):\n        return ''\n\n"
        "register_view(forum, routes=['/', '/index'], view_func=ForumIndex.as_view('index'))\n",
    }
    root = project(tmp_path, files, base=False)
    assert "OBS002" not in found(check(root, ["OBS002"], _health_config("/index")))
    assert "OBS002" in found(check(root, ["OBS002"], _health_config("/other")))


def test_perf002_reads_the_static_folder_of_a_flask_subclass_and_a_relative_one(tmp_path: Path) -> None:
    """An app built by the project's own subclass of Flask (`class ShopFlask(Flask)`) has its static
    folder where Flask's would be: no `static/` beside it means none, not the first folder named static
    anywhere (a plugin's HTML). A `static_folder="../client/static"` is that folder, normalised."""
    files = {
        "shop/__init__.py": "from flask import Flask\n\n\nclass ShopFlask(Flask):\n    pass\n\n\n"
        "def create_app():\n    return ShopFlask(__name__)\n",
        "shop/plugins/flags/static/edit.html": "<p></p>\n",
    }
    root = project(tmp_path / "sub", files, base=False)
    assert "PERF002" not in found(
        check(root, ["PERF002"], CONFIG.replace("  static: {url: /static, dir: static}\n", ""))
    )
    files = {
        "shop/server/__init__.py": "from flask import Flask\n\n\ndef create_app():\n"
        '    return Flask(__name__, static_folder="../client/static")\n',
        "shop/client/static/app.css": "body {}\n",
    }
    root = project(tmp_path / "rel", files, base=False)
    assert "PERF002" not in found(check(root, ["PERF002"], _static_config("shop/client/static")))
    reported = found(check(root, ["PERF002"], _static_config("shop/server")))["PERF002"]
    assert reported == [
        "deploy.yaml:None app.static.dir is 'shop/server' but the static folder is 'shop/client/static'"
    ]


@pytest.mark.parametrize("module", ["default_config.py", "base_settings.py", "config.py"])
def test_a_prefixed_config_module_is_read_for_settings(tmp_path: Path, module: str) -> None:
    """`app.config.from_object("shop.default_config")` loads a module no import reaches: its upper-case
    names are settings like config.py's (a literal SECRET_KEY there is SEC002, its SameSite is set)."""
    files = {
        "shop/__init__.py": "from flask import Flask, session\n\n\ndef create_app():\n"
        "    app = Flask(__name__)\n"
        f'    app.config.from_object("shop.{module[:-3]}")\n    return app\n',
        f"shop/{module}": 'SECRET_KEY = "e951e5a1f4b94151b360f47edf596dd2"\n'
        'SESSION_COOKIE_SAMESITE = "Lax"\n',
    }
    root = project(tmp_path, files, base=False)
    reported = found(check(root, ["SEC002", "SEC012"]))
    assert reported == {"SEC002": [f"shop/{module}:1 SECRET_KEY is a string literal in the source"]}
