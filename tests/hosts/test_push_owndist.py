"""The project's own distribution on a real host: importlib.metadata finds the version of the release
that runs (deploy.push.owndist), a code-only push still updates, and the venv holds no copy of the app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import Project, make_project, private_sandbox, versions

pytestmark = pytest.mark.hosts

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "flaskr"
version = "{version}"
dependencies = []

[tool.setuptools]
packages = ["flaskr"]
"""

#: create_app reports its distribution's version beside the test version.
READS_ITS_VERSION = (
    "    from importlib.metadata import version as _dist_version\n"
    "    app.config['TEST_VERSION'] += '/' + _dist_version('flaskr')\n"
)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "owndist-sandbox", 1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("owndist-project"), box.hosts())


def _release(project: Project, code: str, dist: str) -> None:
    (project.path / "pyproject.toml").write_text(PYPROJECT.format(version=dist), encoding="utf-8")
    project.set_version(code, READS_ITS_VERSION)


def test_the_app_reads_its_own_version_and_code_only_pushes_update(box: Sandbox, project: Project) -> None:
    project.deploy("setup", check=True)
    _release(project, "v1", "1.0.0")
    first = project.deploy("push", check=True)
    assert "own distribution: flaskr 1.0.0" in first.stdout + first.stderr
    assert versions(project) == ["v1/1.0.0"]

    # Code only (same requirements: the venv is reused): the new code runs.
    _release(project, "v2", "1.0.0")
    project.deploy("push", check=True)
    assert versions(project) == ["v2/1.0.0"]

    # A new version of the distribution: the app reads it at once, with the same venv.
    _release(project, "v3", "1.1.0")
    project.deploy("push", check=True)
    assert versions(project) == ["v3/1.1.0"]

    # A rollback brings back the release's own metadata with its code.
    project.deploy("rollback", check=True)
    assert versions(project) == ["v2/1.0.0"]


def test_one_copy_of_the_app_on_the_host(box: Sandbox, project: Project) -> None:
    """No flaskr in any venv's site-packages: the only copy imported is the release's."""
    host = project.hosts[0]
    found = box.run(
        host,
        ["sh", "-c", "ls -d /srv/flaskr/venvs/*/lib/python3*/site-packages/flaskr* 2>/dev/null || true"],
        check=True,
    ).stdout.strip()
    assert found == ""
    # Every release has exactly its own metadata: the one a version bump replaced is gone, folder and
    # all (an empty .dist-info left behind is a distribution without a version to importlib.metadata).
    listing = box.run(
        host, ["sh", "-c", "cd /srv/flaskr/releases && ls -d */flaskr-*.dist-info"], check=True
    ).stdout.split()
    releases = [line.split("/")[0] for line in listing]
    assert len(releases) == len(set(releases)) == 3, listing  # v1, v2, v3
    assert sum(line.endswith("/flaskr-1.1.0.dist-info") for line in listing) == 1, listing
