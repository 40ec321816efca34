"""Debug mode that is off unless something turns it on: a `DebuggedApplication` wrap under `if app.debug:`
(SEC001), and FLASK_DEBUG passed through from a variable whose default is false (XL004): in a Dockerfile
(`ARG FLASK_DEBUG="false"`, `ENV FLASK_DEBUG="${FLASK_DEBUG}"`) and a compose file
(`FLASK_DEBUG=${FLASK_DEBUG:-false}`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.checks.support import check, found, imported_by_app, project

pytestmark = pytest.mark.unit

MIDDLEWARE = """\
from flask import Flask
from werkzeug.debug import DebuggedApplication

app = Flask(__name__)
if {test}:
    app.wsgi_app = DebuggedApplication(app.wsgi_app, evalex=True)
"""


@pytest.mark.parametrize(
    ("test", "fires"),
    [
        ("app.debug", False),
        ('app.config["DEBUG"]', False),
        ('app.config.get("DEBUG")', False),
        ("app.testing", True),
        ("True", True),
    ],
)
def test_sec001_a_debugger_wrap_under_the_debug_flag(tmp_path: Path, test: str, fires: bool) -> None:
    root = project(tmp_path, imported_by_app({"middleware.py": MIDDLEWARE.format(test=test)}))
    result = found(check(root, ["SEC001"])).get("SEC001", [])
    assert bool(result) is fires, result
    assert all(f.startswith("middleware.py:6 ") for f in result), result


DOCKERFILE = """\
FROM python:3.13.5-slim
ARG UID=1000 FLASK_DEBUG="{default}"
ENV FLASK_DEBUG="${{FLASK_DEBUG}}" PYTHONUNBUFFERED="true"
CMD ["gunicorn", "app:create_app()"]
"""


@pytest.mark.parametrize(("default", "fires"), [("false", False), ("0", False), ("true", True), ("1", True)])
def test_xl004_a_dockerfile_env_from_its_arg(tmp_path: Path, default: str, fires: bool) -> None:
    root = project(tmp_path, {"Dockerfile": DOCKERFILE.format(default=default)})
    result = found(check(root, ["XL004"])).get("XL004", [])
    assert [f.split(" ", 1)[0] for f in result] == (["Dockerfile:3"] if fires else []), result


@pytest.mark.parametrize(
    ("value", "fires"),
    [
        ("${FLASK_DEBUG:-false}", False),
        ("${FLASK_DEBUG-0}", False),
        ("${FLASK_DEBUG}", False),  # no default here: what is passed in decides
        ("${FLASK_DEBUG:-1}", True),
        ("1", True),
    ],
)
def test_xl004_a_compose_value_by_its_default(tmp_path: Path, value: str, fires: bool) -> None:
    compose = f'services:\n  web:\n    environment:\n      FLASK_DEBUG: "{value}"\n'
    root = project(tmp_path, {"compose.yaml": compose})
    result = found(check(root, ["XL004"])).get("XL004", [])
    assert [f.split(" ", 1)[0] for f in result] == (["compose.yaml:4"] if fires else []), result
