"""uv for the hosts (`push.installer: uv`): the pinned uv wheel for a host's machine, downloaded once
here with pip, checked against its pinned sha256, kept in the wheel cache and shipped with the wheels
(so a host gets it once and needs no package index)."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.push.pipwheels import Platform, download_command

#: The uv release deploy ships; its wheels and their sha256 per host machine (PyPI's files).
UV_VERSION = "0.13.9"
_WHEELS: dict[str, tuple[str, str]] = {
    "x86_64": (
        "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    ),
    "aarch64": (
        "uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
    ),
}


class UvError(Exception):
    """uv cannot be had for a host; the message says why and what to do."""


@dataclass(frozen=True)
class UvWheel:
    """The uv wheel for one machine: its file name, content and sha256."""

    name: str
    data: bytes
    sha256: str

    @property
    def entry(self) -> str:
        """The uv program's path inside the wheel."""
        return f"uv-{UV_VERSION}.data/scripts/uv"


def pinned(machine: str) -> tuple[str, str]:
    """The wheel name and sha256 for `machine`; UvError when deploy has no uv for it."""
    if machine not in _WHEELS:
        raise UvError(
            f"push.installer is uv but deploy ships uv only for {', '.join(sorted(_WHEELS))} hosts, "
            f"not {machine or 'an unknown machine'}; use push.installer: pip"
        )
    return _WHEELS[machine]


def uv_wheel(platform: Platform, cache: Path, say: Callable[[str], None] | None = None) -> UvWheel:
    """The checked uv wheel for `platform`'s hosts, from `cache` (kept there once downloaded)."""
    name, sha256 = pinned(platform.machine)
    kept = cache / "uv" / name
    if kept.is_file():
        data = kept.read_bytes()
        if hashlib.sha256(data).hexdigest() == sha256:
            return UvWheel(name, data, sha256)
        kept.unlink()
    if say is not None:
        say(f"  downloading uv {UV_VERSION} for {platform.describe()}")
    with tempfile.TemporaryDirectory() as scratch:
        wanted = Path(scratch) / "uv.txt"
        wanted.write_text(f"uv=={UV_VERSION}\n")
        dest = Path(scratch) / "out"
        command = download_command(platform, wanted, dest, no_deps=True)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        got = dest / name
        if done.returncode != 0 or not got.is_file():
            why = done.stderr[-400:]
            raise UvError(f"could not download uv {UV_VERSION} for {platform.describe()}: {why}")
        data = got.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise UvError(f"the downloaded {name} has sha256 {actual}, not the pinned {sha256}; nothing shipped")
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(data)
    return UvWheel(name, data, sha256)
