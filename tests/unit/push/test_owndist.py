"""The project's own distribution (deploy.push.owndist): its metadata shipped beside its code, one copy."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy.push.artifact import FileEntry
from deploy.push.owndist import buildable, own_distribution, release_files

pytestmark = pytest.mark.unit

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


def test_buildable_needs_a_project_table_or_setup_files() -> None:
    assert buildable({"pyproject.toml": FileEntry(PYPROJECT)})
    assert buildable({"setup.py": FileEntry(b"")})
    assert buildable({"setup.cfg": FileEntry(b"")})
    # Tool settings only (ruff, pytest): not a distribution.
    assert not buildable({"pyproject.toml": FileEntry(b"[tool.ruff]\nline-length = 100\n")})
    assert not buildable({"pyproject.toml": FileEntry(b"not toml [")})
    assert not buildable({"app.py": FileEntry(b"")})


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


def test_a_build_that_fails_is_said_and_ships_nothing(tmp_path: Path) -> None:
    files = {"setup.py": FileEntry(b"raise SystemExit('no build here')\n"), "app.py": FileEntry(b"")}
    said: list[str] = []
    assert own_distribution(files, None, tmp_path / "cache", said.append) == {}
    assert any("could not be built" in line and "importlib.metadata" in line for line in said), said


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_generated_files_of_the_apps_packages_ship_but_never_a_second_copy(tmp_path: Path) -> None:
    wheel = _wheel(
        tmp_path / "tinyapp-2.0-py3-none-any.whl",
        {
            "tinyapp/__init__.py": b"stale copy",
            "tinyapp/_version.py": b"version = '2.0'\n",  # written by the build backend
            "otherpkg/__init__.py": b"",  # a package the release does not ship: not ours to add
            "tinyapp-2.0.data/scripts/tinyapp": b"#!python\n",
            "tinyapp-2.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinyapp\nVersion: 2.0\n",
            "tinyapp-2.0.dist-info/RECORD": b"",
        },
    )
    built = release_files(wheel, _files(), None)
    assert (built.name, built.version) == ("tinyapp", "2.0")
    assert sorted(built.files) == [
        "tinyapp-2.0.dist-info/INSTALLER",
        "tinyapp-2.0.dist-info/METADATA",
        "tinyapp-2.0.dist-info/RECORD",
        "tinyapp/_version.py",
    ]


def test_a_backend_this_python_has_builds_without_an_isolated_environment() -> None:
    from deploy.push.owndist import _backend_here, _build_requires

    assert _build_requires({"pyproject.toml": FileEntry(PYPROJECT)}) == ["setuptools>=61"]
    assert _build_requires({"setup.py": FileEntry(b"")}) == ["setuptools>=40.8.0"]
    assert _backend_here(["setuptools>=40"])
    assert not _backend_here(["setuptools>=9999"])
    assert not _backend_here(["no-such-backend-here"])
    assert _backend_here(['no-such-backend-here; python_version < "3"'])
