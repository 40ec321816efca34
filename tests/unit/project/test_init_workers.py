"""`deploy init`'s workers listen where the app's jobs go, and a Procfile's worker lines get what init
knows of their kind (the warm shutdown's time, the ready-made probe, a scheduler as a singleton)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy.config.loader import load_text
from deploy.project.frameworks import procfile_process
from deploy.project.init import inspect_project, write_deploy_yaml

pytestmark = pytest.mark.unit

#: Jobs go to a named queue through a queue the app factory keeps on the app.
NAMED_QUEUE = """\
import rq
from flask import Flask
from redis import Redis


def create_app():
    app = Flask(__name__)
    app.task_queue = rq.Queue("shop-tasks", connection=Redis.from_url("redis://"))
    return app
"""

TASKS = """\
from flask import current_app


def launch(name):
    return current_app.task_queue.enqueue("shop.tasks." + name)
"""

DECORATED = """\
from redis import Redis
from rq.decorators import job


@job("mail", connection=Redis())
def send(to):
    return to
"""


def _written(root: Path, files: dict[str, str]) -> dict[str, object]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    text = write_deploy_yaml(inspect_project(root), hosts=["10.0.0.5"])
    load_text(text, "deploy.yaml", None)
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(
    ("files", "queues"),
    [
        ({"shop/__init__.py": NAMED_QUEUE, "shop/tasks.py": TASKS}, "shop-tasks"),
        (
            {"shop/__init__.py": NAMED_QUEUE, "shop/mail.py": DECORATED, "shop/tasks.py": TASKS},
            "shop-tasks mail",
        ),
        ({"shop/__init__.py": NAMED_QUEUE.replace('"shop-tasks", ', ""), "shop/tasks.py": TASKS}, "default"),
    ],
    ids=["named", "named-and-decorated", "unnamed"],
)
def test_the_rq_worker_listens_to_the_queues_the_code_names(
    tmp_path: Path, files: dict[str, str], queues: str
) -> None:
    data = _written(tmp_path, {**files, "requirements.txt": "flask==3.1.3\nrq==2.6.1\n"})
    processes = data["processes"]
    assert isinstance(processes, dict)
    assert processes["worker"]["command"] == f"rq worker --url $REDIS_URL {queues}"


def test_a_procfile_worker_gets_its_warm_shutdown_and_probe(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(
        "web: gunicorn shop:app\n"
        "worker: rq worker shop-tasks\n"
        "celery: celery -A shop.celery worker -l info\n"
        "beat: celery -A shop.celery beat\n"
        "clock: python clock.py\n"
    )
    data = _written(
        tmp_path,
        {
            "shop.py": "from flask import Flask\n\napp = Flask(__name__)\n",
            "requirements.txt": "flask==3.1.3\n",
        },
    )
    assert data["processes"] == {
        "worker": {"command": "rq worker shop-tasks", "stop_timeout": 600, "ready": {"kind": "rq"}},
        "celery": {
            "command": "celery -A shop.celery worker -l info",
            "stop_timeout": 600,
            "ready": {"kind": "celery"},
        },
        "beat": {"command": "celery -A shop.celery beat", "singleton": True},
        "clock": {"command": "python clock.py"},
    }
    assert "shared" not in data["app"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("command", "singleton", "ready"),
    [
        ("celery -A tasks worker -B", True, "celery"),
        (".venv/bin/rqscheduler --url $REDIS_URL", True, None),
        ("rq info", False, None),
        ("celery -A 'unbalanced worker", False, None),
    ],
)
def test_the_kind_of_a_procfile_line(command: str, singleton: bool, ready: str | None) -> None:
    process = procfile_process("p", command)
    assert (process.command, process.singleton, process.ready) == (command, singleton, ready)


#: A Flask-Script manage.py: the app, its manager, commands registered on the manager (objects built to
#: be handed to it), a translated message; the manager runs only under the main guard.
MANAGE = """\
from flask import Flask
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager
from flask_script import Manager, Server, Shell

app = Flask(__name__)
login = LoginManager(app)
login.login_message = _l("Please log in to access this page.")
manager = Manager(app)
manager.add_command("shell", Shell(make_context=lambda: {"app": app}))
manager.add_command("runserver", Server(host="0.0.0.0"))

if __name__ == "__main__":
    manager.run()
"""


def test_registering_built_objects_and_translated_strings_are_no_side_effects() -> None:
    import ast

    from deploy.project.candidates import side_effect

    assert side_effect(ast.parse(MANAGE)) is None
    for tail, expected in (
        ('manager.add_command("export", run_export())\n', "run_export()"),
        ('unknown.add_command("shell", Shell())\n', "Shell()"),
        ("manager.run()\n", "manager.run()"),
    ):
        found = side_effect(ast.parse(MANAGE + tail))
        assert found is not None and expected in found, (tail, found)


def test_the_procfile_web_line_serving_a_manage_py_is_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: gunicorn manage:app\nworker: python -u manage.py run_worker\n")
    (tmp_path / "manage.py").write_text(MANAGE)
    (tmp_path / "shop").mkdir()  # an app factory too: a clean module that would win over a "dirty" one
    (tmp_path / "shop" / "__init__.py").write_text(
        "from flask import Flask\n\n\ndef create_app():\n    return Flask(__name__)\n"
    )
    found = inspect_project(tmp_path)
    assert found.wsgi == "manage:app"
    assert not any("not an entry point" in n for n in found.notes), found.notes


#: The Celery app built by a function of the module that builds the Flask app, and a health blueprint
#: at /up (Rails' and Kamal's path).
FACTORY_CELERY = """\
from celery import Celery, Task
from flask import Blueprint, Flask

up = Blueprint("up", __name__, url_prefix="/up")


@up.get("/")
def index():
    return ""


def create_celery_app(app=None):
    app = app or create_app()
    celery = Celery(app.import_name)
    celery.conf.update(app.config.get("CELERY_CONFIG", {}))
    return celery


def create_app():
    app = Flask(__name__)
    app.register_blueprint(up)
    return app


celery_app = create_celery_app()
"""


def test_a_celery_app_a_function_builds_is_named_and_beat_writes_to_the_shared_folder(tmp_path: Path) -> None:
    from tests.unit.checks.support import check, found

    data = _written(
        tmp_path, {"hello/__init__.py": "", "hello/app.py": FACTORY_CELERY, "requirements.txt": "celery\n"}
    )
    app = data["app"]
    assert isinstance(app, dict) and app["health"] == "/up/"
    processes = data["processes"]
    assert isinstance(processes, dict)
    assert processes["worker"]["command"] == "celery -A hello.app.celery_app worker --loglevel=INFO"
    schedule = "celerybeat/celerybeat-schedule"  # an app.shared folder: the shared folder's root is root's
    assert app["shared"] == ["celerybeat"]
    assert (
        processes["beat"]["command"] == f"celery -A hello.app.celery_app beat --loglevel=INFO -s {schedule}"
    )
    # init's own processes pass the process checks (XL035 failed on Celery's default schedule file).
    text = write_deploy_yaml(inspect_project(tmp_path), hosts=["10.0.0.5"])
    (tmp_path / "deploy.yaml").write_text(text)
    assert found(check(tmp_path, ["XL030", "XL031", "XL035"], config=text)) == {}


def test_settings_read_with_no_default_are_said_apart(tmp_path: Path) -> None:
    """A view reading os.environ["PYTHON_VERSION"] (set by Docker's python image) fails wherever the
    variable is missing: init says so apart from the settings read with a default."""
    app = (
        "import os\n\nfrom flask import Flask\n\napp = Flask(__name__)\n"
        'app.config["TITLE"] = os.getenv("APP_TITLE", "Shop")\n\n\n@app.get("/")\n'
        'def home():\n    return os.environ["PYTHON_VERSION"]\n'
    )
    (tmp_path / "app.py").write_text(app)
    found = inspect_project(tmp_path)
    assert (found.env, found.required_env) == (["APP_TITLE", "PYTHON_VERSION"], ["PYTHON_VERSION"])
    text = write_deploy_yaml(found, hosts=["10.0.0.5"])
    assert "  # with no default, so the app fails without them: PYTHON_VERSION\n" in text
    assert any(n.startswith("read with no default (os.environ[...]): PYTHON_VERSION:") for n in found.notes)


@pytest.mark.parametrize(
    ("location", "env_py", "release"),
    [("db/", "db/env.py", True), ("%(here)s/alembic", "alembic/env.py", True), ("db", None, False)],
)
def test_plain_alembic_gets_its_upgrade_as_the_release_command(
    tmp_path: Path, location: str, env_py: str | None, release: bool
) -> None:
    """alembic.ini at the root, no Flask-Migrate: `python -m alembic upgrade head` (python -m: an env.py
    importing the app finds it, as the alembic script alone would not)."""
    (tmp_path / "app.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n")
    (tmp_path / "alembic.ini").write_text(f"[alembic]\nscript_location = {location}\n")
    if env_py is not None:
        (tmp_path / env_py).parent.mkdir(parents=True)
        (tmp_path / env_py).write_text("from app import app\n")
    text = write_deploy_yaml(inspect_project(tmp_path), hosts=["10.0.0.5"])
    assert ('  release: ["python -m alembic upgrade head"]' in text) is release
