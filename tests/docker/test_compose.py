"""compose.yaml as rendered for every example playbook passes `docker-compose config` (Debian's compose)."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from deploy.config.loader import load
from deploy.render.render import render
from tests.conftest import require_tools
from tests.docker.engine import docker

pytestmark = pytest.mark.docker

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ALL = sorted(PLAYBOOKS.glob("*.yaml")) + sorted(PLAYBOOKS.glob("*/deploy.yaml"))


def compose_config(folder: Path) -> subprocess.CompletedProcess[str]:
    """Validate only (-q): without it, compose prints the values it read from .env."""
    require_tools("docker-compose")
    binary = shutil.which("docker-compose") or "docker-compose"
    return subprocess.run([binary, "--project-directory", str(folder), "-f", str(folder / "compose.yaml"),
                           "config", "-q"], capture_output=True, text=True, timeout=120)


def write_project(folder: Path, playbook: Path) -> None:
    files = render(load(playbook))
    for name in ("compose.yaml", "Dockerfile", ".dockerignore"):
        (folder / name).write_text(files[name], encoding="utf-8")
    (folder / ".env").write_text("SECRET_KEY=only-for-this-test\n", encoding="utf-8")


@pytest.mark.parametrize("playbook", ALL, ids=lambda p: str(p.relative_to(PLAYBOOKS)))
def test_compose_file_is_valid(playbook: Path, tmp_path: Path) -> None:
    write_project(tmp_path, playbook)
    result = compose_config(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "only-for-this-test" not in result.stdout + result.stderr


def test_compose_config_rejects_what_it_should(tmp_path: Path) -> None:
    """The check above can fail: an invalid value in the same file is reported."""
    write_project(tmp_path, ALL[0])
    compose = tmp_path / "compose.yaml"
    compose.write_text(compose.read_text().replace("read_only: true", "read_only: sometimes"))
    result = compose_config(tmp_path)
    assert result.returncode != 0 and "read_only" in result.stderr


def test_missing_env_file_is_an_error_not_an_empty_secret(tmp_path: Path) -> None:
    write_project(tmp_path, ALL[0])
    (tmp_path / ".env").unlink()
    result = compose_config(tmp_path)
    assert result.returncode != 0 and ".env" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_compose_up_runs_the_app_healthy_read_only_and_non_root(tmp_path: Path, base_image: str) -> None:
    """`docker-compose up` on the real engine: the service turns healthy and serves /health."""
    project = tmp_path / f"flaskr{uuid.uuid4().hex[:6]}"
    shutil.copytree(PLAYBOOKS / "flaskr", project, ignore=shutil.ignore_patterns("__pycache__", ".env"))
    config = load(project / "deploy.yaml")
    port = _free_port()  # the app's port, inside and out, so parallel runs never collide
    config = config.model_copy(update={"app": config.app.model_copy(update={"port": port})})
    files = render(config, project_dir=project)
    for name in ("compose.yaml", "Dockerfile", ".dockerignore", "gunicorn.conf.py"):
        (project / name).write_text(files[name], encoding="utf-8")
    (project / ".env").write_text(f"SECRET_KEY={secrets.token_hex(32)}\n", encoding="utf-8")
    compose = [shutil.which("docker-compose") or "docker-compose", "--project-directory", str(project),
               "-f", str(project / "compose.yaml"), "-p", project.name]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*compose, *args], capture_output=True, text=True, timeout=600)

    compose_config(project)  # skips or fails clearly when docker-compose is missing
    dangling = set(docker("images", "-q", "--filter", "dangling=true").stdout.split())
    try:
        built = run("build", "--build-arg", f"BASE_IMAGE={base_image}")
        assert built.returncode == 0, built.stderr[-3000:]
        up = run("up", "-d", "--no-build")
        assert up.returncode == 0, up.stderr[-3000:]
        container = run("ps", "-q", "app").stdout.strip()
        deadline, status = time.monotonic() + 90, ""
        while time.monotonic() < deadline:
            # The image's HEALTHCHECK (first probe after 30s) decides, as in production.
            status = docker("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
            if status in ("healthy", "unhealthy"):
                break
            time.sleep(2)
        assert status == "healthy", run("logs", "app").stdout[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
        assert docker("exec", container, "id", "-u").stdout.strip() != "0"
        inspect = json.loads(docker("inspect", container).stdout)[0]["HostConfig"]
        assert inspect["ReadonlyRootfs"] is True and inspect["CapDrop"] == ["ALL"]
        assert inspect["RestartPolicy"]["Name"] == "unless-stopped"
    finally:
        run("down", "-v", "--rmi", "all", "--remove-orphans")
        # The build stage is left untagged by the build: remove it too (never the base image).
        stages = set(docker("images", "-q", "--filter", "dangling=true").stdout.split()) - dangling
        if stages:
            docker("image", "rm", "-f", *stages, check=False)
