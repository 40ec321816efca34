"""hadolint finds nothing in the Dockerfile rendered for every example playbook."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploy.config.loader import load
from deploy.render.render import render
from tests.conftest import require_tools

pytestmark = pytest.mark.tools

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ALL = sorted(PLAYBOOKS.glob("*.yaml")) + sorted(PLAYBOOKS.glob("*/deploy.yaml"))


def hadolint(dockerfile: Path) -> list[dict[str, Any]]:
    """hadolint's findings (every level, info included) as JSON objects."""
    require_tools("hadolint")
    binary = shutil.which("hadolint") or "hadolint"
    result = subprocess.run(
        [binary, "--no-color", "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Exit 1 means findings (listed on stdout); anything else is hadolint failing to run.
    assert result.returncode in (0, 1) and result.stdout.strip(), result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def with_base_image_inlined(dockerfile: str, image: str) -> str:
    """hadolint does not look into ARG defaults: put the image into FROM so DL3006/DL3007 see it."""
    return re.sub(r"^FROM \$\{BASE_IMAGE\}", f"FROM {image}", dockerfile, flags=re.MULTILINE)


@pytest.mark.parametrize("playbook", ALL, ids=lambda p: str(p.relative_to(PLAYBOOKS)))
def test_rendered_dockerfile_has_no_findings(playbook: Path, tmp_path: Path) -> None:
    config = load(playbook)
    text = render(config)["Dockerfile"]
    inlined = with_base_image_inlined(text, config.docker.base_image)
    assert inlined != text
    for name, content in (("Dockerfile", text), ("Dockerfile.inlined", inlined)):
        (tmp_path / name).write_text(content, encoding="utf-8")
        assert hadolint(tmp_path / name) == [], f"{name} for {playbook.name}"


def test_hadolint_reports_what_it_should(tmp_path: Path) -> None:
    """The check above can fail: the same Dockerfile made unsafe gets the expected rule ids."""
    config = load(ALL[0])
    text = with_base_image_inlined(render(config)["Dockerfile"], "python:latest")
    text = text.replace("--no-cache-dir ", "").rstrip("\n") + "\nUSER root\nCMD gunicorn app:app\n"
    (tmp_path / "Dockerfile").write_text(text, encoding="utf-8")
    codes = {finding["code"] for finding in hadolint(tmp_path / "Dockerfile")}
    assert {"DL3007", "DL3042", "DL3002", "DL3025"} <= codes
