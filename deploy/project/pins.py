"""Old pinned packages whose unpinned companions moved on: the combinations that die at import.

An old app pins Flask (`Flask==1.1.2`) but not what Flask imports; a fresh install gets today's
Werkzeug, Jinja2 or itsdangerous and the app cannot be imported. `BREAKAGES` lists such combinations,
each one verified by installing it from PyPI in a throwaway virtualenv and importing it (the error is
the one Python printed). `declared` reads the app's requirement lines (`deploy check`); `resolved`
reads the versions a wheelhouse holds (`deploy push`, before any host is touched).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class Breakage:
    """`package` at versions `old` cannot be imported with `companion` at versions `since` or later."""

    package: str
    old: str
    companion: str
    since: str
    #: What Python printed on importing the combination (the first of each, verified on 2026-12-07).
    error: str

    @property
    def advice(self) -> str:
        """The requirement line that keeps the companion below the breaking release."""
        return f"{self.companion}<{self.since}"


#: Each entry installed and imported here: `python -m venv; pip install 'P==old' 'C==since'; python -c
#: 'import p'`, and the release just below each bound (old's upper bound, since's predecessor) passes.
BREAKAGES: tuple[Breakage, ...] = (
    # Flask 2.2.3 imports werkzeug.urls.url_quote (flask/app.py:30), removed in Werkzeug 3.0.0;
    # Flask 2.2.4 and 2.2.5 import fine with Werkzeug 3.0.0.
    Breakage(
        "Flask", "<2.2.4", "Werkzeug", "3", "ImportError: cannot import name 'url_quote' from 'werkzeug.urls'"
    ),
    # Flask 1.1.2 with Werkzeug 2.1.0 (flask/wrappers.py); Werkzeug 2.0.3 imports fine, and so does
    # Flask 2.0.3 with Werkzeug 2.1.0.
    Breakage(
        "Flask",
        "<2",
        "Werkzeug",
        "2.1",
        "ImportError: cannot import name 'BaseResponse' from 'werkzeug.wrappers'",
    ),
    # Flask 1.1.2 with Jinja2 3.1.0; Jinja2 3.0.3 imports fine.
    Breakage("Flask", "<2", "Jinja2", "3.1", "ImportError: cannot import name 'escape' from 'jinja2'"),
    # Flask 1.1.2 with itsdangerous 2.1.0; itsdangerous 2.0.1 imports fine.
    Breakage(
        "Flask", "<2", "itsdangerous", "2.1", "ImportError: cannot import name 'json' from 'itsdangerous'"
    ),
    # Jinja2 2.11.3 with MarkupSafe 2.1.0; MarkupSafe 2.0.1 imports fine, and so does Jinja2 3.0.0
    # with MarkupSafe 2.1.0.
    Breakage(
        "Jinja2",
        "<3",
        "MarkupSafe",
        "2.1",
        "ImportError: cannot import name 'soft_unicode' from 'markupsafe'",
    ),
    # Flask-Login 0.6.2 with Werkzeug 3.0.0 (and Flask 3.0.0); Flask-Login 0.6.3 imports fine.
    Breakage(
        "Flask-Login",
        "<0.6.3",
        "Werkzeug",
        "3",
        "ImportError: cannot import name 'url_decode' from 'werkzeug.urls'",
    ),
    # Flask-WTF 1.1.1 (and 1.1.0) with Werkzeug 3.0.0 (and Flask 2.3.3); Flask-WTF 1.1.2 imports fine,
    # also with Flask 3.0.0.
    Breakage(
        "Flask-WTF",
        "<1.1.2",
        "Werkzeug",
        "3",
        "ImportError: cannot import name 'url_encode' from 'werkzeug.urls'",
    ),
    # Flask-SQLAlchemy 2.5.1 with Flask 3.0.0; Flask-SQLAlchemy 3.0.0 imports fine with Flask 3.0.0.
    Breakage(
        "Flask-SQLAlchemy",
        "<3",
        "Flask",
        "3",
        "ImportError: cannot import name '_app_ctx_stack' from 'flask'",
    ),
    # Flask-SQLAlchemy 2.5.1 with SQLAlchemy 2.0.0, at `SQLAlchemy()` (usually run at import, `db =
    # SQLAlchemy()`); Flask-SQLAlchemy 3.0.0 works with SQLAlchemy 2.0.0.
    Breakage(
        "Flask-SQLAlchemy",
        "<3",
        "SQLAlchemy",
        "2",
        "AttributeError: module 'sqlalchemy' has no attribute '__all__' (at SQLAlchemy())",
    ),
)


@dataclass(frozen=True)
class Declared:
    """A requirement line of the app: its specifier and where it is ('requirements.txt:3')."""

    name: str
    specifier: SpecifierSet
    where: str
    line: str


@dataclass(frozen=True)
class Problem:
    """A breaking combination the requirements allow (or a wheelhouse holds), and what to add."""

    breakage: Breakage
    #: The old package as found: 'Flask==1.1.2 (requirements.txt:1)' or 'Flask 1.1.2'.
    package: str
    #: The companion as found: 'Werkzeug, which nothing bounds', 'Werkzeug>=2 (requirements.txt:2)'.
    companion: str
    #: The file where the advice goes ('requirements.txt'), when known.
    file: str | None = None
    #: The old package's line ('requirements.txt:1'), when it comes from requirement lines.
    where: str | None = None

    def message(self) -> str:
        b = self.breakage
        where = f" to {self.file}" if self.file else ""
        return (
            f"{self.package} cannot be imported with {b.companion}>={b.since} ({b.error}), and "
            f"{self.companion}: add `{b.advice}`{where}"
        )


def _upper(specifier: SpecifierSet) -> tuple[Version, bool] | None:
    """The lowest upper bound of the specifiers, (version, inclusive); None when there is none."""
    bounds: list[tuple[Version, bool]] = []
    for spec in specifier:
        bound = _spec_upper(spec)
        if bound is not None:
            bounds.append(bound)
    return min(bounds, key=lambda b: (b[0], b[1])) if bounds else None


def _spec_upper(spec: Specifier) -> tuple[Version, bool] | None:
    try:
        if spec.operator in ("==", "===") and not spec.version.endswith(".*"):
            return Version(spec.version), True
        if spec.operator == "==":  # ==1.2.*: below 1.3
            return _next(Version(spec.version[:-2]).release), False
        if spec.operator == "<=":
            return Version(spec.version), True
        if spec.operator == "<":
            return Version(spec.version), False
        if spec.operator == "~=":  # ~=1.2.3: below 1.3
            return _next(Version(spec.version).release[:-1]), False
    except InvalidVersion:
        return None
    return None


def _next(release: tuple[int, ...]) -> Version:
    return Version(".".join(map(str, (*release[:-1], release[-1] + 1))))


def below(specifier: SpecifierSet, limit: str) -> bool:
    """Whether every version the specifier admits is below `limit` (`Flask==1.1.2` is below 2)."""
    upper = _upper(specifier)
    if upper is None:
        return False
    version, inclusive = upper
    return version < Version(limit) if inclusive else version <= Version(limit)


def _old_limit(breakage: Breakage) -> str:
    return breakage.old.removeprefix("<")


def _installed(requirement: Requirement, envs: Sequence[Mapping[str, str]]) -> bool:
    """Whether the line's marker holds on one of the hosts (always, without envs or a marker)."""
    if requirement.marker is None or not envs:
        return True
    try:
        return any(requirement.marker.evaluate({**env, "extra": ""}) for env in envs)
    except (UndefinedComparison, UndefinedEnvironmentName):
        return True


def declared(lines: Iterable[tuple[str, str]], envs: Sequence[Mapping[str, str]] = ()) -> list[Declared]:
    """The requirement lines that name a package by name ((where, line) as TopLevel gives them); with
    `envs` (the hosts' marker environments), only those whose marker holds on a host."""
    out: list[Declared] = []
    for where, line in lines:
        try:
            parsed = Requirement(_requirement_text(line))
        except InvalidRequirement:
            continue
        if parsed.url is None and _installed(parsed, envs):
            out.append(Declared(canonicalize_name(parsed.name), parsed.specifier, where, line))
    return out


def from_requirements(requirements: Iterable[Declared]) -> list[Problem]:
    """The breaking combinations requirement lines allow: an old package held below the breaking
    version (pinned or bounded) and its companion not bounded below the release that breaks it."""
    by_name: dict[str, list[Declared]] = {}
    for req in requirements:
        by_name.setdefault(req.name, []).append(req)
    problems: list[Problem] = []
    for b in _lowest_first():
        if any(p.breakage.package == b.package and p.breakage.companion == b.companion for p in problems):
            continue  # a lower bound for the same companion is advised already
        held = [r for r in by_name.get(canonicalize_name(b.package), []) if below(r.specifier, _old_limit(b))]
        if not held:
            continue
        companions = by_name.get(canonicalize_name(b.companion), [])
        if any(below(c.specifier, b.since) for c in companions):
            continue
        old = held[0]
        companion = (
            f"{b.companion}{companions[0].specifier} ({companions[0].where}) allows it"
            if companions
            else f"nothing bounds {b.companion}"
        )
        file = old.where.rsplit(":", 1)[0]
        problems.append(Problem(b, _requirement_text(old.line), companion, file, old.where))
    return problems


def _requirement_text(line: str) -> str:
    """A requirement line without its options (`--hash=...`)."""
    return line.split(" --")[0].split(" -")[0].strip()


def _lowest_first() -> list[Breakage]:
    """The table with, per old package and companion, the lowest breaking release first."""
    return sorted(BREAKAGES, key=lambda b: (b.package, b.companion, Version(b.since)))


def from_versions(versions: Mapping[str, Version], file: str | None = None) -> list[Problem]:
    """The breaking combinations a resolved set holds (canonical name -> version, e.g. a wheelhouse)."""
    problems: list[Problem] = []
    for b in _lowest_first():
        if any(p.breakage.package == b.package and p.breakage.companion == b.companion for p in problems):
            continue
        old = versions.get(canonicalize_name(b.package))
        new = versions.get(canonicalize_name(b.companion))
        if old is None or new is None:
            continue
        if old in SpecifierSet(b.old) and new >= Version(b.since):
            companion = f"the wheels hold {b.companion} {new}"
            problems.append(Problem(b, f"{b.package} {old}", companion, file))
    return problems
