"""The project's own distribution: its metadata shipped beside its code, so exactly one copy runs.

An app that reads its version with `importlib.metadata.version("myapp")` (or `pkg_resources`), or
finds plugins and commands through its entry points, needs its own distribution installed. Installing
its wheel into the virtualenv would put a second copy of the code in site-packages, and the venv is
shared by every release with the same requirements: a code-only push would then run (or report the
version of) an older copy. Instead the wheel is built here from the shipped files, and its
`.dist-info` folder (METADATA, entry_points.txt, RECORD, ...) is shipped as files of the release, in
the folder the app's code is imported from (the release, or its `src/`). Python finds a distribution's
metadata on `sys.path` beside the code, so the version, the entry points and the code all come from
the release that runs, and a rollback brings back its own. Files the build generates into the app's
packages (a `_version.py` written by the build backend) are shipped too, where the release has none.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement

from deploy.config.secretfiles import is_secret
from deploy.push.artifact import FileEntry
from deploy.push.pipwheels import pip_wheel_command

#: Files that make the project a distribution pip can build (at the top of the shipped files).
BUILD_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


@dataclass(frozen=True)
class OwnDistribution:
    """What the build gave: the distribution's name and version and the files to ship for it."""

    name: str
    version: str
    files: dict[str, FileEntry]


class OwnDistributionError(Exception):
    """The project's own wheel could not be built (the push goes on without its metadata)."""


def buildable(files: Mapping[str, FileEntry]) -> bool:
    """Whether the shipped files describe a distribution: a pyproject.toml with a [project] table
    (or a build backend of its own), or a setup.py / setup.cfg."""
    if "setup.py" in files or "setup.cfg" in files:
        return True
    entry = files.get("pyproject.toml")
    if entry is None or entry.link is not None:
        return False
    try:
        data = tomllib.loads(entry.data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    project = data.get("project")
    return isinstance(project, dict) and isinstance(project.get("name"), str)


def _export(files: Mapping[str, FileEntry], folder: Path) -> None:
    for path, entry in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.link is not None:
            os.symlink(entry.link, target)
        else:
            target.write_bytes(entry.data)


def _build_requires(files: Mapping[str, FileEntry]) -> list[str]:
    """[build-system].requires (setuptools when the project names no backend, as pip assumes)."""
    entry = files.get("pyproject.toml")
    default = ["setuptools>=40.8.0"]
    if entry is None or entry.link is not None:
        return default
    try:
        system = tomllib.loads(entry.data.decode("utf-8")).get("build-system")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return default
    requires = system.get("requires") if isinstance(system, dict) else None
    return [str(r) for r in requires] if isinstance(requires, list) else default


def _backend_here(requires: list[str]) -> bool:
    """Whether this Python has every build requirement already: then pip builds without an isolated
    environment (no download of the backend on every push)."""
    for line in requires:
        try:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            if not requirement.specifier.contains(installed_version(requirement.name), prereleases=True):
                return False
        except (InvalidRequirement, PackageNotFoundError):
            return False
    return True


def _source(files: Mapping[str, FileEntry], scratch: Path, checkout: Checkout | None) -> Path:
    """The project's files to build from: a clone of its repository at the commit when there is one
    (a version taken from git, by setuptools-scm, hatch-vcs or versioneer, is then the right one),
    else the shipped files."""
    if checkout is not None:
        repo = scratch / "repo"
        steps = (
            ["git", "clone", "--quiet", "--shared", "--no-checkout", str(checkout.top), str(repo)],
            ["git", "-C", str(repo), "checkout", "--quiet", "--detach", checkout.commit],
        )
        if all(subprocess.run(step, capture_output=True, check=False).returncode == 0 for step in steps):
            return repo / checkout.prefix if checkout.prefix else repo
    source = scratch / "project"
    _export(files, source)
    return source


@dataclass(frozen=True)
class Checkout:
    """The committed project in its git repository: the top folder, the project's folder in it, the commit."""

    top: Path
    prefix: str
    commit: str


def checkout_of(project: Path, commit: str) -> Checkout | None:
    """Where the project's commit is (None outside git)."""
    done = subprocess.run(
        ["git", "-C", str(project), "rev-parse", "--show-toplevel", "--show-prefix"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.split("\n")
    if done.returncode != 0 or len(lines) < 2 or not commit:
        return None
    return Checkout(Path(lines[0]), lines[1].strip().rstrip("/"), commit)


def static_metadata(files: Mapping[str, FileEntry]) -> bool:
    """Whether the distribution's metadata is written out in pyproject.toml alone: a [project] table
    with its `version` and nothing `dynamic`, and no setup.py (code that could compute anything).
    Then the metadata cannot change unless pyproject.toml or setup.cfg does."""
    entry = files.get("pyproject.toml")
    if "setup.py" in files or entry is None or entry.link is not None:
        return False
    try:
        project = tomllib.loads(entry.data.decode("utf-8")).get("project")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    if not isinstance(project, dict):
        return False
    return isinstance(project.get("version"), str) and not project.get("dynamic")


def cache_key(files: Mapping[str, FileEntry], checkout: Checkout | None = None) -> str:
    """What the built wheel's metadata depends on, as a digest: pyproject.toml and setup.cfg when the
    metadata is static (a code-only push reuses the wheel built before: no build on every push), else
    every shipped file and the commit (a version from a git tag, or computed by setup.py)."""
    static = static_metadata(files)
    digest = hashlib.sha256(b"static\0" if static else (checkout.commit.encode() if checkout else b""))
    for path, entry in sorted(files.items()):
        if not static or path in BUILD_FILES:
            digest.update(path.encode() + b"\0" + entry.digest.encode() + b"\0")
    return digest.hexdigest()[:16]


def build_wheel(files: Mapping[str, FileEntry], cache: Path, checkout: Checkout | None = None) -> Path:
    """The project's wheel, built by pip from the committed project (or the shipped files), kept in
    `cache` by what its metadata depends on (`cache_key`)."""
    folder = cache / "own" / cache_key(files, checkout)
    done = sorted(folder.glob("*.whl"))
    if len(done) == 1:
        return done[0]
    failed = folder / "failed.txt"
    if failed.is_file():
        # The same files failed before: said again, not built again on every push.
        raise OwnDistributionError(failed.read_text(encoding="utf-8"))
    # Without an isolated environment first when this Python has the backend (no download on every
    # push); the backend may want more than it declares (setuptools < 70: wheel), so isolated next.
    isolation = [["--no-build-isolation"], []] if _backend_here(_build_requires(files)) else [[]]
    with tempfile.TemporaryDirectory(prefix="deploy-own-") as scratch:
        source, out = _source(files, Path(scratch), checkout), Path(scratch) / "wheel"
        for options in isolation:
            result = subprocess.run(
                pip_wheel_command(source, out, *options),
                capture_output=True,
                text=True,
                check=False,
            )
            wheels = sorted(out.glob("*.whl"))
            if result.returncode == 0 and len(wheels) == 1:
                folder.mkdir(parents=True, exist_ok=True)
                kept = folder / wheels[0].name
                os.replace(wheels[0], kept)
                return kept
        output = (result.stdout + result.stderr).replace(str(source), ".").strip().splitlines()
        errors = [line.strip() for line in output if "error" in line.lower() and line.strip()] or output[-6:]
        message = "pip wheel failed:\n    " + "\n    ".join(errors[-6:])
        folder.mkdir(parents=True, exist_ok=True)
        failed.write_text(message, encoding="utf-8")
        raise OwnDistributionError(message)


def release_files(wheel: Path, shipped: Mapping[str, FileEntry], python_root: str | None) -> OwnDistribution:
    """The files a release gets from the project's wheel: its `.dist-info` folder, and what the build
    generated inside the app's own packages that the release does not ship (never a second copy)."""
    prefix = f"{python_root}/" if python_root else ""
    packages = {
        PurePosixPath(p[len(prefix) :]).parts[0]
        for p in shipped
        if p.startswith(prefix) and "/" in p[len(prefix) :]
    }
    out: dict[str, FileEntry] = {}
    name = version = ""
    # A wheel kept for static metadata may be older than this release's code (cache_key): only its
    # .dist-info ships, never a module of it that this release may have deleted.
    generated = not static_metadata(shipped)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.endswith("/"):
                continue
            top = member.split("/", 1)[0]
            if top.endswith(".dist-info") and member.count("/") == 1:
                data = archive.read(member)
                if member.endswith("/METADATA"):
                    name, version = _name_version(data)
                out[prefix + member] = FileEntry(data)
            elif top.endswith(".data"):
                continue  # scripts and data files: not imported from the release
            elif generated and _generated_module(prefix + member, top in packages, shipped):
                out[prefix + member] = FileEntry(archive.read(member))
    info = next((p for p in out if p.endswith(".dist-info/METADATA")), None)
    if info is None or not name:
        raise OwnDistributionError(f"{wheel.name} has no readable .dist-info/METADATA")
    # pip records who installed a distribution; so does deploy.
    out[info.rsplit("/", 1)[0] + "/INSTALLER"] = FileEntry(b"deploy\n")
    return OwnDistribution(name, version, out)


def _generated_module(path: str, in_own_package: bool, shipped: Mapping[str, FileEntry]) -> bool:
    """A Python module the build wrote into one of the app's packages (a `_version.py`): not shipped,
    and no file the push leaves out on purpose (a secret, a shared path: those are no modules)."""
    return in_own_package and path.endswith(".py") and path not in shipped and not is_secret(path)


def _name_version(metadata: bytes) -> tuple[str, str]:
    headers = BytesHeaderParser().parsebytes(metadata)
    return str(headers.get("Name") or "").strip(), str(headers.get("Version") or "").strip()


def own_distribution(
    files: Mapping[str, FileEntry],
    python_root: str | None,
    cache: Path,
    say: Callable[[str], None],
    checkout: Checkout | None = None,
) -> dict[str, FileEntry]:
    """The files to add to a release for the project's own distribution ({} when it has none), built
    from `checkout` (the committed project) when given, else from the shipped `files`.

    A project that cannot be built is shipped as before, without its metadata, and `say` tells why.
    """
    if not buildable(files):
        return {}
    try:
        built = release_files(build_wheel(files, cache, checkout), files, python_root)
    except (OwnDistributionError, OSError, zipfile.BadZipFile) as exc:
        say(
            "  ! the project's own distribution could not be built, so importlib.metadata and entry "
            f"points will not find it on the hosts: {exc}"
        )
        return {}
    where = f"{python_root}/" if python_root else "the release's top folder"
    say(
        f"  own distribution: {built.name} {built.version} (its metadata beside the release's code, "
        f"in {where}: importlib.metadata and entry points find it)"
    )
    return built.files
