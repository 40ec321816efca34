"""The command line as a user meets it: exit codes, one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
FLASKR = REPO / "playbooks" / "flaskr"


def deploy(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env
    )


def test_help_lists_the_commands() -> None:
    out = deploy("--help")
    assert out.returncode == 0
    for command in ("init", "config", "schema", "render", "templates"):
        assert f"  {command}" in out.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app: [\n", "deploy.yaml:2: this is not valid YAML"),
        ("app: {name: x, wsgi: 'a:b', colour: red}\nserver: {domains: [x.com]}\n", "app.colour: unknown key"),
        (
            "app: {name: x, wsgi: 'a:b'}\nserver: {domains: ['x.com;']}\n",
            "server.domains[0]: expected a domain",
        ),
    ],
)
def test_bad_config_exits_2_without_traceback(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "deploy.yaml").write_text(text)
    for command in (["config"], ["render", "--out", str(tmp_path / "out")]):
        out = deploy(*command, cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        assert expected in out.stderr
        assert "Traceback" not in out.stderr + out.stdout
        assert not (tmp_path / "out").exists()


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    out = deploy("render", cwd=tmp_path)
    assert out.returncode == 2
    assert "deploy.yaml: no such file" in out.stderr


def test_config_redacts_secrets(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text((FLASKR / "deploy.yaml").read_text())
    (tmp_path / ".env").write_text("SECRET_KEY=super-secret-value-123\n")
    out = deploy("config", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    # 22 bytes: set, and too short to sign sessions (what deploy check reports as SEC020).
    assert data["app"]["secrets"] == {
        "SECRET_KEY": "(set in .env; weak: it has 22 bytes (at least 32 random bytes are needed))"
    }
    assert "super-secret-value-123" not in out.stdout + out.stderr


def test_config_says_where_a_strong_secret_comes_from(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text((FLASKR / "deploy.yaml").read_text())
    strong = "9f2c4e7a1b8d3f6e0a5c9b2d7e4f1a8c3b6d9e2f5a8c1b4d"
    (tmp_path / ".env").write_text(f"SECRET_KEY={strong}\n")
    clean = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    data = json.loads(deploy("config", "--json", cwd=tmp_path, env=clean).stdout)
    assert data["app"]["secrets"] == {"SECRET_KEY": "(set in .env)"}
    # The environment wins over .env, as it does for push.
    out = deploy("config", "--json", cwd=tmp_path, env={**clean, "SECRET_KEY": "dev"})
    assert json.loads(out.stdout)["app"]["secrets"] == {
        "SECRET_KEY": "(set in the environment; weak: it is a well-known placeholder)"
    }
    (tmp_path / ".env").unlink()
    out = deploy("config", "--json", cwd=tmp_path, env=clean)
    assert json.loads(out.stdout)["app"]["secrets"] == {"SECRET_KEY": "(missing)"}


def test_config_with_environment(tmp_path: Path) -> None:
    out = deploy("config", "-c", str(FLASKR / "deploy.yaml"), "-e", "staging", "--json")
    assert json.loads(out.stdout)["server"]["domains"] == ["staging.flaskr.example.com"]


def test_schema_is_json_schema_for_every_section() -> None:
    out = deploy("schema")
    schema = json.loads(out.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {
        "app",
        "server",
        "gunicorn",
        "nginx",
        "systemd",
        "docker",
        "hooks",
        "push",
        "environments",
    } <= set(schema["properties"])
    assert "environment" not in schema["properties"]
    assert schema["required"] == ["app", "server"]


def test_render_writes_files(tmp_path: Path) -> None:
    out = deploy("render", "-c", str(FLASKR / "deploy.yaml"), "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    written = {
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()
    }
    assert {
        "gunicorn.conf.py",
        "nginx/flaskr.conf",
        "systemd/flaskr@.service",
        "Dockerfile",
        ".dockerignore",
        "compose.yaml",
    } <= written


def test_render_keeps_its_own_folder_out_of_git_but_never_the_project(tmp_path: Path) -> None:
    """`deploy render` then `deploy push`: the default deploy-out/ must not make the tree dirty."""
    import shutil

    project = tmp_path / "app"
    shutil.copytree(FLASKR, project, ignore=shutil.ignore_patterns("__pycache__", "instance", ".env"))
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "app"], cwd=project, check=True)
    assert (
        deploy("render", "-c", str(project / "deploy.yaml"), "--out", str(project / "deploy-out")).returncode
        == 0
    )
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True)
    assert status.stdout == "" and (project / "deploy-out" / "Dockerfile").is_file()
    # A folder that already holds other files (here: the project itself) gets no .gitignore.
    assert deploy("render", "-c", str(project / "deploy.yaml"), "--out", str(project)).returncode == 0
    assert not (project / ".gitignore").exists() and (project / "Dockerfile").is_file()


def test_render_rejects_a_bad_nginx_version(tmp_path: Path) -> None:
    out = deploy("render", "-c", str(FLASKR / "deploy.yaml"), "--nginx-version", "1.22; evil", "--stdout")
    assert out.returncode == 2
    assert "expected a version" in out.stderr


def test_templates_lists_and_prints() -> None:
    listing = deploy("templates")
    assert "nginx-site.conf.j2" in listing.stdout.split()
    shown = deploy("templates", "nginx-site.conf.j2")
    assert shown.returncode == 0 and "server" in shown.stdout
    missing = deploy("templates", "nope.j2")
    assert missing.returncode == 2 and "no template 'nope.j2'" in missing.stderr
