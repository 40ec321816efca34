"""The wheelhouse installs what pip install would (deploy.push.newest): a newer version published only as
a source archive is built (pure Python) or named in the output (compiled code), never silently skipped.
A local package folder stands in for the index (PIP_NO_INDEX, PIP_FIND_LINKS): no network."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from deploy.project.requirements import resolve
from deploy.push.artifact import Platform
from deploy.push.newest import skipped_sources
from deploy.push.wheelhouse import wheelhouse

pytestmark = pytest.mark.unit

DEBIAN_12 = Platform("3.11.2", "x86_64", "glibc", "2.36")

#: An in-tree PEP 517 backend (no build requirements: nothing to download) that writes a wheel by hand.
BACKEND = """\
import os
import zipfile

NAME, VERSION, TAG = {name!r}, {version!r}, {tag!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    wheel = f"{{NAME}}-{{VERSION}}-{{TAG}}.whl"
    info = f"{{NAME}}-{{VERSION}}.dist-info"
    files = {{
        f"{{NAME}}/__init__.py": f"VERSION = {{VERSION!r}}\\n",
        f"{{info}}/METADATA": f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n",
        f"{{info}}/WHEEL": f"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: {{TAG}}\\n",
    }}
    files[f"{{info}}/RECORD"] = "".join(f"{{path}},,\\n" for path in files) + f"{{info}}/RECORD,,\\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel
"""


def _wheel(index: Path, name: str, version: str) -> None:
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(index / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        archive.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")


def _sdist(index: Path, name: str, version: str, tag: str = "py3-none-any") -> None:
    top = f"{name}-{version}"
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": BACKEND.format(name=name, version=version, tag=tag),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    with tarfile.open(index / f"{top}.tar.gz", "w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"{top}/{path}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pure 1.0 (wheel) and 2.0 (source only, pure Python); native 1.0 (wheel) and 2.0 (source only,
    compiled); pinned 1.0 (wheel) and 2.0 (source only)."""
    folder = tmp_path / "index"
    folder.mkdir()
    _wheel(folder, "pure", "1.0")
    _sdist(folder, "pure", "2.0")
    _wheel(folder, "native", "1.0")
    _sdist(folder, "native", "2.0", tag="cp311-cp311-linux_x86_64")
    _wheel(folder, "pinned", "1.0")
    _sdist(folder, "pinned", "2.0")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def _requirements(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "requirements.txt").write_text(text)
    return resolve(
        "requirements.txt", lambda p: (tmp_path / p).read_bytes() if (tmp_path / p).exists() else None
    )


def test_the_newer_source_only_versions_are_found(index: Path, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("pure\nnative\npinned==1.0\n")
    folder = tmp_path / "have"
    folder.mkdir()
    for name in ("pure-1.0-py3-none-any.whl", "native-1.0-py3-none-any.whl", "pinned-1.0-py3-none-any.whl"):
        (folder / name).write_bytes((index / name).read_bytes())
    found = {
        (s.name, s.wheel_version, s.newest) for s in skipped_sources(tmp_path / "requirements.txt", folder)
    }
    assert found == {("pure", "1.0", "2.0"), ("native", "1.0", "2.0")}


def test_the_wheelhouse_gets_what_pip_install_would(index: Path, tmp_path: Path) -> None:
    said: list[str] = []
    requirements = _requirements(tmp_path, "pure\nnative\npinned==1.0\n")
    wheels = wheelhouse(requirements, DEBIAN_12, tmp_path / "cache", said.append)
    # pure 2.0 is built from its source (pure Python), and the older wheel is gone: one version each.
    assert sorted(wheels) == [
        "native-1.0-py3-none-any.whl",
        "pinned-1.0-py3-none-any.whl",
        "pure-2.0-py3-none-any.whl",
    ]
    assert any("pure-2.0-py3-none-any.whl: built from the source archive of pure==2.0" in s for s in said), (
        said
    )
    # native 2.0 has compiled code: the hosts get 1.0, and the output says so, with what to do.
    told = [s for s in said if s.startswith("  ! native 1.0 is the newest version with a wheel")]
    assert told and "pip install would get 2.0" in told[0] and "pin native==1.0" in told[0], said
    assert not any("pinned" in s for s in said), said
