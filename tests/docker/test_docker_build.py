"""Build the example app's generated Dockerfile on a real engine and run it the way compose.yaml does."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.config.loader import load
from deploy.render.render import render
from tests.docker.engine import build, docker, docker_binary, proxy_build_args

pytestmark = pytest.mark.docker

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "flaskr"
#: Files a careless build would copy into the image; .dockerignore must keep every one out.
DECOY_SECRET = "decoy-secret-" + "x" * 24
DECOYS = {
    ".env": f"SECRET_KEY={DECOY_SECRET}\n",
    ".env.production": f"SECRET_KEY={DECOY_SECRET}\n",
    ".git/config": f"[remote]\n\turl = https://user:{DECOY_SECRET}@example.invalid/repo.git\n",
    ".venv/pyvenv.cfg": "home = /usr/bin\n",
    "venv/pyvenv.cfg": "home = /usr/bin\n",
    "instance/notes.txt": "local data, not for the image\n",
    "flaskr/__pycache__/__init__.cpython-311.pyc": "",
    "id_ed25519": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{DECOY_SECRET}\n",
    "deploy-out/nginx/flaskr.conf": "# rendered elsewhere\n",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of playbooks/flaskr with the rendered Docker files at its root, plus decoy files."""
    root = tmp_path_factory.mktemp("flaskr") / "flaskr"
    shutil.copytree(PLAYBOOK, root, ignore=shutil.ignore_patterns("__pycache__", ".env"))
    config = load(root / "deploy.yaml")
    files = render(config, project_dir=root)
    for name in ("Dockerfile", ".dockerignore", "compose.yaml", "gunicorn.conf.py"):
        (root / name).write_text(files[name], encoding="utf-8")
    for name, text in DECOYS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def image(project: Path, base_image: str) -> Iterator[str]:
    tag = f"deploy-test/flaskr:{uuid.uuid4().hex[:12]}"
    dangling_before = set(docker("images", "-q", "--filter", "dangling=true").stdout.split())
    build(project, tag, base_image)
    # The build stage stays behind as an untagged image: remove it with the image (not the base image).
    stages = set(docker("images", "-q", "--filter", "dangling=true").stdout.split()) - dangling_before
    yield tag
    docker("image", "rm", "-f", tag, *stages, check=False)


def _compose_flags(project: Path) -> list[str]:
    """The docker run flags that match compose.yaml's hardening of the app service."""
    app: dict[str, Any] = yaml.safe_load((project / "compose.yaml").read_text())["services"]["app"]
    flags: list[str] = []
    if app.get("read_only"):
        flags.append("--read-only")
    flags += [f"--tmpfs={path}" for path in app.get("tmpfs", [])]
    flags += [f"--cap-drop={cap}" for cap in app.get("cap_drop", [])]
    flags += [f"--security-opt={opt}" for opt in app.get("security_opt", [])]
    # Named volumes become anonymous ones here (removed with the container).
    flags += [f"--mount=type=volume,dst={volume.split(':')[1]}" for volume in app.get("volumes", [])]
    for key, value in app.get("environment", {}).items():
        flags += ["-e", f"{key}={value}"]
    return flags


@pytest.fixture(scope="module")
def container(project: Path, image: str) -> Iterator[tuple[str, int]]:
    """The app running with a secret from the environment, published on a free loopback port."""
    name = f"deploy-test-flaskr-{uuid.uuid4().hex[:8]}"
    # The secret reaches the container as a variable; docker run reads its value from our environment
    # (-e NAME without =value), so it never appears in a command line.
    env = {"SECRET_KEY": secrets.token_hex(32)}
    docker_run = ["run", "-d", "--name", name, "-e", "SECRET_KEY", "-p", "127.0.0.1::8000",
                  # The image's own HEALTHCHECK command, checked every second instead of every 30s.
                  "--health-interval=1s", "--health-start-period=1s",
                  *_compose_flags(project), image]
    started = subprocess.run([docker_binary(), *docker_run], capture_output=True, text=True,
                             env={**os.environ, **env}, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        port_line = docker("port", name, "8000/tcp").stdout.splitlines()[0]
        yield name, int(port_line.rsplit(":", 1)[1])
    finally:
        docker("rm", "-f", "-v", name, check=False)


def _logs(name: str) -> str:
    result = docker("logs", name, check=False)
    return (result.stdout + result.stderr)[-3000:]


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def test_container_answers_health_with_200(container: tuple[str, int]) -> None:
    name, port = container
    deadline = time.monotonic() + 60
    status, body, problem = 0, b"", ""
    while time.monotonic() < deadline:
        try:
            status, body = _get(port, "/health")
            if status == 200:
                break
        except OSError as error:  # not listening yet
            problem = str(error)
        time.sleep(0.5)
    assert status == 200, f"/health never answered 200 (last: {status} {problem})\n{_logs(name)}"
    assert json.loads(body)["status"] == "ok"


def test_container_runs_as_the_non_root_user(container: tuple[str, int], image: str) -> None:
    name, _ = container
    assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
    assert docker("exec", name, "id", "-un").stdout.strip() == "app"
    assert docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip() == "10001:10001"
    # Gunicorn's master (PID 1) too, not only what docker exec starts.
    status = docker("exec", name, "cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["10001"] * 4


def test_image_healthcheck_reports_healthy_without_curl(container: tuple[str, int]) -> None:
    name, _ = container
    assert docker("exec", name, "sh", "-c", "command -v curl || command -v wget", check=False).returncode != 0
    deadline = time.monotonic() + 60
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        health = json.loads(docker("inspect", "--format", "{{json .State.Health}}", name).stdout)
        if health["Status"] == "healthy":
            break
        time.sleep(1)
    assert health.get("Status") == "healthy", f"{health}\n{_logs(name)}"


def test_app_writes_only_to_its_volume_and_tmpfs(container: tuple[str, int]) -> None:
    name, _ = container
    assert docker("exec", name, "touch", "/app/instance/probe").returncode == 0
    assert docker("exec", name, "touch", "/tmp/probe").returncode == 0
    read_only = docker("exec", name, "touch", "/app/probe", check=False)
    assert read_only.returncode != 0 and "Read-only file system" in read_only.stderr
    # Application code belongs to root: the app user cannot change it even without --read-only.
    assert docker("exec", name, "stat", "-c", "%U", "/app/flaskr/__init__.py").stdout.strip() == "root"


def test_image_holds_no_secrets_and_no_local_state(image: str) -> None:
    listing = docker("run", "--rm", image, "find", "/app", "-path", "/app/flaskr/static", "-prune", "-o",
                     "-print").stdout.splitlines()
    for decoy in DECOYS:
        top = "/app/" + decoy.split("/")[0]
        if decoy.startswith("instance/"):
            assert "/app/instance" in listing and "/app/instance/notes.txt" not in listing
        elif decoy.startswith("flaskr/"):
            assert "/app/" + decoy not in listing
        else:
            assert top not in listing, f"{decoy} was copied into the image"
    grep = docker("run", "--rm", image, "grep", "-rl", DECOY_SECRET, "/app", "/opt/venv", check=False)
    assert grep.returncode == 1, f"the decoy secret is in the image: {grep.stdout}"
    history = docker("history", "--no-trunc", image).stdout
    config = docker("image", "inspect", image).stdout
    for text in (history, config):
        assert DECOY_SECRET not in text
        assert "SECRET_KEY" not in text
        assert "FLASK_DEBUG" not in text


def test_container_without_its_secret_stops_and_says_why(image: str) -> None:
    name = f"deploy-test-flaskr-nosecret-{uuid.uuid4().hex[:8]}"
    try:
        docker("run", "-d", "--name", name, image)
        exit_code = docker("wait", name, timeout=120).stdout.strip()
        assert exit_code != "0"
        assert "SECRET_KEY is not set" in _logs(name)
    finally:
        docker("rm", "-f", name, check=False)


def test_build_stops_when_the_dockerignore_was_left_out_of_the_context(
    tmp_path: Path, base_image: str
) -> None:
    """`docker build -f deploy-out/Dockerfile .` skips deploy-out/.dockerignore: no image may be made."""
    root = tmp_path / "flaskr"
    shutil.copytree(PLAYBOOK, root, ignore=shutil.ignore_patterns("__pycache__", ".env"))
    files = render(load(root / "deploy.yaml"), project_dir=root)
    out = root / "deploy-out"
    out.mkdir()
    for name in ("Dockerfile", ".dockerignore", "compose.yaml", "gunicorn.conf.py"):
        (out / name).write_text(files[name], encoding="utf-8")
    (root / "gunicorn.conf.py").write_text(files["gunicorn.conf.py"], encoding="utf-8")
    (root / ".env").write_text(f"SECRET_KEY={DECOY_SECRET}\n", encoding="utf-8")
    tag = f"deploy-test/flaskr-leak:{uuid.uuid4().hex[:12]}"
    dangling_before = set(docker("images", "-q", "--filter", "dangling=true").stdout.split())
    # --force-rm: the failed step's container (which holds the copied .env) goes too.
    result = docker(
        "build", "--force-rm", "--build-arg", f"BASE_IMAGE={base_image}", *proxy_build_args(),
        "-f", str(out / "Dockerfile"), "-t", tag, str(root), check=False, timeout=900,
    )
    leftovers = set(docker("images", "-q", "--filter", "dangling=true").stdout.split()) - dangling_before
    try:
        assert result.returncode != 0, "the image was built with .env in it"
        output = result.stdout + result.stderr
        assert ".env is in the build context" in output
        assert "reads only from the context's root" in output
        assert docker("image", "inspect", tag, check=False).returncode != 0
    finally:
        docker("image", "rm", "-f", tag, *leftovers, check=False)
