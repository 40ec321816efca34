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


#: fastapi-ml-skeleton's shape: a router of routers, each include_router adding a prefix (one from a
#: settings constant), the app built by a function; its health check is `/heartbeat` three levels down.
ROUTERS = {
    "svc/__init__.py": "",
    "svc/config.py": 'API_PREFIX = "/api"\n',
    "svc/heartbeat.py": "from fastapi import APIRouter\n\nrouter = APIRouter()\n\n\n"
    '@router.get("/heartbeat")\ndef beat():\n    return {"alive": True}\n',
    "svc/prediction.py": "from fastapi import APIRouter\n\nrouter = APIRouter()\n\n\n"
    '@router.post("/predict")\ndef predict():\n    return {}\n',
    "svc/router.py": "from fastapi import APIRouter\n\nfrom svc import heartbeat, prediction\n\n"
    "api_router = APIRouter()\n"
    'api_router.include_router(heartbeat.router, prefix="/health")\n'
    'api_router.include_router(prediction.router, prefix="/model")\n',
    "svc/main.py": "from fastapi import FastAPI\n\nfrom svc.config import API_PREFIX\n"
    "from svc.router import api_router\n\n\ndef get_app():\n    fast_app = FastAPI()\n"
    "    fast_app.include_router(api_router, prefix=API_PREFIX)\n    return fast_app\n\n\n"
    "app = get_app()\n",
    "requirements.txt": "fastapi==0.115.0\nuvicorn-worker==0.3.0\n",
}


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_routes_under_nested_routers_are_served_with_every_prefix_and_a_heartbeat_is_the_health(
    tmp_path: Path,
) -> None:
    from deploy.project.scan import scan

    _write(tmp_path, ROUTERS)
    assert {r.rule for r in scan(tmp_path).routes} == {"/api/health/heartbeat", "/api/model/predict"}
    found = inspect_project(tmp_path)
    assert found.health == "/api/health/heartbeat"
    # A router's own prefix, and a Flask blueprint registered inside another, count the same way.
    _write(
        tmp_path,
        {"svc/heartbeat.py": ROUTERS["svc/heartbeat.py"].replace("APIRouter()", 'APIRouter(prefix="/v2")')},
    )
    (tmp_path / "svc/router.py").write_text(
        ROUTERS["svc/router.py"].replace('heartbeat.router, prefix="/health"', "heartbeat.router")
    )
    assert inspect_project(tmp_path).health == "/api/v2/heartbeat"
    _write(
        tmp_path / "bp",
        {
            "shop.py": "from flask import Blueprint, Flask\n\nparent = Blueprint('p', __name__, "
            "url_prefix='/ops')\nchild = Blueprint('c', __name__)\n\n\n@child.get('/ping')\ndef ping():\n"
            "    return 'ok'\n\n\nparent.register_blueprint(child, url_prefix='/status')\n"
            "app = Flask(__name__)\napp.register_blueprint(parent)\n"
        },
    )
    assert inspect_project(tmp_path / "bp").health == "/ops/status/ping"


def test_without_a_health_route_the_home_page_is_probed_and_never_a_path_that_is_not_served(
    tmp_path: Path,
) -> None:
    """krishnaik06/Deployment-flask: the model server's only GET page is `/`; init used to write
    `/health`, which the health gate then waited 30 s for and failed on (404)."""
    app = (
        "import pickle\n\nfrom flask import Flask, render_template, request\n\napp = Flask(__name__)\n"
        "model = pickle.load(open('model.pkl', 'rb'))\n\n\n@app.route('/')\ndef home():\n"
        "    return render_template('index.html')\n\n\n@app.route('/predict', methods=['POST'])\n"
        "def predict():\n    return str(model.predict([[1, 2, 3]]))\n"
    )
    _write(tmp_path / "home", {"app.py": app})
    found = inspect_project(tmp_path / "home")
    assert found.health == "/" and found.wsgi == "app:app"
    assert any("app.health is the home page /" in n for n in found.notes)
    assert not any("runs code when imported" in n for n in found.notes)
    _write(tmp_path / "post", {"app.py": app.replace("@app.route('/')", "@app.route('/', methods=['POST'])")})
    found = inspect_project(tmp_path / "post")
    assert found.health is None and any("no /health route found: add one" in n for n in found.notes)


def test_a_setting_read_without_a_default_gets_the_example_files_value(tmp_path: Path) -> None:
    """fastapi-ml-skeleton: Starlette's `config("DEFAULT_MODEL_PATH")` has no default, so the app cannot
    start without it; .env.example gives the model's path. A setting read with a default stays a comment,
    and a secret's example value is never copied."""
    _write(
        tmp_path,
        {
            "svc/__init__.py": "",
            "svc/settings.py": "from starlette.config import Config\nfrom starlette.datastructures import "
            "Secret\n\nconfig = Config('.env')\nAPI_KEY = config('API_KEY', cast=Secret)\n"
            "IS_DEBUG = config('IS_DEBUG', cast=bool, default=False)\n"
            "MODEL_PATH = config('DEFAULT_MODEL_PATH')\n",
            "svc/main.py": "from fastapi import FastAPI\n\nfrom svc.settings import MODEL_PATH\n\n"
            "app = FastAPI()\n\n\n@app.get('/health')\ndef health():\n    return {}\n",
            ".env.example": "IS_DEBUG=False\nAPI_KEY=sample_api_key\nDEFAULT_MODEL_PATH=./model/m.joblib\n",
        },
    )
    found = inspect_project(tmp_path)
    assert found.example_env == {"DEFAULT_MODEL_PATH": "./model/m.joblib"}
    assert found.env == ["IS_DEBUG"] and found.secrets == ["API_KEY"]
    assert any(n.startswith("settings the app cannot start without, from .env.example") for n in found.notes)
    assert "settings read from the environment: IS_DEBUG (add them to app.env)" in found.notes
    text = write_deploy_yaml(found, "api.example.com", ["10.0.0.5"])
    config = load_text(text, "deploy.yaml")
    assert config.app.env["DEFAULT_MODEL_PATH"] == "./model/m.joblib"
    assert "API_KEY" not in config.app.env and "sample_api_key" not in text
    # Without an example file the setting stays a comment for the user to fill in.
    (tmp_path / ".env.example").unlink()
    assert inspect_project(tmp_path).example_env == {}


def test_pyproject_is_app_requirements_only_when_deploy_can_install_from_it(tmp_path: Path) -> None:
    """A Poetry project's pyproject.toml is (its dependencies, pinned to poetry.lock); one that only
    configures tools is not: push would stop on 'has no [project] table', so init says it now."""
    app = "from flask import Flask\napp = Flask(__name__)\n"
    _write(
        tmp_path / "poetry",
        {
            "app.py": app,
            "pyproject.toml": '[tool.poetry]\nname = "x"\n\n[tool.poetry.dependencies]\npython = "^3.11"\n'
            'flask = "^3.1"\n',
            "poetry.lock": '[[package]]\nname = "flask"\nversion = "3.1.3"\n',
        },
    )
    found = inspect_project(tmp_path / "poetry")
    assert found.requirements == "pyproject.toml"
    assert any("[tool.poetry.dependencies], pinned to poetry.lock" in n for n in found.notes)
    _write(tmp_path / "tools", {"app.py": app, "pyproject.toml": "[tool.black]\nline-length = 88\n"})
    found = inspect_project(tmp_path / "tools")
    assert found.requirements is None
    assert any(
        n.startswith("no requirements file deploy can install: pyproject.toml: has no [project]")
        for n in found.notes
    )


def test_variables_read_through_the_projects_own_reader_are_secrets_and_settings(tmp_path: Path) -> None:
    """alerta reads every setting through `get_config(key, default=..., type=..., config=...)`, which
    looks the key up in os.environ: init missed SECRET_KEY and DATABASE_URL, so push would have shipped
    neither and the app would have signed with the literal in its settings."""
    _write(
        tmp_path,
        {
            "srv/__init__.py": "from flask import Flask\n\nfrom srv.config import load\n\n\n"
            "def create_app():\n"
            "    app = Flask(__name__)\n    app.config.update(load())\n    return app\n",
            "srv/config.py": "import os\n\n\ndef load():\n    return {\n"
            "        'SECRET_KEY': get_config('SECRET_KEY', default=''),\n"
            "        'DATABASE_URL': get_config('DATABASE_URL', default=None),\n"
            "        'SIGNUP_ENABLED': get_config('SIGNUP_ENABLED', default=True, type=bool),\n    }\n\n\n"
            "def get_config(key, default=None, type=None):\n    if key in os.environ:\n"
            "        return os.environ[key]\n    return default\n\n\n"
            "def describe(key):\n    return key.lower()\n\n\nLABEL = describe('NOT_AN_ENV_READ')\n",
        },
    )
    found = inspect_project(tmp_path)
    assert found.secrets == ["DATABASE_URL", "SECRET_KEY"]
    assert found.env == ["SIGNUP_ENABLED"]


def test_a_database_url_beside_a_postgres_driver_points_at_services_postgres(tmp_path: Path) -> None:
    """alerta reads DATABASE_URL and requires psycopg2: `services: postgres` gives both (it ran that way
    on a sandbox host); init says so without writing it (the database may be the user's own)."""
    app = "import os\nfrom flask import Flask\n\napp = Flask(__name__)\nDB = os.environ.get('DATABASE_URL')\n"
    _write(tmp_path / "pg", {"app.py": app, "requirements.txt": "Flask==3.1.3\npsycopg2==2.9.11\n"})
    assert any(
        n.startswith("DATABASE_URL with a Postgres driver") for n in inspect_project(tmp_path / "pg").notes
    )
    _write(tmp_path / "sqlite", {"app.py": app, "requirements.txt": "Flask==3.1.3\n"})
    assert not any("Postgres driver" in n for n in inspect_project(tmp_path / "sqlite").notes)
