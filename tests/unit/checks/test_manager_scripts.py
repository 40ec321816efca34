"""A Flask-Script project (flask-base's shape). PIT001: `manager.run()` in `manage.py` is a command line,
and only its server commands (`runserver`, an `add_command(NAME, Server())`) start the development
server; a worker or a maintenance command run through it does not. DEP005: Flask-Migrate set up with no
migration scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.checks.support import check, found, project

pytestmark = pytest.mark.unit

MANAGE = """\
from flask_script import Manager, Server

from app import create_app

app = create_app()
manager = Manager(app)
manager.add_command("serve", Server(host="0.0.0.0", use_debugger=True))


@manager.command
def run_worker():
    from worker import work

    work()


if __name__ == "__main__":
    manager.run()
"""

#: A script whose `.run()` is the app's own: every command that runs it starts the development server.
RUN_PY = """\
from app import create_app

app = create_app()

if __name__ == "__main__":
    app.run(debug=True)
"""

PROCFILE = """\
web: gunicorn "app:create_app()"
worker: python -u manage.py run_worker
seed: python manage.py --quiet setup_db
dev: python manage.py runserver
serve: python3 manage.py serve
script: python run.py worker
"""


def test_only_the_server_commands_of_a_manager_start_the_development_server(tmp_path: Path) -> None:
    root = project(tmp_path, {"manage.py": MANAGE, "run.py": RUN_PY, "Procfile": PROCFILE})
    result = found(check(root, ["PIT001"])).get("PIT001", [])
    assert sorted(f.split(" ", 1)[0] for f in result) == ["Procfile:4", "Procfile:5", "Procfile:6"], result


def test_a_manager_module_that_runs_the_app_itself_is_reported_for_any_command(tmp_path: Path) -> None:
    both = MANAGE.replace("    manager.run()\n", "    manager.run()\n    app.run()\n")
    root = project(tmp_path, {"manage.py": both, "Procfile": "worker: python manage.py run_worker\n"})
    result = found(check(root, ["PIT001"])).get("PIT001", [])
    assert [f.split(" ", 1)[0] for f in result] == ["Procfile:1"], result


MIGRATE = """\
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from app import create_app

db = SQLAlchemy()
app = create_app()
migrate = Migrate(app, db)
"""


def test_dep005_flask_migrate_without_migration_scripts(tmp_path: Path) -> None:
    """Flask-Migrate set up, but no migrations/ folder in the repository: nothing to upgrade to, so it is
    not "migrations exist but the release does not run them"."""
    root = project(tmp_path, {"manage.py": MIGRATE})
    result = found(check(root, ["DEP005"])).get("DEP005", [])
    assert len(result) == 1 and result[0].startswith("manage.py:8 ") and "no migration scripts" in result[0]
    (root / "migrations").mkdir()
    (root / "migrations" / "env.py").write_text("# alembic env\n")
    assert found(check(root, ["DEP005"])).get("DEP005", []) == []
