"""The services beside the app (services: in deploy.yaml) in setup and push: one loop over those
configured, which sets each up (or, in a dry run, shows what would change), reads what the app's env
file gets from it (DATABASE_URL, REDIS_URL) into memory only, and hides those values from everything
printed from then on. The same errors for each: a push changes nothing, a setup stops."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal

from deploy.config.model import Config
from deploy.config.redact import redacting_output
from deploy.plan import Step
from deploy.push import services, services_redis
from deploy.push.console import Console
from deploy.remote.executor import ConnectError, Executor, host_name

#: setup: set the services up; dry-run: show what setup would change; push: they must be set up.
Mode = Literal["setup", "dry-run", "push"]
#: What one service gives the app: its variables, and every value to hide from output.
Found = tuple[dict[str, str], dict[str, str]]


@dataclass(frozen=True)
class Service:
    """One kind of service: whether deploy.yaml has it, and how setup and push get its variables."""

    name: str
    configured: Callable[[Config], bool]
    prepare: Callable[[Config, Executor, Console, Mode], Found]


def service_env(
    config: Config, executor: Executor, printer: Console, hide: ExitStack, mode: Mode
) -> dict[str, str]:
    """The app's variables from every configured service, each hidden (in `hide`) from all output
    from the moment it is read; the command ends at the first service that cannot be set up or read."""
    env: dict[str, str] = {}
    for service in SERVICES:
        if not service.configured(config):
            continue
        try:
            found, secret = service.prepare(config, executor, printer, mode)
        except (services.ServiceError, services_redis.RedisError, ConnectError) as exc:
            printer.fail(f"nothing was changed: {exc}" if mode == "push" else f"setup stopped: {exc}", 1)
        hide.enter_context(redacting_output(secret))
        env.update(found)
    return env


def _postgres(config: Config, executor: Executor, printer: Console, mode: Mode) -> Found:
    """Postgres: set up (or shown) before the app, then deploy's CA certificate on the app hosts."""
    if mode == "push":
        return services.app_env(config, executor)
    dry_run = mode == "dry-run"
    planned = services.plan(config, executor)
    if planned.pg is None:
        return {}, {}
    host = planned.pg.host_name
    if dry_run:
        if planned.steps:
            printer.show(list(planned.steps), "dry run: nothing is changed. Services would:")
        else:
            printer.say(f"dry run: {host}: postgres is already set up; nothing would change")
    else:
        services.run(executor, planned.steps, printer.say)
        if not planned.steps:
            printer.say(f"{host}: postgres already set up; nothing changed")
    try:
        found = services.app_env(config, executor)
    except services.ServiceError:
        if dry_run:
            return {}, {}
        raise
    ca = services.ca_plan(config, executor)
    if dry_run and ca:
        printer.show(ca, "then deploy's Postgres CA on the app hosts:")
    elif ca:
        services.run(executor, ca, printer.say)
        printer.say("postgres: deploy's CA certificate on " + ", ".join(s.host for s in ca))
    return found


def _redis(config: Config, executor: Executor, printer: Console, mode: Mode) -> Found:
    """Redis: its ACL user and password made on its host, persistence, TLS; REDIS_URL for the app."""
    if mode == "push":
        env = services_redis.require_credentials(config, executor)
        return env, services_redis.redactions(env)

    def run(step: Step) -> str:
        result = executor.run_step(step.host, step)
        if not result.ok:
            printer.fail(
                f"setup failed: {step.host}: {step.name}: {result.failed} (exit {result.exit_code})\n    "
                + "\n    ".join(result.output.strip().splitlines()[-12:]),
                1,
            )
        said = [line for line in result.output.splitlines() if line.startswith("redis-server ")]
        printer.say(f"{step.host}: {step.name}" + (f": {'; '.join(said)}" if said else ""))
        return result.output

    hosts = [host_name(h) for h in config.server.hosts]
    prepared = services_redis.prepare_redis(config, executor, hosts, mode == "setup", run)
    if mode == "setup" and not prepared.steps:
        printer.say("Redis: already set up; nothing changed")
    if mode == "dry-run" and prepared.steps:
        printer.show(prepared.steps, "dry run: nothing is changed. Services would:")
    return prepared.env, services_redis.redactions(prepared.env)


#: In the order setup handles them.
SERVICES = (
    Service("postgres", lambda config: config.services.postgres is not None, _postgres),
    Service("redis", lambda config: config.services.redis is not None, _redis),
)
