"""Release commands that fit the app's Flask: `flask --app X` exists from Flask 2.2; older Flask reads
$FLASK_APP (issue #16: init wrote `flask --app` for an app pinned to Flask 2.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.config.flask_version import declared_flask, flask_command, flask_has_app_option
from deploy.config.loader import ConfigError, load_text
from deploy.project.init import inspect_project, write_deploy_yaml

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("file", "text", "has_option"),
    [
        ("requirements.txt", "Flask==2.1.3\n", False),
        ("requirements.txt", "flask-sqlalchemy==3.0.5\nflask>=2.0,<2.2\n", False),
        ("requirements.txt", "flask~=2.0.1\n", False),
        ("requirements.txt", "flask[async]==2.0.3 \\\n    --hash=sha256:abc\n", False),
        ("requirements/prod.txt", "Flask==1.1.4\n", False),
        ("pyproject.toml", '[project]\nname = "x"\ndependencies = ["Flask<2.2", "requests"]\n', False),
        ("setup.py", 'setup(name="x", install_requires=["Flask==2.1.0", "click"])\n', False),
        ("setup.cfg", "[options]\ninstall_requires =\n    Flask==2.1.2\n", False),
        ("requirements.txt", "flask==2.2.0\n", True),
        ("requirements.txt", "flask>=2.0\n", True),
        ("requirements.txt", "flask\n", True),
        ("requirements.txt", "flask-sqlalchemy==2.1\n", True),
        ("requirements.txt", "flask==3.1.3\n", True),
    ],
)
def test_the_declared_flask_decides_the_command(
    tmp_path: Path, file: str, text: str, has_option: bool
) -> None:
    (tmp_path / file).parent.mkdir(exist_ok=True)
    (tmp_path / file).write_text(text, encoding="utf-8")
    assert flask_has_app_option(tmp_path) is has_option, declared_flask(tmp_path)
    expected = "flask --app shop db upgrade" if has_option else "FLASK_APP=shop flask db upgrade"
    assert flask_command(tmp_path, "shop", "db upgrade") == expected


def _migrating_app(root: Path, flask: str) -> None:
    (root / "shop").mkdir()
    (root / "shop" / "__init__.py").write_text(
        "from flask import Flask\nfrom flask_migrate import Migrate\n\n\ndef create_app():\n"
        "    return Flask(__name__)\n",
        encoding="utf-8",
    )
    (root / "requirements.txt").write_text(f"{flask}\nflask-migrate==3.1.0\n", encoding="utf-8")
    (root / "migrations").mkdir()
    (root / "migrations" / "env.py").write_text("# alembic env\n", encoding="utf-8")


def test_init_writes_a_release_command_the_apps_flask_knows(tmp_path: Path) -> None:
    _migrating_app(tmp_path, "Flask==2.1.3")
    text = write_deploy_yaml(inspect_project(tmp_path))
    assert 'release: ["FLASK_APP=shop flask db upgrade"]' in text
    assert "--app" not in text
    load_text(text, "deploy.yaml", None, tmp_path)  # valid, with the project at hand
    (tmp_path / "requirements.txt").write_text("Flask==3.0.0\nflask-migrate\n", encoding="utf-8")
    assert 'release: ["flask --app shop db upgrade"]' in write_deploy_yaml(inspect_project(tmp_path))


def test_a_flask_app_release_command_for_an_old_flask_is_a_config_error(tmp_path: Path) -> None:
    _migrating_app(tmp_path, "Flask==2.1.3")
    text = (
        "app:\n  name: shop\n  wsgi: 'shop:create_app()'\n"
        "  release: ['flask --app shop db upgrade']\n"
        "server:\n  domains: [shop.example.com]\n  hosts: [web1]\n  tls: false\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_text(text, "deploy.yaml", None, tmp_path)
    (problem,) = caught.value.problems
    assert str(problem).startswith("deploy.yaml:4: app.release[0]:"), str(problem)
    assert "requirements.txt declares flask==2.1.3" in str(problem)
    assert "'FLASK_APP=shop flask db upgrade'" in str(problem)
    load_text(text)  # without the project: nothing to judge by
    (tmp_path / "requirements.txt").write_text("Flask==2.3.3\n", encoding="utf-8")
    load_text(text, "deploy.yaml", None, tmp_path)
