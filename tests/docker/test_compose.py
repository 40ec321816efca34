"""compose.yaml as rendered for every example playbook passes `docker-compose config` (Debian's compose)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.loader import load
from deploy.render import render

pytestmark = pytest.mark.docker

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ALL = sorted(PLAYBOOKS.glob("*.yaml")) + sorted(PLAYBOOKS.glob("*/deploy.yaml"))


def compose_config(folder: Path) -> subprocess.CompletedProcess[str]:
    """Validate only (-q): without it, compose prints the values it read from .env."""
    binary = shutil.which("docker-compose")
    if binary is None:
        reason = "no 'docker-compose': apt-get install docker-compose"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
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
