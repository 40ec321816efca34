"""The project's own distribution (deploy.push.owndist): its metadata shipped beside its code, one copy."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from deploy.push.artifact import FileEntry
from deploy.push.owndist import buildable, cache_key, release_files

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
    dynamic = {**_files(), "pyproject.toml": FileEntry(DYNAMIC_PYPROJECT)}
    built = release_files(wheel, dynamic, None)
    assert (built.name, built.version) == ("tinyapp", "2.0")
    assert sorted(built.files) == [
        "tinyapp-2.0.dist-info/INSTALLER",
        "tinyapp-2.0.dist-info/METADATA",
        "tinyapp-2.0.dist-info/RECORD",
        "tinyapp/_version.py",
    ]
    # With the version written in pyproject.toml the wheel may be one built for older code: its
    # metadata ships, none of its modules (a module this release deleted would come back).
    static = release_files(wheel, _files(), None)
    assert sorted(static.files) == [
        "tinyapp-2.0.dist-info/INSTALLER",
        "tinyapp-2.0.dist-info/METADATA",
        "tinyapp-2.0.dist-info/RECORD",
    ]


DYNAMIC_PYPROJECT = PYPROJECT.replace(b'version = "1.4.2"', b'dynamic = ["version"]')


def test_a_code_only_change_reuses_the_wheel_when_the_metadata_is_static() -> None:
    files = _files()
    changed = {**files, "tinyapp/plugins.py": FileEntry(b"def hello():\n    return 'hello'\n")}
    assert cache_key(files) == cache_key(changed)
    bumped = {**files, "pyproject.toml": FileEntry(PYPROJECT.replace(b"1.4.2", b"1.4.3"))}
    assert cache_key(bumped) != cache_key(files)


def test_a_dynamic_version_or_a_setup_py_rebuilds_for_every_change_of_code() -> None:
    for extra in ({"pyproject.toml": FileEntry(DYNAMIC_PYPROJECT)}, {"setup.py": FileEntry(b"setup()\n")}):
        files = {**_files(), **extra}
        changed = {**files, "tinyapp/plugins.py": FileEntry(b"x = 1\n")}
        assert cache_key(files) != cache_key(changed), extra


def test_a_backend_this_python_has_builds_without_an_isolated_environment() -> None:
    from deploy.push.owndist import _backend_here, _build_requires

    assert _build_requires({"pyproject.toml": FileEntry(PYPROJECT)}) == ["setuptools>=61"]
    assert _build_requires({"setup.py": FileEntry(b"")}) == ["setuptools>=40.8.0"]
    assert _backend_here(["setuptools>=40"])
    assert not _backend_here(["setuptools>=9999"])
    assert not _backend_here(["no-such-backend-here"])
    assert _backend_here(['no-such-backend-here; python_version < "3"'])
