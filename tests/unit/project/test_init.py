"""`deploy init` finds the app in the common Flask project shapes and writes a valid deploy.yaml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config.loader import load
from deploy.project.init import inspect_project, write_deploy_yaml

pytestmark = pytest.mark.unit

FLASKR = Path(__file__).resolve().parents[3] / "playbooks" / "flaskr"


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
    assert config.app.secrets == ["SECRET_KEY"]  # SENTRY_DSN is read with a default: optional
    assert (
        "optional secrets the code reads with a default: SENTRY_DSN" in (tmp_path / "deploy.yaml").read_text()
    )
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
    assert found.secrets == ["SECRET_KEY"]
    assert found.optional_secrets == ["SENTRY_DSN"]
    assert run_init(tmp_path).returncode == 0
    assert load(tmp_path / "deploy.yaml").app.health == "/healthz"


def test_entry_module_preferred_and_tests_ignored(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "wsgi.py").write_text("from web import create_app\napp = create_app()\n")
    (tmp_path / "web.py").write_text(
        "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("from flask import Flask\napp = Flask('t')\n")
    found = inspect_project(tmp_path)
    assert found.wsgi == "wsgi:app"  # what the project itself serves, built by its factory
    assert any("no /health route" in n for n in found.notes)
    assert any("no requirements.txt" in n for n in found.notes)


def test_no_flask_app_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("print('hi')\n")
    out = run_init(tmp_path)
    assert out.returncode == 2
    assert "found no Flask app" in out.stderr and "Traceback" not in out.stderr


def _flask_project(tmp_path: Path) -> Path:
    shutil.copytree(FLASKR / "flaskr", tmp_path / "flaskr")
    shutil.copy(FLASKR / "requirements.txt", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--domain", "x]", "server.domains[0]: expected a domain name"),
        ("--domain", "a.com, b.com", "server.domains[0]: expected a domain name"),
        ("--host", "-oProxyCommand=touch /tmp/pwned", "server.hosts[0]"),
        ("--host", "web 1", "server.hosts[0]"),
    ],
)
def test_bad_domain_or_host_is_refused_before_writing(
    tmp_path: Path, option: str, value: str, expected: str
) -> None:
    project = _flask_project(tmp_path)
    out = run_init(project, option, value)
    assert out.returncode == 2, out.stdout
    assert expected in out.stderr and "Traceback" not in out.stderr
    assert not (project / "deploy.yaml").exists()


def test_wildcard_domain_is_written_quoted(tmp_path: Path) -> None:
    project = _flask_project(tmp_path)
    assert run_init(project, "--domain", "*.example.com").returncode == 0
    config = load(project / "deploy.yaml")
    assert config.server.domains == ["*.example.com"]
    # ACME issues a wildcard only through DNS-01: init proposes an own certificate instead.
    assert config.server.tls and config.server.tls.cert and not config.server.tls.email


def test_procfile_names_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(
        "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n"
    )
    (tmp_path / "serve.py").write_text("from pkg import create_app\nweb = create_app()\n")
    (tmp_path / "Procfile").write_text(
        "release: flask db upgrade\nweb: gunicorn -w 3 -b 0.0.0.0:$PORT serve:web\n"
    )
    assert inspect_project(tmp_path).wsgi == "serve:web"


def test_factory_with_required_arguments_is_not_called_bare(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text(
        "from flask import Flask\n\ndef create_app(config_name):\n    return Flask(__name__)\n"
    )
    (tmp_path / "flasky.py").write_text(
        "import os\nfrom app import create_app\napp = create_app(os.getenv('FLASK_CONFIG') or 'default')\n"
    )
    found = inspect_project(tmp_path)
    assert found.wsgi == "flasky:app"
    (tmp_path / "flasky.py").unlink()
    found = inspect_project(tmp_path)
    assert found.wsgi == "app:create_app()"
    assert any("needs config_name" in note for note in found.notes)


def test_src_layout_imports_from_src(tmp_path: Path) -> None:
    package = tmp_path / "src" / "shop"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n"
    )
    (package / "static").mkdir()
    found = inspect_project(tmp_path)
    assert found.wsgi == "shop:create_app()"
    assert found.static_dir == "src/shop/static"
    assert any("src/ layout" in note for note in found.notes)


def test_src_layout_shares_src_instance_and_long_env_lists_keep_the_comment_column(tmp_path: Path) -> None:
    """Flask puts a src layout's instance folder in src/instance: that is what must be shared."""
    package = tmp_path / "src" / "notes"
    package.mkdir(parents=True)
    settings = ", ".join(f'os.environ.get("SETTING_NUMBER_{n}", "x")' for n in range(12))
    (package / "__init__.py").write_text(
        "import os\nfrom flask import Flask\n\ndef create_app():\n"
        "    app = Flask(__name__, instance_relative_config=True)\n"
        f"    app.config['S'] = [{settings}, os.environ.get('LOG_LEVEL', 'info')]\n    return app\n"
    )
    (tmp_path / "requirements.txt").write_text("flask==3.1.3\n")
    result = run_init(tmp_path, "--domain", "notes.example.com")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "deploy.yaml").read_text()
    assert load(tmp_path / "deploy.yaml").app.shared == ["src/instance"]
    assert "SETTING_NUMBER_11" in text and "reads LOG_LEVEL" not in text and ", LOG_LEVEL" not in text
    # One comment column for every commented line, set by them and not by the long comment-only line.
    columns = {
        line.index("  # ")
        for line in text.splitlines()
        if line[:1] in " abcdefghijklmnopqrstuvwxyz" and not line.lstrip().startswith("#") and "  # " in line
    }
    assert len(columns) == 1 and columns.pop() < 80


def test_static_folder_and_url_from_the_flask_call(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "from flask import Flask\napp = Flask(__name__, static_folder='assets', static_url_path='/s')\n"
    )
    (tmp_path / "assets").mkdir()
    found = inspect_project(tmp_path)
    assert (found.static_dir, found.static_url) == ("assets", "/s")
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__, static_folder=None)\n")
    assert inspect_project(tmp_path).static_dir is None


def test_uncommitted_static_folder_is_pointed_out(tmp_path: Path) -> None:
    import subprocess as sp

    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "bundle.js").write_text("x")
    (tmp_path / ".gitignore").write_text("static/\n")
    sp.run(["git", "init", "-q", str(tmp_path)], check=True)
    sp.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    found = inspect_project(tmp_path)
    assert any("static holds no committed files" in note for note in found.notes)


def test_secret_detection(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import os\nfrom environs import Env\nfrom decouple import config\nfrom flask import Flask\n"
        "env = Env()\napp = Flask(__name__)\n"
        "STRIPE = os.environ['STRIPE_KEY']\nTR = os.environ.get('MS_TRANSLATOR_KEY')\n"
        "DB = env.str('DATABASE_URL')\nAGE = env.int('SEND_FILE_MAX_AGE_DEFAULT')\n"
        "SENTRY = config('SENTRY_DSN', default='')\nBUGS = config('BUGSNAG_DSN')\n"
        "DEV = os.getenv('DEV_DATABASE_URL')\nCONF = os.getenv('FLASK_CONFIG')\n"
    )
    found = inspect_project(tmp_path)
    # python-decouple's config() with no default raises when the variable is unset: BUGSNAG_DSN is required.
    assert found.secrets == ["BUGSNAG_DSN", "DATABASE_URL", "MS_TRANSLATOR_KEY", "STRIPE_KEY"]
    assert found.optional_secrets == ["SENTRY_DSN"]
    assert found.env == ["FLASK_CONFIG", "SEND_FILE_MAX_AGE_DEFAULT"]


def test_no_secret_is_invented(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    assert run_init(tmp_path).returncode == 0
    assert load(tmp_path / "deploy.yaml").app.secrets == []


WSGI = "from shop import create_app\n\napp = create_app()\n"
FACTORY = "from flask import Flask\n\n\ndef create_app():\n    return Flask(__name__)\n"


def _shop(root: Path) -> None:
    (root / "shop").mkdir()
    (root / "shop" / "__init__.py").write_text(FACTORY)


def test_a_script_with_side_effects_never_wins_over_wsgi_py(tmp_path: Path) -> None:
    """Issue #16: a module-level app in an export script (which runs the export when imported) was
    chosen over wsgi.py by the alphabetical tie-break; deploy check --import then ran the export."""
    _shop(tmp_path)
    (tmp_path / "wsgi.py").write_text(WSGI)
    (tmp_path / "export.py").write_text(
        "from flask import Flask\n\napp = Flask(__name__)\n\n\ndef export_all():\n    pass\n\n\n"
        "export_all()\n"
    )
    found = inspect_project(tmp_path)
    assert found.wsgi == "wsgi:app"
    assert any("export.py" in n and "line 10: export_all()" in n for n in found.notes), found.notes


def test_a_clean_script_loses_to_wsgi_py_without_the_alphabet(tmp_path: Path) -> None:
    _shop(tmp_path)
    (tmp_path / "wsgi.py").write_text(WSGI)
    (tmp_path / "admin.py").write_text("from shop import create_app\n\napp = create_app()\n")
    assert inspect_project(tmp_path).wsgi == "wsgi:app"
    (tmp_path / "wsgi.py").unlink()
    (tmp_path / "asgi.py").write_text(WSGI)
    assert inspect_project(tmp_path).wsgi == "asgi:app"


@pytest.mark.parametrize(
    ("file", "text"),
    [
        ("Dockerfile", 'FROM python:3.12\nCMD ["gunicorn", "-b", "0.0.0.0:8000", "serve:web"]\n'),
        ("Dockerfile", "FROM python:3.12\nENTRYPOINT gunicorn --workers 3 serve:web\n"),
        ("README.md", "Run it with `gunicorn -w 4 serve:web` behind Nginx.\n"),
        ("docs/deploy.rst", "In production::\n\n    waitress-serve --port=8080 serve:web\n"),
        ("Procfile", "web: gunicorn serve:web\n"),
    ],
)
def test_how_the_project_is_served_names_the_entry_point(tmp_path: Path, file: str, text: str) -> None:
    _shop(tmp_path)
    (tmp_path / "wsgi.py").write_text(WSGI)
    (tmp_path / "serve.py").write_text("from shop import create_app\n\nweb = create_app()\n")
    (tmp_path / file).parent.mkdir(exist_ok=True)
    (tmp_path / file).write_text(text)
    found = inspect_project(tmp_path)
    assert found.wsgi == "serve:web"
    assert any(n.startswith("entry point from ") and "serve:web" in n for n in found.notes), found.notes


def test_a_served_script_with_side_effects_still_loses_to_a_clean_module(tmp_path: Path) -> None:
    _shop(tmp_path)
    (tmp_path / "wsgi.py").write_text(WSGI)
    (tmp_path / "serve.py").write_text("from shop import create_app\n\nweb = create_app()\nweb.run()\n")
    (tmp_path / "Procfile").write_text("web: gunicorn serve:web\n")
    assert inspect_project(tmp_path).wsgi == "wsgi:app"


def test_factories_named_create_app_or_make_app_come_first(tmp_path: Path) -> None:
    (tmp_path / "aaa").mkdir()
    (tmp_path / "aaa" / "__init__.py").write_text(
        "from flask import Flask\n\n\ndef get_app():\n    return Flask(__name__)\n"
    )
    (tmp_path / "zzz").mkdir()
    (tmp_path / "zzz" / "__init__.py").write_text(FACTORY.replace("create_app", "make_app"))
    assert inspect_project(tmp_path).wsgi == "zzz:make_app()"


def _assert_clean_then_side_effects(clean: str, tails: tuple[tuple[str, str], ...]) -> None:
    """`clean` imports without side effects; each tail added to it is one, named in the answer."""
    import ast

    from deploy.project.candidates import side_effect

    assert side_effect(ast.parse(clean)) is None
    for tail, expected in tails:
        found = side_effect(ast.parse(clean + tail))
        assert found is not None and expected in found, (tail, found)


def test_what_a_module_may_do_when_imported(tmp_path: Path) -> None:
    """Definitions, imports, the app's construction and setup, and anything under the main guard are
    clean; other top-level calls, app.run() and loops are side effects."""
    clean = (
        '"""doc"""\nimport os, logging\nfrom dotenv import load_dotenv\nfrom flask import Flask\n'
        "from flask_sqlalchemy import SQLAlchemy\nload_dotenv()\nlogging.basicConfig(level=logging.INFO)\n"
        "db = SQLAlchemy()\napp = Flask(__name__, static_folder=os.path.join('a', 'b'))\n"
        "app.config.from_object('config')\ndb.init_app(app)\nPORT = int(os.environ.get('PORT', '5000'))\n"
        "with app.app_context():\n    db.create_all()\n"
        "class Config:\n    X = 1\n\n@app.get('/')\ndef index():\n    return 'x'\n"
        "if __name__ == '__main__':\n    app.run(debug=True)\n"
    )
    _assert_clean_then_side_effects(
        clean,
        (
            ("app.run()\n", "app.run()"),
            ("rows = fetch_everything()\n", "fetch_everything()"),
            ("for x in range(3):\n    print(x)\n", "a top-level for block"),
            ("print('exporting')\n", "print('exporting')"),
        ),
    )


def test_loading_a_model_at_import_and_a_setup_call_building_its_arguments_are_not_side_effects() -> None:
    """A model-serving app loads its model into a name at import (what a preloaded app is for), and
    `sentry_sdk.init(integrations=[FlaskIntegration()])` sets the module up; training or dumping a model
    at import, or a load whose result is thrown away, still runs code."""
    clean = (
        "import pickle, joblib\nimport numpy as np\nimport pandas as pd\nimport sentry_sdk\n"
        "from sentry_sdk.integrations.flask import FlaskIntegration\nfrom flask import Flask\n"
        "sentry_sdk.init(integrations=[FlaskIntegration()], release='1')\n"
        "app = Flask(__name__)\nmodel = pickle.load(open('model.pkl', 'rb'))\n"
        "columns = joblib.load('columns.pkl')\nprices = pd.read_csv('prices.csv')\n"
    )
    _assert_clean_then_side_effects(
        clean,
        (
            ("train(prices)\n", "train(prices)"),
            ("pickle.dump(model, open('model.pkl', 'wb'))\n", "pickle.dump"),
            ("joblib.load('other.pkl')\n", "joblib.load"),
            ("sentry_sdk.capture_message('up')\n", "capture_message"),
        ),
    )


def test_check_import_without_deploy_yaml_takes_inits_entry_point_and_never_a_script_with_side_effects(
    tmp_path: Path,
) -> None:
    """`deploy check --import` with no deploy.yaml and no --app imports what init would write (it took
    the first app in file order before: the export script, whose import ran the export)."""
    from deploy.checker.context import Context

    _shop(tmp_path)
    (tmp_path / "wsgi.py").write_text(WSGI)
    (tmp_path / "export.py").write_text(
        "from shop import create_app\n\napp = create_app()\nrun_export(app)\n"
    )
    assert Context(root=tmp_path).wsgi_spec == "wsgi:app"
    (tmp_path / "wsgi.py").unlink()
    ctx = Context(root=tmp_path)
    # shop:create_app() is clean, but importing it from export.py is not needed: the factory wins.
    assert ctx.wsgi_spec == "shop:create_app()"
    (tmp_path / "shop" / "__init__.py").write_text(FACTORY + "\nprint('hello')\n")
    ctx = Context(root=tmp_path)
    assert ctx.wsgi_spec is None
    assert ctx.no_app_why is not None and "runs code when imported" in ctx.no_app_why
    assert "runs code when imported" in str(ctx.effective.error)


def test_init_proposes_a_root_sqlite_file_as_a_shared_file_never_a_committed_one(tmp_path: Path) -> None:
    """Issue #16: an app whose SQLite file sits at the project root lost it on every push; init now
    proposes it in app.shared_files (and deploy.yaml stays valid), unless the file is committed."""
    (tmp_path / "app.py").write_text(
        "import sqlite3\nfrom flask import Flask\n\napp = Flask(__name__)\n\n\n"
        "def db():\n    return sqlite3.connect('notes.db')\n"
    )
    (tmp_path / "requirements.txt").write_text("flask==3.1.3\n")
    found = inspect_project(tmp_path)
    assert found.shared_files == ["notes.db"]
    assert run_init(tmp_path).returncode == 0
    assert load(tmp_path / "deploy.yaml").app.shared_files == ["notes.db"]
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "notes.db").write_bytes(b"")
    subprocess.run([*git, "add", "notes.db"], check=True)
    assert inspect_project(tmp_path).shared_files == []


MIGRATING = (
    "from flask import Flask\nfrom flask_migrate import Migrate\n\n\ndef create_app():\n"
    "    app = Flask(__name__)\n    Migrate(app, None{directory})\n    return app\n"
)


def test_release_command_only_where_flask_migrate_finds_its_folder(tmp_path: Path) -> None:
    """Issue #16 (ihatemoney): Flask-Migrate imported, its migrations inside the package, not in
    ./migrations: 'flask db upgrade' would fail every push, so init proposes no release command."""
    (tmp_path / "shop" / "migrations").mkdir(parents=True)
    (tmp_path / "shop" / "migrations" / "env.py").write_text("# alembic env\n")
    (tmp_path / "shop" / "__init__.py").write_text(MIGRATING.format(directory=""))
    found = inspect_project(tmp_path)
    assert not found.migrations
    assert any("no migrations/ folder" in n for n in found.notes), found.notes
    assert "release:" not in write_deploy_yaml(found)
    # Migrate(directory=...) naming the folder: the command is proposed.
    named = MIGRATING.format(directory=", directory='shop/migrations'")
    (tmp_path / "shop" / "__init__.py").write_text(named)
    assert "db upgrade --directory shop/migrations" in write_deploy_yaml(inspect_project(tmp_path))
    # The default folder at the root: proposed too.
    (tmp_path / "shop" / "__init__.py").write_text(MIGRATING.format(directory=""))
    shutil.move(tmp_path / "shop" / "migrations", tmp_path / "migrations")
    assert inspect_project(tmp_path).migrations


def test_the_app_a_package_module_builds_beats_the_factory_it_calls(tmp_path: Path) -> None:
    """Issue #16 (puppetboard, archivy): the package's app module calls the package's own factory and
    set-up functions at import (`app = get_app()`, `get_scheduler()`, `Compress(app)`, a data folder's
    mkdir) and imports the views; the bare factory builds an app without routes."""
    pkg = tmp_path / "board"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text(
        "from flask import Flask\n\n\ndef get_app():\n    return Flask(__name__)\n\n\n"
        "def get_scheduler():\n    return None\n"
    )
    (pkg / "app.py").write_text(
        "from pathlib import Path\n\nfrom flask_compress import Compress\n\n"
        "from board.core import get_app, get_scheduler\n\n"
        "app = get_app()\nget_scheduler()\nCompress(app)\nPath('data').mkdir(exist_ok=True)\n\n"
        "from board import views  # noqa\n"
    )
    (pkg / "views.py").write_text(
        "from board.app import app\n\n\n@app.route('/')\ndef index():\n    return 'x'\n"
    )
    assert inspect_project(tmp_path).wsgi == "board.app:app"
    # A script outside the package calling the package's functions at import still runs them.
    (tmp_path / "wsgi.py").write_text("from board.core import get_app, get_scheduler\n\napp = get_app()\n")
    (tmp_path / "export.py").write_text(
        "from board.core import get_app\nfrom board.export import run_export\n\n"
        "app = get_app()\nrun_export()\n"
    )
    found = inspect_project(tmp_path)
    skipped = [n for n in found.notes if n.startswith("not an entry point: importing export.py")]
    assert (found.wsgi, len(skipped)) == ("wsgi:app", 1), found.notes
    assert "run_export()" in skipped[0]


@pytest.mark.parametrize(
    ("loader", "expected"),
    [
        ('app.config.from_prefixed_env(prefix="SHOP")', ["SHOP_SECRET_KEY", "SHOP_WTF_CSRF_SECRET_KEY"]),
        ("app.config.from_prefixed_env()", ["FLASK_SECRET_KEY", "FLASK_WTF_CSRF_SECRET_KEY"]),
        ('config_from_env(app, prefix="SHOP_")', ["SHOP_SECRET_KEY", "SHOP_WTF_CSRF_SECRET_KEY"]),
    ],
)
def test_secrets_loaded_with_a_prefix(tmp_path: Path, loader: str, expected: list[str]) -> None:
    """Issue #16 (flaskbb, gramps-webapi): the config comes from PREFIX_* variables, so the signing keys
    the app uses (Flask's SECRET_KEY, a config class's WTF_CSRF_SECRET_KEY) are PREFIX_... secrets."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "config.py").write_text(
        "class Default:\n    WTF_CSRF_SECRET_KEY = 'dev'\n    MAIL_SERVER = 'localhost'\n"
    )
    (tmp_path / "shop" / "__init__.py").write_text(
        "from flask import Flask\n\n\ndef config_from_env(app, prefix):\n    pass\n\n\n"
        f"def create_app():\n    app = Flask(__name__)\n    {loader}\n    return app\n"
    )
    assert inspect_project(tmp_path).secrets == expected


def test_an_instance_folder_outside_the_project_is_not_shared(tmp_path: Path) -> None:
    """Issue #16 (ihatemoney): Flask(instance_path="/etc/app") with instance_relative_config reads its
    config from /etc, not from the release: sharing ./instance would be a folder nothing uses."""
    (tmp_path / "shop").mkdir()
    app = "from flask import Flask\n\n\ndef create_app():\n    return Flask(__name__{})\n"
    (tmp_path / "shop" / "__init__.py").write_text(app.format(", instance_relative_config=False"))
    assert not inspect_project(tmp_path).instance  # dtale spells out the default
    (tmp_path / "shop" / "__init__.py").write_text(app.format(", instance_relative_config=True"))
    assert inspect_project(tmp_path).instance
    (tmp_path / "shop" / "__init__.py").write_text(
        app.format(", instance_path='/etc/shop', instance_relative_config=True")
    )
    found = inspect_project(tmp_path)
    assert not found.instance and "shared:" not in write_deploy_yaml(found)
    assert any(n.startswith("Flask(instance_path=/etc/shop)") for n in found.notes), found.notes
    # A factory passing on its own parameter: its default decides (flaskbb: None, Flask's own folder).
    factory = "from flask import Flask\n\n\ndef create_app(instance_path={}):\n"
    factory += "    return Flask(__name__, instance_path=instance_path, instance_relative_config=True)\n"
    (tmp_path / "shop" / "__init__.py").write_text(factory.format("None"))
    assert inspect_project(tmp_path).instance
    (tmp_path / "shop" / "__init__.py").write_text(factory.format("'/etc/shop'"))
    assert not inspect_project(tmp_path).instance


def test_an_app_completed_only_by_the_projects_own_cli_is_no_importable_entry(tmp_path: Path) -> None:
    """Issue #16 (calibreweb, changedetection.io, cellxgene): the factory's app has no routes (the CLI's
    main() registers the blueprints, then serves it), or Flask() is only called inside a class: init
    says there is no importable entry and what to write, instead of proposing an app without routes."""
    pkg = tmp_path / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from flask import Flask\n\napp = Flask(__name__)\n\n\ndef create_app():\n    return app\n"
    )
    (pkg / "main.py").write_text(
        "from shop import create_app\nfrom shop.web import web\n\n\n"
        "def main():\n    app = create_app()\n    app.register_blueprint(web)\n    app.run()\n"
    )
    out = run_init(tmp_path)
    assert out.returncode == 2 and not (tmp_path / "deploy.yaml").exists()
    says = "no importable WSGI entry: shop:app gets its routes only from main() in shop/main.py:5"
    assert says in out.stderr
    assert "Write a wsgi.py" in out.stderr and "Traceback" not in out.stderr
    # A helper given the app (called by the factory) does not make the factory incomplete.
    (pkg / "main.py").write_text("def register(app):\n    app.register_blueprint(object())\n")
    assert inspect_project(tmp_path).wsgi == "shop:app"
    # Flask() only inside a class the CLI builds.
    (pkg / "__init__.py").write_text(
        "from flask import Flask\n\n\nclass Server:\n    def __init__(self, config):\n"
        "        self.app = Flask(__name__)\n"
    )
    found = inspect_project(tmp_path)
    assert found.wsgi is None
    assert found.no_entry == (
        "Flask(...) is only called at shop/__init__.py:6, inside code the project's own CLI runs"
    )


def test_a_factory_is_found_by_what_it_does_not_by_its_name(tmp_path: Path) -> None:
    """Issue #16 (dtale): build_app() builds an instance of a Flask subclass and returns it; a function
    that only configures an app it is given is no factory."""
    (tmp_path / "tale").mkdir()
    (tmp_path / "tale" / "app.py").write_text(
        "import flask\n\n\nclass TaleFlask(flask.Flask):\n    pass\n\n\n"
        "def configure(app):\n    app.config['X'] = 1\n    return app\n\n\n"
        "def build_app(reaper_on=True):\n    app = TaleFlask(__name__)\n    configure(app)\n    return app\n"
    )
    assert inspect_project(tmp_path).wsgi == "tale.app:build_app()"


def test_init_shares_the_folders_the_app_writes_at_runtime_never_one_holding_committed_files(
    tmp_path: Path,
) -> None:
    """Issue #16 (flaskbb): the app made logs/ and a search index in the release at runtime, init proposed
    neither, so the first push failed under ProtectSystem=strict. init now shares the folders PIT006
    resolves (a log file's folder, a folder key, a folder in the package), never one holding committed
    files."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text(
        "import logging.handlers\nimport os\nfrom flask import Flask\n\n\ndef create_app():\n"
        "    app = Flask(__name__)\n    app.config['WHOOSHEE_DIR'] = 'whoosh_index'\n"
        "    os.makedirs('data/uploads', exist_ok=True)\n    os.makedirs('models', exist_ok=True)\n"
        "    os.makedirs('shop/cache', exist_ok=True)\n"
        "    app.logger.addHandler(logging.handlers.RotatingFileHandler('logs/shop.log'))\n"
        "    return app\n"
    )
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "weights.bin").write_bytes(b"\0")
    (tmp_path / "requirements.txt").write_text("flask==3.1.3\n")
    found = inspect_project(tmp_path)
    assert found.shared_dirs == ["data/uploads", "logs", "shop/cache", "whoosh_index"]
    assert any("models/weights.bin" in note for note in found.notes)
    assert run_init(tmp_path).returncode == 0
    assert load(tmp_path / "deploy.yaml").app.shared == ["data/uploads", "logs", "shop/cache", "whoosh_index"]


def _cli_project(root: Path, group: str) -> None:
    """A package migrated by Flask-Alembic (no env.py), with its own console script `shop`."""
    (root / "shop" / "cli").mkdir(parents=True)
    (root / "shop" / "extensions.py").write_text("from flask_alembic import Alembic\n\nalembic = Alembic()\n")
    (root / "shop" / "__init__.py").write_text(
        "from flask import Flask\nfrom shop.extensions import alembic\n\n\ndef create_app():\n"
        "    app = Flask(__name__)\n    alembic.init_app(app, command_name='db')\n    return app\n"
    )
    (root / "shop" / "cli" / "__init__.py").write_text("from .main import shop\n")
    (root / "shop" / "cli" / "main.py").write_text(
        "import click\nfrom flask.cli import FlaskGroup\n\n\nclass ShopGroup(FlaskGroup):\n    pass\n\n\n"
        f"@click.group({group})\ndef shop():\n    pass\n"
    )
    (root / "migrations").mkdir()
    (root / "migrations" / "0001_init.py").write_text("revision = '0001'\n")
    (root / "setup.py").write_text(
        "from setuptools import setup\n\nsetup(name='shop', entry_points='''\n"
        "    [console_scripts]\n    shop=shop.cli:shop\n''')\n"
    )
    (root / "requirements.txt").write_text("flask==3.1.3\nflask-alembic==3.1.1\n")


def test_release_runs_through_the_projects_own_flask_command_group(tmp_path: Path) -> None:
    """Issue #16 (flaskbb): migrated by Flask-Alembic and served by its own FlaskGroup console script,
    init proposed no release command. The upgrade now runs through that script (it builds the app
    with its own config); a console script that is a plain click group is not one."""
    _cli_project(tmp_path, "cls=ShopGroup, create_app=None")
    found = inspect_project(tmp_path)
    assert (found.migrations, found.cli_script) == (True, "shop")
    assert run_init(tmp_path).returncode == 0
    assert load(tmp_path / "deploy.yaml").app.release == ["shop db upgrade"]
    plain = tmp_path / "plain"
    plain.mkdir()
    _cli_project(plain, "")
    found = inspect_project(plain)
    assert (found.migrations, found.cli_script) == (True, None)
    assert '  release: ["flask --app shop db upgrade"]' in write_deploy_yaml(found)


def test_a_database_file_named_by_the_environment_goes_into_a_shared_folder(tmp_path: Path) -> None:
    """Issue #16 (buku): the app took its SQLite file from MARKS_DB_FILE, else the user's home (hidden
    by ProtectHome); init shared nothing. It now points the variable into a shared data/ folder, unless
    data/ holds committed files."""
    (tmp_path / "marks.py").write_text(
        "import os\nfrom flask import Flask\n\n\ndef create_app(db_file=None):\n"
        "    app = Flask(__name__)\n    app.config['DB'] = os.getenv('MARKS_DB_FILE') or db_file\n"
        "    app.config['TREE'] = os.getenv('MARKS_DATABASE_PATH')\n    return app\n"
    )
    (tmp_path / "requirements.txt").write_text("flask==3.1.3\n")
    found = inspect_project(tmp_path)
    # A DATABASE_PATH may be a folder (a tree of files): left to the user.
    assert (found.shared_dirs, found.env) == (["data"], ["MARKS_DATABASE_PATH"])
    assert run_init(tmp_path).returncode == 0
    config = load(tmp_path / "deploy.yaml")
    assert config.app.shared == ["data"]
    assert config.app.env["MARKS_DB_FILE"] == f"data/{found.name}.db"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "seed.csv").write_text("a\n")
    assert inspect_project(tmp_path).shared_dirs == []


#: The shape of an app served by its own Tornado server (OctoPrint): a module-level Flask object
#: whose blueprints and views are added only when a server class's run() method starts Tornado.
SELF_SERVED = {
    "printhub/__init__.py": "",
    "printhub/server/__init__.py": """\
from flask import Flask

app = Flask("printhub")


class Server:
    def __init__(self, host="0.0.0.0", port=5000):
        self._host = host
        self._port = port

    def run(self):
        from tornado.ioloop import IOLoop
        from tornado.web import Application, FallbackHandler
        from tornado.wsgi import WSGIContainer

        from printhub.server.api import api

        app.register_blueprint(api, url_prefix="/api")
        container = WSGIContainer(app)
        web = Application([(r".*", FallbackHandler, {"fallback": container})])
        web.listen(self._port, address=self._host)
        IOLoop.current().start()
""",
    "printhub/server/api.py": """\
from flask import Blueprint

api = Blueprint("api", __name__)


@api.route("/version")
def version():
    return {"version": "1"}
""",
    "printhub/__main__.py": """\
from printhub.server import Server


def main():
    Server().run()


if __name__ == "__main__":
    main()
""",
}


def test_an_app_that_gets_its_routes_in_a_method_starting_its_own_server_is_no_entry(tmp_path: Path) -> None:
    """OctoPrint trial: the module-level app has no routes until Server.run() registers them and serves
    it with Tornado; init says there is no importable WSGI entry and why, instead of proposing it."""
    for rel, text in SELF_SERVED.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = inspect_project(tmp_path)
    assert found.wsgi is None
    assert found.no_entry == (
        "printhub.server:app gets its routes only from Server.run() in printhub/server/__init__.py:11, "
        "which serves it with Tornado (not a WSGI server)"
    )
    out = run_init(tmp_path)
    assert out.returncode == 2 and "no importable WSGI entry: printhub.server:app" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "deploy.yaml").exists()


def test_a_method_the_factory_calls_to_add_blueprints_keeps_the_factory(tmp_path: Path) -> None:
    """A builder class whose method registers the blueprints, called by the factory, is part of building
    the app: the project keeps an importable entry."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text(
        "from flask import Flask, Blueprint\n\napp = Flask(__name__)\nweb = Blueprint('web', __name__)\n\n\n"
        "class Builder:\n    def install(self):\n        app.register_blueprint(web)\n\n\n"
        "def create_app():\n    Builder().install()\n    return app\n"
    )
    found = inspect_project(tmp_path)
    assert found.no_entry is None and found.wsgi is not None


def test_views_imported_only_inside_the_method_that_serves_the_app_are_no_entry(tmp_path: Path) -> None:
    """The same shape with its views module (routes on the module-level app) imported only inside
    Server.run(): importing the module gives an app without those routes."""
    files = dict(SELF_SERVED)
    files["printhub/server/__init__.py"] = files["printhub/server/__init__.py"].replace(
        '        app.register_blueprint(api, url_prefix="/api")\n',
        "        from . import views  # noqa: F401\n",
    )
    files["printhub/server/views.py"] = (
        "from printhub.server import app\n\n\n@app.route('/')\ndef index():\n    return 'printhub'\n"
    )
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = inspect_project(tmp_path)
    assert found.wsgi is None
    assert found.no_entry is not None and found.no_entry.startswith(
        "printhub.server:app gets its routes only from Server.run() in printhub/server/__init__.py:11"
    )
    # Imported at the top of the module (routes registered on import): the app is complete.
    text = files["printhub/server/__init__.py"] + "\nfrom . import views  # noqa: E402,F401\n"
    (tmp_path / "printhub/server/__init__.py").write_text(text)
    assert inspect_project(tmp_path).wsgi == "printhub.server:app"
