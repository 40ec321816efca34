"""hadolint finds nothing in Dockerfiles for projects with pyproject.toml or requirement includes."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.render.render import render
from tests.tools.test_hadolint import hadolint, with_base_image_inlined

pytestmark = pytest.mark.tools

YAML = """\
app:
  name: shop
  wsgi: "shop:create_app()"
  requirements: {requirements}
server:
  domains: [shop.example.com]
  hosts: [web1]
  tls: false
"""


@pytest.mark.parametrize("requirements", ["pyproject.toml", "requirements.txt"])
def test_dockerfile_for_pyproject_and_includes_has_no_findings(requirements: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "requirements").mkdir(parents=True)
    (project / "requirements.txt").write_text("-r requirements/prod.txt\n-c constraints.txt\n")
    (project / "requirements" / "prod.txt").write_text("gunicorn==27.0.1\n")
    (project / "constraints.txt").write_text("Flask==3.1.3\n")
    config = load_text(YAML.format(requirements=requirements))
    text = render(config, project_dir=project)["Dockerfile"]
    assert ("tomllib" in text) == (requirements == "pyproject.toml")
    assert ("requirements/prod.txt" in text) == (requirements == "requirements.txt")
    path = tmp_path / "Dockerfile"
    path.write_text(with_base_image_inlined(text, config.docker.base_image), encoding="utf-8")
    assert hadolint(path) == []
