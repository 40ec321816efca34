"""The wheel ships templates/ and checks/, and the installed command works from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.unit
def test_every_package_folder_is_listed_in_pyproject() -> None:
    """setuptools only ships the packages it is told about: a new folder must be added there."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    on_disk = set()
    for package, folder in mapping.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(root).parts
            on_disk.add(".".join((package, *rel)))
    assert on_disk == listed
    # Data folders must stay flat (setuptools warns about data subfolders).
    for folder in ("templates", "checks"):
        subdirs = [p.name for p in (REPO / folder).iterdir() if p.is_dir() and p.name != "__pycache__"]
        assert subdirs == [], f"{folder}/ must stay flat, found {subdirs}"


@pytest.mark.slow
def test_wheel_installs_and_renders_from_an_unrelated_directory(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (wheel,) = dist.glob("deploy-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        timeout=600,
        capture_output=True,
        text=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(REPO / "playbooks" / "flaskr" / "deploy.yaml", work / "deploy.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(
        [str(env_dir / "bin" / "deploy"), "render", "--out", "out"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert (work / "out" / "nginx" / "flaskr.conf").read_text().count("server_name") >= 1
    assert (work / "out" / "systemd" / "flaskr@.service").is_file()
    # The installed package, not this checkout, did the work.
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import deploy, deploy.templates, deploy.checks; "
            "print(deploy.__file__); print(deploy.templates.__file__)",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert str(REPO) not in where.stdout
    assert "site-packages" in where.stdout
    listing = subprocess.run(
        [str(env_dir / "bin" / "deploy"), "templates"],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "nginx-site.conf.j2" in listing.stdout
