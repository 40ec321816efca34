"""The versions pip would install, not only the newest that has a wheel.

The wheelhouse downloads binary wheels only (`--only-binary=:all:`): for an unpinned requirement whose
newest release is published as a source archive only, pip there picks the newest version that has a
wheel, while `pip install` (and so the app's developer) gets the newest version, built from its source.
`pip install --dry-run --report` tells which versions pip itself would install; every one that is newer
than the wheel downloaded and comes from a source archive is built into a wheel here when it is pure
Python (then the download runs again and picks it), or named in the push output when it is not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from deploy.push import wheels as hostmarkers


@dataclass(frozen=True)
class Skipped:
    """A requirement whose newest version pip would install is source only: the wheel found is older."""

    name: str
    wheel_version: str
    newest: str

    @property
    def line(self) -> str:
        return f"{self.name}=={self.newest}"


def pip_would_install(requirements: Path, find_links: Path | None = None) -> dict[str, tuple[str, bool]]:
    """{name: (version, from a source archive)} that `pip install -r requirements` would install here,
    or {} when pip cannot tell (no index, a resolution error: the wheelhouse's own download decides)."""
    with tempfile.TemporaryDirectory(prefix="deploy-resolve-") as scratch:
        report = Path(scratch) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--disable-pip-version-check",
            "--ignore-installed",
            "--report",
            str(report),
            *(["--find-links", str(find_links)] if find_links is not None else []),
            "-r",
            str(requirements),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not report.exists():
            return {}
        try:
            items = json.loads(report.read_text(encoding="utf-8")).get("install", [])
        except (OSError, ValueError):
            return {}
    out: dict[str, tuple[str, bool]] = {}
    for item in items:
        metadata, info = item.get("metadata", {}), item.get("download_info", {})
        name, version, url = metadata.get("name"), metadata.get("version"), str(info.get("url", ""))
        if name and version:
            source = "archive_info" in info and not url.rsplit("#", 1)[0].endswith(".whl")
            out[canonicalize_name(name)] = (str(version), source)
    return out


def skipped_sources(requirements: Path, folder: Path, find_links: Path | None = None) -> list[Skipped]:
    """The requirements for which the wheels in `folder` hold an older version than the source archive
    pip would install."""
    wanted = pip_would_install(requirements, find_links)
    out: list[Skipped] = []
    for path in sorted(folder.glob("*.whl")):
        try:
            wheel = hostmarkers.read_wheel(path)
        except hostmarkers.WheelMetadataError:
            continue
        version, source = wanted.get(wheel.name, ("", False))
        try:
            newer = source and Version(version) > Version(wheel.version)
        except InvalidVersion:
            newer = False
        if newer:
            out.append(Skipped(wheel.name, wheel.version, version))
    return out


def prefer_newest(
    requirements: Path,
    folder: Path,
    built: Path,
    build: Callable[[list[str], Path, Callable[[str], None] | None], bool],
    say: Callable[[str], None] | None,
) -> bool:
    """Build the newer source-only versions pip would install (`build`: the wheelhouse's builder of
    pure-Python wheels) and drop the older wheels they replace; True when the download must run again.
    Those that cannot be built here (compiled code) are named, with the version kept."""
    skipped = skipped_sources(requirements, folder, built if built.is_dir() else None)
    if not skipped:
        return False
    build([s.line for s in skipped], built, say)
    have = {hostmarkers.read_wheel(path).name: path for path in built.glob("*.whl")} if built.is_dir() else {}
    again = False
    for item in skipped:
        made = have.get(item.name)
        if made is not None and hostmarkers.read_wheel(made).version == item.newest:
            for old in folder.glob("*.whl"):
                if hostmarkers.read_wheel(old).name == item.name:
                    old.unlink()
            again = True
        elif say is not None:
            say(
                f"  ! {item.name} {item.wheel_version} is the newest version with a wheel, so the hosts get "
                f"it; pip install would get {item.newest}, published as source only, with compiled code: "
                f"pin {item.name}=={item.wheel_version}, or build {item.name} {item.newest} for the host "
                "('pip wheel') and name its folder in PIP_FIND_LINKS"
            )
    return again
