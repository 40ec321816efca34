"""Two of `deploy init`'s choices: the health path the app really serves, and the values of the settings
it cannot start without from the project's example environment file."""

from __future__ import annotations

import shlex
from pathlib import Path

from deploy.config.flask_version import flask_command
from deploy.config.loader import ConfigError, parse_dotenv
from deploy.config.secretfiles import NOT_SECRETS
from deploy.project.candidates import HEALTH_PATHS, Project
from deploy.project.scan import Project as ScannedProject

#: The last part of a health route served elsewhere than HEALTH_PATHS (`/api/health/heartbeat`).
HEALTH_WORDS = ("health", "healthz", "healthcheck", "health-check", "heartbeat", "ping", "livez", "readyz")


def choose_health(project: Project, scanned: ScannedProject, routes: set[str]) -> None:
    """app.health: a route at one of HEALTH_PATHS, else the shortest GET route named like a health check
    (a router's `/heartbeat` under `/api/health`), else the home page `/`, as served (a blueprint's or
    router's prefix joined: a blueprint's `/health` may be `/api/v1/health`)."""
    served = {r.rule for r in scanned.routes} or routes
    project.health = next((p for p in HEALTH_PATHS if p in served), None)
    if project.health is not None:
        return
    gets = sorted(
        (r.rule for r in scanned.routes if "GET" in r.methods and "<" not in r.rule and "{" not in r.rule),
        key=lambda rule: (len(rule), rule),
    )
    named = [r for r in gets if r.rstrip("/").rsplit("/", 1)[-1].strip("_").lower() in HEALTH_WORDS]
    if named:
        project.health = named[0]
        project.notes.append(f"health route: {named[0]} (app.health), the app's own health check")
    elif "/" in gets:
        project.health = "/"
        project.notes.append(
            "no /health route found: app.health is the home page /; a /health route that answers 200 "
            "without touching the database or the model is a better probe for deploy's health gate"
        )
    else:
        project.notes.append(
            "no /health route found: add one that returns 200, deploy's health gate probes it"
        )


def choose_example_values(root: Path, project: Project, required: set[str]) -> None:
    """A plain setting the app cannot start without (`config("DEFAULT_MODEL_PATH")` with no default) goes
    into app.env with the value of the project's example environment file, when it gives one."""
    for name in NOT_SECRETS:
        try:
            example = parse_dotenv(root / name)
        except ConfigError:
            continue
        values = {n: example[n] for n in project.env if n in required and example.get(n)}
        if values:
            project.example_env = values
            project.env = [n for n in project.env if n not in values]
            read = "settings read from the environment: "
            project.notes = [n for n in project.notes if not n.startswith(read)]
            if project.env:
                project.notes.append(f"{read}{', '.join(project.env)} (add them to app.env)")
            project.notes.append(
                f"settings the app cannot start without, from {name}: {', '.join(values)} (in app.env)"
            )
            return


#: Postgres drivers: with one of them in the requirements, DATABASE_URL names a Postgres database.
_POSTGRES_DRIVERS = ("psycopg2", "psycopg2-binary", "psycopg", "psycopg-binary", "asyncpg", "pg8000")


def note_postgres(project: Project, scanned: ScannedProject) -> None:
    """A DATABASE_URL secret beside a Postgres driver: say that `services: postgres` can provide both."""
    if "DATABASE_URL" in project.secrets and scanned.depends_on(*_POSTGRES_DRIVERS):
        project.notes.append(
            "DATABASE_URL with a Postgres driver in the requirements: 'services: {postgres: {}}' in "
            "deploy.yaml runs Postgres on your host and sets DATABASE_URL itself (then drop it from "
            "app.secrets); keep it a secret for a database of your own"
        )


def release_rows(project: Project, module: str) -> list[tuple[str, str]]:
    """`app.release`: the migrations' upgrade (Flask-Migrate, Flask-Alembic, plain Alembic), if any."""
    if project.migrations:
        directory = project.migrations_dir.strip("/")
        upgrade = "db upgrade"
        if directory != "migrations":
            upgrade += f" --directory {shlex.quote(directory)}"
        release = (
            f"{project.cli_script} {upgrade}"
            if project.cli_script
            else flask_command(project.root, module, upgrade)
        )
        return [(f'  release: ["{release}"]', "once per push, before the switch")]
    if project.plain_alembic:
        return [('  release: ["python -m alembic upgrade head"]', "once per push, before the switch")]
    return []
