"""Deployment checks: a Dockerfile, pinned requirements, secrets kept out of code and images, migrations."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Parsed
from packaging.specifiers import Specifier
from packaging.version import InvalidVersion, Version

from deploy.checker import Context, Finding, Severity, Skip, check
from deploy.project.requirements import environment as marker_environment
from deploy.project.scan import Requirement, dockerfile_env

from ._helpers import config_file

_SECRET_NAME = re.compile(r"(?i)(passw(or)?d|secret|token|api_?key|private_?key|access_?key|credential|dsn)")
_LOCKS = ("poetry.lock", "uv.lock", "Pipfile.lock", "pdm.lock", "requirements.lock")


@check(
    "DEP001",
    area="deployment",
    severity="low",
    title="No Dockerfile",
    why="""Without a Dockerfile (or a deploy.yaml from which deploy renders one) the runtime is whatever
    the server happens to have installed: builds are not reproducible and cannot be tested in CI.""",
    fix="""Run `deploy init` and `deploy render` (a pinned, non-root, multi-stage Dockerfile is rendered),
    or write your own Dockerfile.""",
    layers=("project",),
    references=("https://docs.docker.com/build/building/best-practices/",),
)
def dockerfile(ctx: Context) -> Iterator[Finding]:
    if ctx.config is None and not ctx.project.dockerfiles:
        yield Finding("no Dockerfile and no deploy.yaml to render one from")


def _requirements_file(ctx: Context) -> str:
    return ctx.config.app.requirements if ctx.config is not None else "requirements.txt"


@check(
    "DEP002",
    area="deployment",
    severity="medium",
    title="Requirements are not pinned",
    why="""`flask>=2` installs whatever is newest on the day of the build: a release that worked yesterday
    breaks today, and staging and production run different code.""",
    fix="""Pin every package with `==` (generate with `pip freeze` or `pip-compile`), or commit a lock
    file (uv.lock, poetry.lock). Pinned means the line admits one release: `==1.2.3` (no `*`),
    `===1.2.3`, a direct URL (`name @ https://...`), `>=1.2.3,<=1.2.3`, or `>=1.2.3,<1.2.4` (the next
    release at the same precision; only post-releases of 1.2.3 fit). `~=1.2.3` is a range (1.2.*), not a
    pin. Lines whose environment marker is false on the hosts (`; sys_platform == "win32"`,
    `; python_version < "3.8"`) are never installed and are not reported; markers are evaluated for
    the Python in deploy.yaml `app.python` (Debian 12's 3.11.2 when unset) on Linux x86_64 and aarch64.""",
    layers=("project",),
    references=(
        "https://pip.pypa.io/en/stable/topics/repeatable-installs/",
        "https://packaging.python.org/en/latest/specifications/dependency-specifiers/#environment-markers",
    ),
)
def pinned_requirements(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    if any(PurePosixPath(p).name in _LOCKS for p in project.files):
        return
    wanted = _requirements_file(ctx)
    if wanted not in project.files:
        yield Finding(
            f"no {wanted} (and no lock file): the versions installed in production are unknown",
            severity=Severity.HIGH,
        )
        return
    envs = _host_environments(ctx)
    for req in project.requirements:
        if req.file == wanted and not _pinned(req, envs):
            yield Finding(f"{req.name} is not pinned ({req.spec or 'any version'})", req.file, req.line)


#: The hosts' Python when deploy.yaml does not name one (Debian 12), and the machines they may be.
_HOST_PYTHON = "3.11.2"
_HOST_MACHINES = ("x86_64", "aarch64")


def _host_environments(ctx: Context) -> list[dict[str, str]]:
    python = ctx.config.app.python if ctx.config is not None and ctx.config.app.python else _HOST_PYTHON
    if python.count(".") == 1:
        python += ".0"
    return [marker_environment(python, machine) for machine in _HOST_MACHINES]


def _pinned(req: Requirement, envs: list[dict[str, str]]) -> bool:
    """Whether the requirement line installs one known release on the hosts (or nothing at all)."""
    try:
        parsed = Parsed(f"{req.name} {req.spec.split(' --')[0]}")
    except InvalidRequirement:
        return req.pinned
    if parsed.marker is not None and not _applies(parsed.marker, envs):
        return True  # never installed on the hosts
    return parsed.url is not None or one_release(list(parsed.specifier))


def _applies(marker: Marker, envs: list[dict[str, str]]) -> bool:
    try:
        return any(marker.evaluate({**e, "extra": ""}) for e in envs)
    except (UndefinedComparison, UndefinedEnvironmentName):
        return True  # cannot tell: report the line as it stands


def one_release(specifiers: list[Specifier]) -> bool:
    """Whether the specifiers admit a single release (post-releases of it aside)."""
    low: Version | None = None
    high: tuple[Version, bool] | None = None  # (bound, inclusive)
    try:
        for spec in specifiers:
            if spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith(".*")):
                return True
            if spec.operator == ">=":
                low = Version(spec.version)
            elif spec.operator in ("<=", "<"):
                high = (Version(spec.version), spec.operator == "<=")
    except InvalidVersion:
        return False
    if low is None or high is None:
        return False
    bound, inclusive = high
    if inclusive:
        return bound == low
    release = low.release
    following = Version(".".join(map(str, (*release[:-1], release[-1] + 1))))
    return len(release) >= 3 and not low.is_prerelease and bound == following


def _secret_values_in_dockerfile(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    for path, instructions in project.dockerfiles.items():
        for ins in instructions:
            if ins.keyword in ("ENV", "ARG"):
                for key, value in dockerfile_env(ins):
                    if _SECRET_NAME.search(key) and (value or ins.keyword == "ARG"):
                        what = (
                            "a build argument (kept in the image history)"
                            if ins.keyword == "ARG"
                            else "baked into the image"
                        )
                        yield Finding(f"{key} is {what}", path, ins.line)
            if ins.keyword in ("COPY", "ADD"):
                sources = ins.args.split()[:-1]
                if any(PurePosixPath(s).name.startswith(".env") for s in sources):
                    yield Finding(".env is copied into the image", path, ins.line)
                elif "." in sources and _dotenv_files(ctx) and not _dockerignored(ctx, path, ".env"):
                    yield Finding(
                        "COPY . copies .env into the image (.dockerignore does not exclude it)",
                        path,
                        ins.line,
                    )


def _dotenv_files(ctx: Context) -> list[str]:
    return [p for p in ctx.project.files if PurePosixPath(p).name == ".env"]


def _dockerignored(ctx: Context, dockerfile: str, name: str) -> bool:
    folder = PurePosixPath(dockerfile).parent
    ignore = ctx.project.files.get(str(folder / ".dockerignore") if str(folder) != "." else ".dockerignore")
    if ignore is None:
        return False
    patterns = [
        line.strip().lstrip("/") for line in ignore.splitlines() if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(name, p) or p in ("*", "**") for p in patterns if not p.startswith("!"))


@check(
    "DEP003",
    area="deployment",
    severity="critical",
    title="Secrets in the image or in deploy.yaml",
    why="""Anything in an image layer, a build argument or a committed config file is readable by everyone
    who can pull the image or clone the repository, and stays in the history after it is removed.""",
    fix="""Give secrets at run time only: list their names in deploy.yaml `app.secrets` (values come from the
    environment or .env at push time into a 0600 file on the host), exclude `.env` in .dockerignore, and
    never put them in ENV, ARG or `app.env`.""",
    layers=("project",),
    references=(
        "https://docs.docker.com/build/building/secrets/",
        "https://12factor.net/config",
        "https://github.com/hadolint/hadolint/wiki/DL3002",
    ),
)
def secrets_in_image(ctx: Context) -> Iterator[Finding]:
    yield from _secret_values_in_dockerfile(ctx)
    if ctx.config is not None:
        for key in sorted(ctx.config.app.env):
            if _SECRET_NAME.search(key):
                yield Finding(
                    f"app.env gives {key} a value in deploy.yaml; list it in app.secrets instead",
                    config_file(ctx),
                )


@check(
    "DEP004",
    area="deployment",
    severity="high",
    title=".env is not ignored by git",
    why="""A .env file holds the real secrets; without a .gitignore entry one `git add .` publishes them to
    everyone with access to the repository, forever (history keeps them).""",
    fix="""Add `.env` to .gitignore (commit a `.env.example` with placeholder values instead) and rotate any
    secret that was ever committed.""",
    layers=("project",),
    references=("https://git-scm.com/docs/gitignore",),
)
def dotenv_ignored(ctx: Context) -> Iterator[Finding]:
    envs = _dotenv_files(ctx)
    if not envs:
        return
    ignore = ctx.project.files.get(".gitignore", "")
    patterns = [
        line.strip().lstrip("/") for line in ignore.splitlines() if line.strip() and not line.startswith("#")
    ]
    for env in envs:
        name = PurePosixPath(env).name
        if not any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(env, p) for p in patterns):
            yield Finding(f"{env} exists and .gitignore does not exclude it", env)


_MIGRATION_COMMANDS = re.compile(
    r"\b(flask\s+(--app\s+\S+\s+)?db\s+upgrade|alembic\s+upgrade|migrate\b|upgrade\s+head)"
)


@check(
    "DEP005",
    area="deployment",
    severity="low",
    title="Database migrations are not automated",
    why="""A release whose code expects a new column fails on the old schema; `db.create_all()` never
    changes existing tables; running migrations by hand is forgotten on one host or done twice.""",
    fix="""Use Flask-Migrate/Alembic (`flask db init`, `flask db migrate`) and run `flask db upgrade` on
    every release: deploy.yaml `app.release: ["flask --app yourapp db upgrade"]`.""",
    layers=("source", "project"),
    references=(
        "https://flask-migrate.readthedocs.io/en/latest/",
        "https://alembic.sqlalchemy.org/en/latest/",
    ),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 0 of its 3 findings at medium severity
    were right (0%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.

    Flask-Migrate (or Alembic) imported with no migration scripts in the project (no `migrations` or
    `alembic` folder, no `alembic.ini`) is reported at its `Migrate(...)`: `flask db upgrade` has
    nothing to apply, and the tables come from `db.create_all()` or from nowhere.""",
)
def migrations(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    uses_orm = project.uses("flask_sqlalchemy", "sqlalchemy.orm", "sqlalchemy.ext.declarative") or any(
        c.leaf == "SQLAlchemy" for c in project.calls
    )
    if not uses_orm:
        return
    has_migrations = any(
        p.rstrip("/").rsplit("/", 1)[-1] in ("migrations", "alembic")
        for p in project.files
        if p.endswith("/")
    )
    has_migrations = has_migrations or "alembic.ini" in project.files
    if not has_migrations and project.uses("flask_migrate", "alembic"):
        migrate = project.calls_named("Migrate")
        where = (migrate[0].file, migrate[0].line) if migrate else (None, None)
        yield Finding(
            "Flask-Migrate (or Alembic) is set up but the project has no migration scripts (no migrations/ "
            "folder, no alembic.ini): `flask db init` and `flask db migrate`, then commit them",
            *where,
        )
        return
    if not has_migrations:
        create_all = project.calls_named("create_all")
        where = (create_all[0].file, create_all[0].line) if create_all else (None, None)
        yield Finding("the app uses SQLAlchemy but has no migrations (Flask-Migrate or Alembic)", *where)
        return
    if ctx.config is not None and not any(_MIGRATION_COMMANDS.search(cmd) for cmd in ctx.config.app.release):
        yield Finding("migrations exist but deploy.yaml app.release does not run them", config_file(ctx))


@check(
    "DEP007",
    area="deployment",
    severity="medium",
    title="hadolint finds problems in the project's Dockerfile",
    why="""hadolint checks a Dockerfile against Docker's best practices: unpinned base images and packages,
    running as root, shell-form commands that swallow signals, caches left in layers. This is the
    project's own Dockerfile; the one deploy renders is RND005.""",
    fix="""Fix what hadolint names (each rule links to its wiki page), or suppress a rule with a reason.""",
    layers=("project",),
    references=("https://github.com/hadolint/hadolint#rules",),
)
def project_hadolint(ctx: Context) -> Iterator[Finding]:
    from .rendered import lint_dockerfiles

    dockerfiles = {p: ctx.project.files[p] for p in ctx.project.dockerfiles}
    if not dockerfiles:
        raise Skip("no Dockerfile in the project")
    yield from lint_dockerfiles(dockerfiles)
