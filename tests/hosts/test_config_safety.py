"""Validation on real hosts: a deploy.yaml that would lose data is refused before anything changes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import Project, get, make_project, private_sandbox

pytestmark = pytest.mark.hosts


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "config-safety-sandbox", 1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("config-safety-project"), box.hosts())


def test_nested_shared_folders_are_refused_and_the_shared_data_stays(box: Sandbox, project: Project) -> None:
    """`shared: [instance, instance/uploads]` made every push `rm -rf` the uploads through the
    release's instance -> shared/instance link: the persistent data was lost."""
    project.deploy("setup", check=True)
    project.deploy("push", check=True)
    host = project.hosts[0]
    uploads = "/srv/flaskr/shared/instance/uploads"
    box.run(host, ["sh", "-c", f"mkdir -p {uploads} && echo keep-me > {uploads}/photo.jpg"], check=True)
    config = project.path / "deploy.yaml"
    text = config.read_text(encoding="utf-8")
    assert "  shared: [instance]\n" in text
    config.write_text(text.replace("  shared: [instance]\n", "  shared: [instance, instance/uploads]\n"))
    project.set_version("v2")  # commits deploy.yaml with the new code

    pushed = project.deploy("push")

    assert pushed.returncode == 2, pushed.stdout + pushed.stderr
    assert pushed.stderr.count("\n") == 1, pushed.stderr
    assert "app.shared[1]: 'instance/uploads' is inside 'instance'" in pushed.stderr
    assert "a push would delete the persistent data through the link" in pushed.stderr
    assert "Traceback" not in pushed.stderr
    kept = box.run(host, ["cat", f"{uploads}/photo.jpg"])
    assert kept.stdout == "keep-me\n", kept
    assert box.run(host, ["test", "!", "-L", f"{uploads}"]).returncode == 0
    status, body = get(host.address)
    assert status == 200 and json.loads(body)["version"] == "v1"
