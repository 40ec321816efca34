"""pip on this machine, for the hosts: a host's Python and platform, the `pip download` and `pip wheel`
command lines, pure-Python wheels built from source archives, and the folder wheels are kept in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from deploy.project.requirements import environment

# --- wheels -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    """A host's Python and platform, as the fact probe reports them."""

    python_version: str
    machine: str
    libc: str
    libc_version: str

    @property
    def tag(self) -> str:
        minor = "".join(self.python_version.split(".")[:2])
        return f"cp{minor}-{self.libc or 'unknown'}{self.libc_version}-{self.machine}"

    def pip_platforms(self) -> list[str]:
        """Every platform tag a wheel for this host may carry, newest first."""
        tags: list[str] = []
        if self.libc == "glibc" and self.libc_version:
            major, _, minor = self.libc_version.partition(".")
            if major == "2" and minor.isdigit():
                tags += [f"manylinux_2_{m}_{self.machine}" for m in range(int(minor), 4, -1)]
                legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
                tags += [f"{name}_{self.machine}" for m, name in legacy.items() if int(minor) >= m]
        tags.append(f"linux_{self.machine}")
        return tags

    def marker_environment(self) -> dict[str, str]:
        """What environment markers of requirements are evaluated against on this host."""
        return environment(self.python_version, self.machine)

    def describe(self) -> str:
        return f"Python {self.python_version} on {self.machine} ({self.libc} {self.libc_version})"


def download_command(
    platform: Platform,
    requirements: Path,
    dest: Path,
    no_deps: bool = False,
    find_links: Path | None = None,
) -> list[str]:
    """`pip download` of binary wheels for another interpreter and platform than this one.

    The full Python version (3.11.2) makes pip check `Requires-Python` as the host will; pip still
    evaluates environment markers for the Python that runs it (see `wheelhouse`).
    """
    minor = "".join(platform.python_version.split(".")[:2])
    full = platform.python_version
    version = full if full.replace(".", "").isdigit() and full.count(".") == 2 else minor
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        *(["--no-deps"] if no_deps else []),
        "--python-version",
        version,
        "--implementation",
        "cp",
        "--abi",
        f"cp{minor}",
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for tag in platform.pip_platforms():
        command += ["--platform", tag]
    if find_links is not None:
        command += ["--find-links", str(find_links)]
    return [*command, "--dest", str(dest), "-r", str(requirements)]


def pip_wheel_command(source: str | Path, wheel_dir: str | Path, *options: str) -> list[str]:
    """`pip wheel --no-deps` of one requirement or source folder into `wheel_dir`, with `options`: the
    one command line for the pure-Python wheels here and the app's own distribution (push.owndist)."""
    return [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        *options,
        "--wheel-dir",
        str(wheel_dir),
        str(source),
    ]


#: The time inside the wheels built here (the zip format's earliest): the same source archive gives
#: the same bytes on every build, whichever way the wheelhouse is built.
BUILD_EPOCH = "315532800"


def build_pure_wheels(requirements: list[str], built: Path, say: Callable[[str], None] | None) -> bool:
    """Build each requirement from its source archive into `built`, if the result is pure Python
    (`py3-none-any`: it installs on any host); True if a new wheel was added."""
    added = False
    built.mkdir(parents=True, exist_ok=True)
    for line in requirements:
        try:
            name = Requirement(line).name
        except InvalidRequirement:
            continue
        if any(parse_wheel_filename(w.name)[0] == canonicalize_name(name) for w in built.glob("*.whl")):
            continue  # built already: the download failed for another reason
        with tempfile.TemporaryDirectory() as scratch:
            done = subprocess.run(
                pip_wheel_command(line, scratch, "--no-binary", name),
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "SOURCE_DATE_EPOCH": BUILD_EPOCH},
            )
            wheels = list(Path(scratch).glob("*.whl"))
            if done.returncode != 0 or len(wheels) != 1:
                continue
            tags = parse_wheel_filename(wheels[0].name)[3]
            if not all(
                t.abi == "none" and t.platform == "any" and t.interpreter.startswith("py") for t in tags
            ):
                continue  # compiled code: it must be built for the host's platform, not here
            shutil.move(str(wheels[0]), built / wheels[0].name)
            added = True
            if say is not None:
                say(f"  + {wheels[0].name}: built from the source archive of {line} (pure Python)")
    return added


def no_wheels(platform: Platform, lines: list[str], what: str = "") -> str:
    return (
        f"could not get wheels for {platform.describe()}{what}; hosts have no package index, so every "
        "requirement needs a wheel. A pure-Python source archive is built into one here; for one with "
        "compiled code, build the wheel on a machine like the host ('pip wheel') and name its folder in "
        "PIP_FIND_LINKS when you push:\n  " + "\n  ".join(lines)
    )


def default_cache() -> Path:
    """Where wheels are kept between pushes: $DEPLOY_WHEEL_CACHE or ~/.cache/deploy/wheels."""
    configured = os.environ.get("DEPLOY_WHEEL_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deploy" / "wheels"
