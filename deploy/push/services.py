"""Services beside the app (services: in deploy.yaml) on the hosts: learn, plan, run, and read what
the app needs (its URL), through an executor. The URL and password stay in memory: the caller
redacts them from everything printed, and writes them only into the app's env file (mode 0600)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from deploy.config.model import Config
from deploy.layout import postgres_paths
from deploy.plan import Command, Step
from deploy.push import backup_copy, postgres, upgrades
from deploy.remote.executor import Executor


class ServiceError(Exception):
    """A service could not be set up or read; the message says where and why (never a secret)."""


@dataclass(frozen=True)
class ServicesPlan:
    """What setup does for the services, before the app's own setup."""

    steps: tuple[Step, ...]
    pg: postgres.Settings | None


def plan(config: Config, executor: Executor) -> ServicesPlan:
    """Learn the service host's state and plan only what differs."""
    pg = postgres.settings(config)
    if pg is None:
        return ServicesPlan((), None)
    facts = postgres.parse_facts(executor.gather(pg.host_name, postgres.probe_command(config, pg)))
    try:
        return ServicesPlan(postgres.setup_steps(config, pg, facts), pg)
    except postgres.PostgresError as exc:
        raise ServiceError(str(exc)) from None


def run(executor: Executor, steps: tuple[Step, ...] | list[Step], say: Callable[[str], None]) -> None:
    """Run `steps` in order; say each change the host reports, and the app's downtime a step costs
    (before and after it); ServiceError at the first failure."""
    for step in steps:
        note = upgrades.before(step)
        if note:
            say(note)
        started = time.monotonic()
        result = executor.run_step(step.host, step)
        if not result.ok:
            tail = "\n    ".join(result.output.strip().splitlines()[-10:])
            raise ServiceError(
                f"{step.host}: {step.name} failed: {result.failed} (exit {result.exit_code})\n    {tail}"
            )
        for line in result.output.splitlines():
            if line.startswith(("changed: ", "restarted ", "reloaded ")):
                say(f"{step.host}: {step.name}: {line.removeprefix('changed: ')}")
        note = upgrades.after(step, time.monotonic() - started, result.output)
        if note:
            say(note)


def credentials(config: Config, executor: Executor) -> postgres.Credentials | None:
    """The role's credentials and deploy's CA, read from the service host into memory (None: not made
    yet, `deploy setup` makes them)."""
    pg = postgres.settings(config)
    if pg is None:
        return None
    code, output = executor.run(pg.host_name, postgres.read_command(config), timeout=60)
    if code != 0:
        return None
    return postgres.parse_credentials(output)


def app_env(config: Config, executor: Executor) -> tuple[dict[str, str], dict[str, str]]:
    """What the app's env file gets from the services ({DATABASE_URL: url}), and every secret value
    to redact from output ({name: value}, the password too). Empty when there are no services."""
    pg = postgres.settings(config)
    creds = credentials(config, executor)
    if pg is None:
        return {}, {}
    if creds is None:
        paths = postgres_paths(config)
        raise ServiceError(
            f"{pg.host_name}: services.postgres has no credentials yet ({paths.credentials}): "
            "run 'deploy setup' first"
        )
    url = creds.url(config, pg)
    return {pg.env: url}, {pg.env: url, "POSTGRES_PASSWORD": creds.password}


def ca_plan(config: Config, executor: Executor) -> list[Step]:
    """deploy's CA certificate on every app host where it is missing or differs."""
    pg = postgres.settings(config)
    creds = credentials(config, executor)
    if pg is None or creds is None or not pg.tls:
        return []
    path = postgres_paths(config).ca_on_app_hosts
    read = Command(("sh", "-c", 'cat -- "$1" 2>/dev/null || true', "read", path), "the CA certificate")
    current = {host: executor.gather(pg.names[host], read) for host in pg.app_hosts}
    return postgres.ca_steps(config, pg, creds, current)


def copy_plan(config: Config, executor: Executor, say: Callable[[str], None], apply: bool) -> list[Step]:
    """services.postgres.backups.copy_to naming a host: both ends prepared (see deploy/push/backup_copy.py),
    or, without `apply`, planned."""
    try:
        steps = backup_copy.prepare(config, executor, lambda s: run(executor, s, say), apply)
    except backup_copy.CopyError as exc:
        raise ServiceError(str(exc)) from None
    for step in steps if apply else []:
        say(f"{step.host}: {step.name}: ready")
    return steps
