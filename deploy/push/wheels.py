"""Which wheels a host needs that `pip download` left out: markers evaluated for the host, not here.

`pip download --python-version ... --platform ...` picks wheels for the host's interpreter and
platform, but evaluates environment markers (`; python_full_version <= "3.11.2"`) against the
Python that runs pip, on this machine. A dependency that only the host's Python needs is then
missing from the wheelhouse, and the host's `pip install --no-index` fails. These functions read
`Requires-Dist` from the downloaded wheels, evaluate every marker for the host, and name what is
still missing (or present only in a version that does not satisfy the requirement).
"""

from __future__ import annotations

import zipfile
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from deploy.config.workers import EXTRA_PACKAGES, worker
from deploy.project.pins import from_versions


class WheelMetadataError(Exception):
    """A downloaded wheel has no readable METADATA."""


def _applies(marker: Marker | None, env: Mapping[str, str], extra: str) -> bool:
    return marker is None or marker.evaluate({**env, "extra": extra})


@dataclass(frozen=True)
class Wheel:
    """A downloaded wheel: its distribution name (canonical), version and `Requires-Dist` lines."""

    file: str
    name: str
    version: str
    requires: tuple[str, ...]

    @property
    def parsed_version(self) -> Version | None:
        try:
            return Version(self.version)
        except InvalidVersion:
            return None


def read_wheel(path: Path) -> Wheel:
    """Name, version and requirements from the METADATA inside a wheel."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise WheelMetadataError(f"{path.name}: no .dist-info/METADATA in the wheel")
            data = archive.read(names[0])
    except (OSError, zipfile.BadZipFile) as exc:
        raise WheelMetadataError(f"{path.name}: not a readable wheel ({exc})") from None
    headers = BytesHeaderParser().parsebytes(data)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise WheelMetadataError(f"{path.name}: METADATA has no Name or Version")
    requires = tuple(str(line).strip() for line in headers.get_all("Requires-Dist") or [])
    return Wheel(path.name, canonicalize_name(str(name)), str(version).strip(), requires)


@dataclass(frozen=True)
class Root:
    """A requirement of the app itself: the line pip reads (with its options) and where it is."""

    line: str
    where: str


@dataclass
class Need:
    """A distribution the host needs, with every specifier and extra asked of it, and by whom."""

    name: str
    specifier: SpecifierSet = field(default_factory=SpecifierSet)
    extras: set[str] = field(default_factory=set)
    #: Who asks, e.g. 'redis 5.0.1 when python_full_version <= "3.11.2"' or 'requirements.txt:3'.
    wanted_by: list[str] = field(default_factory=list)
    #: The app's own lines for it, markers left out (pip downloads one of these, hashes and all).
    lines: list[str] = field(default_factory=list)

    @property
    def requirement(self) -> str:
        """What to download when the app's own files do not name it (no marker: it holds for the host)."""
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        return f"{self.name}{extras}{self.specifier}"

    @property
    def download_line(self) -> str:
        return self.lines[0] if self.lines else self.requirement

    def describe(self) -> str:
        return f"{self.requirement} (required by {', '.join(dict.fromkeys(self.wanted_by))})"


def _version_order(wheel: Wheel) -> tuple[bool, Version]:
    """Sort key: wheels with a readable version, by version."""
    version = wheel.parsed_version
    return (version is not None, version or Version("0"))


def _pick(wheels: list[Wheel], specifier: SpecifierSet) -> Wheel | None:
    """The newest wheel whose version satisfies `specifier` (pip on the host picks the newest)."""
    for wheel in wheels:
        version = wheel.parsed_version
        if version is None or specifier.contains(version, prereleases=True):
            return wheel
    return None


def split_options(line: str) -> tuple[str, str]:
    """A requirements-file line as (requirement, its per-requirement options such as `--hash=...`)."""
    parts = line.split()
    for index, part in enumerate(parts):
        if index and part.startswith("-"):
            return " ".join(parts[:index]), " ".join(parts[index:])
    return " ".join(parts), ""


def _download_line(requirement: Requirement, options: str) -> str:
    """The line that makes pip download `requirement` here: without its marker (pip would evaluate
    it for this machine), with its options (hashes)."""
    bare = Requirement(str(requirement))
    bare.marker = None
    return f"{bare} {options}".strip()


def unmet(wheels: Iterable[Wheel], roots: Iterable[Root], env: Mapping[str, str]) -> list[Need]:
    """What the host needs that `wheels` lack, following every requirement whose marker holds for `env`.

    Starts from the app's own requirements (`roots`) and follows the `Requires-Dist` of the wheel the
    host would install for each, with the extras asked for (also by other packages, `foo[bar]`).
    """
    by_name: dict[str, list[Wheel]] = {}
    for found in wheels:
        by_name.setdefault(found.name, []).append(found)
    for versions in by_name.values():
        versions.sort(key=_version_order, reverse=True)

    needs: dict[str, Need] = {}
    queue: deque[tuple[Requirement, str, str | None]] = deque()
    for root in roots:
        text, options = split_options(root.line)
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue  # a path, a URL or an option pip understood: pip downloaded it already
        if _applies(requirement.marker, env, ""):
            queue.append((requirement, root.where, _download_line(requirement, options)))
    followed: set[tuple[str, str]] = set()
    while queue:
        requirement, wanted_by, line = queue.popleft()
        name = canonicalize_name(requirement.name)
        need = needs.setdefault(name, Need(name))
        need.specifier &= requirement.specifier
        need.extras |= {canonicalize_name(e) for e in requirement.extras}
        need.wanted_by.append(wanted_by)
        if line is not None:
            need.lines.append(line)
        wheel = _pick(by_name.get(name, []), need.specifier)
        if wheel is None:
            continue
        for extra in ["", *sorted(need.extras)]:
            if (wheel.file, extra) in followed:
                continue
            followed.add((wheel.file, extra))
            for text in wheel.requires:
                try:
                    dependency = Requirement(text)
                except InvalidRequirement:
                    continue  # pip would have refused it already
                if not _applies(dependency.marker, env, extra):
                    continue
                if extra and _applies(dependency.marker, env, ""):
                    continue  # followed without the extra already
                who = f"{wheel.name} {wheel.version}" + (f"[{extra}]" if extra else "")
                when = f" when {dependency.marker}" if dependency.marker is not None else ""
                queue.append((dependency, who + when, None))
    return [need for name, need in needs.items() if _pick(by_name.get(name, []), need.specifier) is None]


def _wheel_name_version(filename: str) -> tuple[str, Version | None]:
    """A wheel file name's distribution (canonical) and version."""
    parts = filename.split("-")
    try:
        version = Version(parts[1]) if len(parts) > 1 else None
    except InvalidVersion:
        version = None
    return canonicalize_name(parts[0]), version


def worker_problem(worker_class: str, wheel_files: Iterable[str], requirements: str) -> str | None:
    """Why Gunicorn could not load `worker_class` from a virtualenv of these wheels, or None.

    The wheels are everything the requirements install (dependencies included), so a worker package
    some other dependency brings in counts too.
    """
    w = worker(worker_class)
    installed = dict(_wheel_name_version(f) for f in wheel_files if f.endswith(".whl"))
    what = f"gunicorn.worker_class {worker_class}"
    if w.package is not None and canonicalize_name(w.package) not in installed:
        return (
            f"{what} needs {w.package}, which {requirements} does not install: add it there, or choose "
            "another gunicorn.worker_class"
        )
    gunicorn = installed.get("gunicorn")
    if gunicorn is None:  # every slot runs the virtualenv's gunicorn: the start would fail on every host
        return f"gunicorn is not among what {requirements} installs: add gunicorn (pinned) there"
    for package in EXTRA_PACKAGES.get(w.extra or "", ()):
        if package not in installed:
            return (
                f"{what} imports {package}, which {requirements} does not install (Gunicorn {gunicorn} "
                f"brings it with its {w.extra} extra): require gunicorn[{w.extra}]=={gunicorn}"
            )
    if w.gunicorn_since is not None and gunicorn.release[:2] < w.gunicorn_since:
        since = ".".join(map(str, w.gunicorn_since))
        return f"{what} needs gunicorn>={since}; {requirements} installs {gunicorn}"
    if w.gunicorn_until is not None and gunicorn.major > w.gunicorn_until:
        return (
            f"{what} was removed in gunicorn {w.gunicorn_until + 1}; "
            f"{requirements} installs {gunicorn}: pin gunicorn<{w.gunicorn_until + 1} or use gevent"
        )
    return None


def pins_problem(wheel_files: Iterable[str], requirements: str) -> str | None:
    """Why the app could not be imported from a virtualenv of these wheels (deploy.project.pins), or None."""
    installed = dict(_wheel_name_version(f) for f in wheel_files if f.endswith(".whl"))
    found = from_versions({n: v for n, v in installed.items() if v is not None}, requirements)
    return "; ".join(p.message() for p in found) or None
