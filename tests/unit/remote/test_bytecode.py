"""The background bytecode compile (deploy.remote.bytecode): its unit's program, run here on
venv-shaped folders whose Python is this one, compiles every module once and marks the venv; with a
uv cache, the cache's modules are compiled and their .pyc hard-linked into the venv beside the files
uv linked from there; a venv already marked is left alone."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.layout import layout_for
from deploy.remote import bytecode
from tests.unit.push.test_plans import CONFIG

pytestmark = pytest.mark.unit


def _venv(root: Path, python: str = sys.executable) -> tuple[Path, Path]:
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(python)
    package = venv / "lib" / "python3" / "site-packages" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    (package / "broken.py").write_text("def (:\n")  # not compiled (as pip skips it): the rest is
    return venv, package


def _run(venv: Path, cache: str = "") -> subprocess.CompletedProcess[str]:
    argv = bytecode.compile_later(layout_for(CONFIG), "abc", cache).argv
    program = argv[argv.index("-c") + 1]
    marker = str(venv / bytecode.COMPILED)
    command = [str(venv / "bin" / "python"), "-I", "-c", program, str(venv), cache, marker]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _pycs(root: Path) -> list[str]:
    return sorted(p.name.split(".")[0] for p in root.rglob("*.pyc"))


def test_the_compile_unit_compiles_the_venv_once_then_marks_it(tmp_path: Path) -> None:
    venv, package = _venv(tmp_path)
    assert _run(venv).returncode == 0
    assert _pycs(venv) == ["__init__"]
    assert (venv / bytecode.COMPILED).is_file()
    (pyc,) = venv.rglob("*.pyc")
    os.utime(pyc, (1, 1))
    (package / "new.py").write_text("Y = 2\n")
    assert _run(venv).returncode == 0  # marked: nothing compiled again
    assert _pycs(venv) == ["__init__"] and pyc.stat().st_mtime == 1


def test_with_uv_the_cache_is_compiled_and_its_pyc_linked_into_the_venv(tmp_path: Path) -> None:
    venv, package = _venv(tmp_path)
    cached = tmp_path / "cache" / "archive-v0" / "id1" / "pkg"
    cached.mkdir(parents=True)
    (cached / "mod.py").write_text("Z = 3\n")
    os.link(cached / "mod.py", package / "mod.py")  # as uv --link-mode hardlink does
    (cached / "other.py").write_text("W = 4\n")  # in the cache, not in this venv
    assert _run(venv, str(tmp_path / "cache")).returncode == 0
    assert _pycs(tmp_path / "cache") == ["mod", "other"]
    in_cache = Path(importlib.util.cache_from_source(str(cached / "mod.py")))
    in_venv = Path(importlib.util.cache_from_source(str(package / "mod.py")))
    assert in_venv.stat().st_ino == in_cache.stat().st_ino  # the same file, not a second compile
    assert _pycs(venv) == ["__init__", "mod"]
    loaded = subprocess.run(
        [sys.executable, "-v", "-c", "import pkg.mod"],
        env={**os.environ, "PYTHONPATH": str(package.parent)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{in_venv} matches {package / 'mod.py'}" in loaded.stderr


def test_the_unit_is_named_after_the_venv_and_runs_at_idle_priority_unchecked() -> None:
    command = bytecode.compile_later(layout_for(CONFIG), "abc", "/srv/shop/.uv-cache")
    assert f"--unit={CONFIG.app.name}-bytecode-abc.service" in command.argv
    assert {"--nice=19", "--property=CPUWeight=idle", "--on-active=1s"} <= set(command.argv)
    assert command.argv[-3:] == (
        "/srv/shop/venvs/abc",
        "/srv/shop/.uv-cache",
        "/srv/shop/venvs/abc/.deploy-compiled",
    )
    assert command.argv[command.argv.index("-c") - 2] == "/srv/shop/venvs/abc/bin/python"
    assert command.sudo and not command.check


def test_a_wheels_data_folder_in_the_cache_is_not_compiled(tmp_path: Path) -> None:
    # uv refuses to install a wheel whose `.data/scripts` holds a directory (a __pycache__): found when
    # a warm uv push of dtale's requirements failed on xlrd-2.0.2's scripts after the cache's compile.
    venv, _package = _venv(tmp_path)
    entry = tmp_path / "cache" / "archive-v0" / "id2"
    scripts = entry / "xlrd-2.0.2.data" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "runxlrd.py").write_text("print(1)\n")
    (entry / "xlrd").mkdir()
    (entry / "xlrd" / "book.py").write_text("B = 1\n")
    assert _run(venv, str(tmp_path / "cache")).returncode == 0
    assert not (scripts / "__pycache__").exists()
    assert _pycs(entry) == ["book"]
