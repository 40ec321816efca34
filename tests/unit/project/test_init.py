"""`deploy init` finds the app in the common Flask project shapes and writes a valid deploy.yaml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config.loader import load
from deploy.project.init import inspect_project

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
    assert load(project / "deploy.yaml").server.domains == ["*.example.com"]


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
        "SENTRY = config('SENTRY_DSN')\n"
        "DEV = os.getenv('DEV_DATABASE_URL')\nCONF = os.getenv('FLASK_CONFIG')\n"
    )
    found = inspect_project(tmp_path)
    assert found.secrets == ["DATABASE_URL", "MS_TRANSLATOR_KEY", "STRIPE_KEY"]
    assert found.optional_secrets == ["SENTRY_DSN"]
    assert found.env == ["FLASK_CONFIG", "SEND_FILE_MAX_AGE_DEFAULT"]


def test_no_secret_is_invented(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    assert run_init(tmp_path).returncode == 0
    assert load(tmp_path / "deploy.yaml").app.secrets == []
