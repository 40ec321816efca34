"""Checks of the effective configuration: the app factory really imported in a subprocess (--import)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.checks.support import CLEAN_APP, CONFIG, check, found, project

pytestmark = pytest.mark.unit

# A minimal app with no third-party extensions, so the subprocess needs nothing but Flask.
APP = """\
import os
from flask import Flask


def create_app():
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=os.environ["SECRET_KEY"],
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if os.environ.get("APP_DEBUG"):
        app.config["DEBUG"] = True

    @app.get("/health")
    def health():
        return {"status": "ok"}

    return app
"""
STRONG = "5f1c0a7e9b3d4c2a8e6f0b1d3c5a7e9f2b4d6c8a0e1f3b5d7c9a1e3f5b7d9c0a"
IDS = ["SEC016", "SEC017", "SEC018", "OBS005", "DEP006"]


def run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    app: str = APP,
    env: dict[str, str] | None = None,
    config: str = CONFIG,
) -> dict[str, list[str]]:
    root = project(tmp_path, {"app.py": app}, base=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    report = check(root, IDS, config=config, import_app=True)
    return found(report)


def test_clean_app_passes_every_effective_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(tmp_path, monkeypatch, env={"SECRET_KEY": STRONG}) == {}


def test_an_empty_secret_key_matters_only_to_an_app_that_uses_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model server that never signs a cookie runs fine without SECRET_KEY; one that flashes does not."""
    api = APP.replace('SECRET_KEY=os.environ["SECRET_KEY"],', "")
    assert "SEC016" not in run(tmp_path / "api", monkeypatch, app=api)
    flashing = api.replace("from flask import Flask", "from flask import Flask, flash")
    assert run(tmp_path / "flash", monkeypatch, app=flashing)["SEC016"] == [
        "app.py:6 SECRET_KEY is empty in the effective configuration"
    ]


def test_weak_secret_key_fires_sec016_and_never_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(tmp_path, monkeypatch, env={"SECRET_KEY": "abcabcabc"})
    assert set(result) == {"SEC016"}
    assert "abcabcabc" not in " ".join(result["SEC016"])
    assert "9 characters" in result["SEC016"][0]


def test_placeholder_word_fires_sec016(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "well-known placeholder" in run(tmp_path, monkeypatch, env={"SECRET_KEY": "changeme"})["SEC016"][0]


def test_secret_from_dotenv_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(f"SECRET_KEY={STRONG}\n")
    assert run(tmp_path, monkeypatch) == {}


def test_missing_secret_gets_a_placeholder_and_strength_is_not_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, {"app.py": APP}, base=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    report = check(root, IDS, config=CONFIG, import_app=True)
    assert found(report) == {}
    assert any("SEC016" in note and "not checked" in note for note in report.notes)


def test_debug_switched_on_by_the_environment_fires_sec017(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(tmp_path, monkeypatch, env={"SECRET_KEY": STRONG, "APP_DEBUG": "1"})
    assert set(result) == {"SEC017"}


def test_flask_debug_of_the_laptop_is_not_passed_to_the_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FLASK_DEBUG in the developer's shell must not leak into the "production" import.
    assert run(tmp_path, monkeypatch, env={"SECRET_KEY": STRONG, "FLASK_DEBUG": "1"}) == {}


def test_cookie_flags_fire_sec018(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = APP.replace("SESSION_COOKIE_SECURE=True,", "").replace('SESSION_COOKIE_SAMESITE="Lax",', "")
    app = app.replace("from flask import Flask\n", "from flask import Flask, session\n")  # it keeps a session
    result = run(tmp_path, monkeypatch, app, env={"SECRET_KEY": STRONG})
    assert set(result) == {"SEC018"}
    assert len(result["SEC018"]) == 2


def test_cookie_flags_of_an_app_without_a_session_do_not_matter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = APP.replace("SESSION_COOKIE_SECURE=True,", "").replace('SESSION_COOKIE_SAMESITE="Lax",', "")
    assert run(tmp_path, monkeypatch, app, env={"SECRET_KEY": STRONG}) == {}


def test_health_that_fails_fires_obs005(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = APP.replace('return {"status": "ok"}', 'return {"status": "down"}, 503')
    result = run(tmp_path, monkeypatch, app, env={"SECRET_KEY": STRONG})
    assert result == {
        "OBS005": [
            f"app.py:{APP.splitlines().index('    app = Flask(__name__)') + 1} GET /health "
            f"answered status 503"
        ]
    }


def test_app_that_crashes_fires_dep006_and_skips_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = APP.replace('SECRET_KEY=os.environ["SECRET_KEY"],', 'SECRET_KEY=os.environ["NOT_LISTED_ANYWHERE"],')
    root = project(tmp_path, {"app.py": app}, base=False)
    report = check(root, IDS, config=CONFIG, import_app=True)
    assert set(found(report)) == {"DEP006"}
    assert "KeyError" in found(report)["DEP006"][0]
    assert {c.id for c, _ in report.skipped} == {"SEC016", "SEC017", "SEC018", "OBS005"}


ASGI_APP = """\
class Api:
    async def __call__(self, scope, receive, send):
        pass


app = Api()
"""


def test_an_asgi_app_that_imports_passes_dep006_and_skips_the_flask_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fastapi-ml-skeleton imported fine, yet DEP006 said 'importing ... failed: TypeError: ... is a
    FastAPI, not a Flask app'. An object that is not callable still fails the import."""
    config = CONFIG.replace('"app:create_app()"', '"app:app"')
    root = project(tmp_path / "asgi", {"app.py": ASGI_APP}, base=False)
    report = check(root, IDS, config=config, import_app=True)
    assert found(report) == {}
    skipped = {c.id: why for c, why in report.skipped}
    assert set(skipped) == {"SEC016", "SEC017", "SEC018", "OBS005"}
    assert skipped["OBS005"] == "the app imported; it is a Api, not Flask: no Flask config to read"
    root = project(tmp_path / "none", {"app.py": "app = 42\n"}, base=False)
    report = check(root, IDS, config=config, import_app=True)
    assert [m.split(" ", 1)[1] for m in found(report)["DEP006"]] == [
        "importing app:app failed: TypeError: app:app is a int, not a WSGI or ASGI app"
    ]


def test_without_import_the_effective_checks_are_skipped_not_passed(tmp_path: Path) -> None:
    root = project(tmp_path, {"app.py": CLEAN_APP})
    report = check(root, IDS, config=CONFIG)
    assert report.passed == []
    assert {c.id for c, reason in report.skipped if "--import" in reason} == set(IDS)


def test_without_deploy_yaml_the_app_is_found_in_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, {"app.py": APP}, base=False)
    monkeypatch.setenv("SECRET_KEY", STRONG)
    report = check(root, IDS, import_app=True)
    assert found(report) == {}
    assert len(report.passed) == 5


def test_the_import_copy_holds_no_secret_file(tmp_path: Path) -> None:
    """`deploy check` imports a copy of what push ships: no secret file (deploy.config.secretfiles) in it."""
    from deploy.project.inspect_app import copy_project
    from tests.unit.push.test_artifact import NOT_SECRET_FILES, SECRET_FILES

    source, dest = tmp_path / "project", tmp_path / "copy"
    for name in SECRET_FILES + NOT_SECRET_FILES:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x\n")
    copy_project(source, dest)
    copied = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert copied == set(NOT_SECRET_FILES)
