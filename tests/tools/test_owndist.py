"""The project's own distribution built by real pip (deploy.push.owndist): its metadata shipped beside its
code, one copy. pip may fetch the build backend from PyPI (an isolated build environment)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.push.artifact import FileEntry
from deploy.push.owndist import own_distribution
from tests.conftest import in_ci, unavailable

pytestmark = pytest.mark.tools


@pytest.fixture(scope="module", autouse=True)
def _pypi() -> None:
    """pip may fetch the build backend (setuptools) from PyPI for an isolated build. Under CI=true the
    test just runs; locally PyPI is asked once, when a test of this module starts."""
    if in_ci():
        return
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as exc:
        unavailable(f"needs PyPI (pip fetches the build backend): pypi.org:443 unreachable ({exc})")


PYPROJECT = b"""\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "tinyapp"
version = "1.4.2"
dependencies = []

[project.entry-points."tinyapp.plugins"]
hello = "tinyapp.plugins:hello"

[tool.setuptools]
packages = ["tinyapp"]
"""

APP = b"""\
from importlib.metadata import entry_points, version

VERSION = version("tinyapp")
PLUGINS = sorted(e.name for e in entry_points(group="tinyapp.plugins"))
"""


def _files(root: str = "") -> dict[str, FileEntry]:
    prefix = f"{root}/" if root else ""
    return {
        "pyproject.toml": FileEntry(PYPROJECT),
        f"{prefix}tinyapp/__init__.py": FileEntry(APP),
        f"{prefix}tinyapp/plugins.py": FileEntry(b"def hello():\n    return 'hi'\n"),
        "requirements.txt": FileEntry(b"flask\n"),
    }


def _materialise(files: dict[str, FileEntry], folder: Path) -> None:
    for path, entry in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(entry.data)


def test_the_release_finds_its_version_and_entry_points_and_imports_its_own_code(tmp_path: Path) -> None:
    """Built with pip from the shipped files; the release gets the .dist-info, not a second copy of the
    code; Python run in the release finds the version and entry points, and the code it imports is the
    release's own file."""
    files = _files()
    said: list[str] = []
    extra = own_distribution(files, None, tmp_path / "cache", said.append)
    assert any("own distribution: tinyapp 1.4.2" in line for line in said), said
    assert all(".dist-info/" in path for path in extra), sorted(extra)
    assert "tinyapp-1.4.2.dist-info/METADATA" in extra
    assert "tinyapp-1.4.2.dist-info/entry_points.txt" in extra
    assert extra["tinyapp-1.4.2.dist-info/INSTALLER"].data == b"deploy\n"
    release = tmp_path / "release"
    _materialise({**files, **extra}, release)
    shown = subprocess.run(
        [sys.executable, "-c", "import tinyapp; print(tinyapp.VERSION, tinyapp.PLUGINS, tinyapp.__file__)"],
        cwd=release,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"},
    ).stdout.split()
    assert shown == ["1.4.2", "['hello']", str(release / "tinyapp" / "__init__.py")]


def test_a_src_layout_gets_the_metadata_in_src(tmp_path: Path) -> None:
    files = _files("src")
    files["pyproject.toml"] = FileEntry(
        PYPROJECT.replace(b'packages = ["tinyapp"]', b'package-dir = {"" = "src"}')
    )
    extra = own_distribution(files, "src", tmp_path / "cache", lambda _: None)
    assert "src/tinyapp-1.4.2.dist-info/METADATA" in extra
    assert not any(path.startswith("tinyapp-") for path in extra)


def test_a_build_that_fails_is_said_and_ships_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"setup.py": FileEntry(b"raise SystemExit('no build here')\n"), "app.py": FileEntry(b"")}
    said: list[str] = []
    assert own_distribution(files, None, tmp_path / "cache", said.append) == {}
    assert any("could not be built" in line and "importlib.metadata" in line for line in said), said

    # The same files are not built again on the next push: the failure is said again from the cache.
    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"built again: {args}")

    monkeypatch.setattr("deploy.push.owndist.subprocess.run", no_build)
    again: list[str] = []
    assert own_distribution(files, None, tmp_path / "cache", again.append) == {}
    assert again == said


#: A version taken from git tags at build time (as setuptools-scm, hatch-vcs and versioneer do), written
#: into a module git does not track.
SETUP_FROM_GIT = """\
import pathlib
import subprocess

from setuptools import setup

version = subprocess.run(
    ["git", "describe", "--tags"], capture_output=True, text=True, check=True
).stdout.strip().lstrip("v")
pathlib.Path("tagapp/_version.py").write_text(f"version = {version!r}\\n")
setup(name="tagapp", version=version, packages=["tagapp"])
"""


def test_a_version_from_git_tags_is_built_from_the_commit(tmp_path: Path) -> None:
    """Built from a clone of the repository at the pushed commit, the git-derived version is right, and
    the module the build writes (untracked) ships with the release; from the bare files it cannot be."""
    from deploy.push.artifact import pack
    from deploy.push.owndist import checkout_of

    repo = tmp_path / "repo"
    (repo / "tagapp").mkdir(parents=True)
    (repo / "setup.py").write_text(SETUP_FROM_GIT)
    (repo / "tagapp" / "__init__.py").write_text("from tagapp._version import version\n")
    (repo / "requirements.txt").write_text("flask\n")
    (repo / ".gitignore").write_text("tagapp/_version.py\n*.egg-info/\nbuild/\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "one"], ["tag", "v3.1"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    artifact = pack(repo, "requirements.txt")
    assert "tagapp/_version.py" not in artifact.files
    said: list[str] = []
    extra = own_distribution(
        artifact.files, None, tmp_path / "cache", said.append, checkout_of(repo, artifact.commit)
    )
    assert "tagapp-3.1.dist-info/METADATA" in extra, (sorted(extra), said)
    assert extra["tagapp/_version.py"].data == b"version = '3.1'\n"
    # The working tree is untouched by the build.
    assert not (repo / "tagapp" / "_version.py").exists()
    assert own_distribution(artifact.files, None, tmp_path / "cache2", said.append) == {}
