"""Commands of the `deploy` CLI for the services beside the app: `deploy services credentials`."""

from __future__ import annotations

import click

from deploy.cli.common import config_option, env_option, fail, handles_config_errors

#: What each service's password opens, for the warning before it is printed.
_OPENS = {"postgres": "the database", "redis": "Redis"}


@click.group("services")
def services_group() -> None:
    """The services deploy runs beside the app (services: in deploy.yaml): Postgres, Redis."""


@services_group.command()
@config_option
@env_option
@click.option(
    "--service",
    type=click.Choice(["postgres", "redis"]),
    default=None,
    help="The service whose URL to print (default: every service in deploy.yaml).",
)
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@handles_config_errors
def credentials(
    config_path: str, environment: str | None, service: str | None, accept_new_host_keys: bool
) -> None:
    """Print the URL the app connects to a service with, password included.

    This is the one command that shows it: deploy made the password on the service host (kept there,
    root 0600) and writes it only into the app's env file. Anyone who sees the output can use the
    service from an app host: do not paste it anywhere.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import load
    from deploy.push import services
    from deploy.push.services_redis import RedisError, require_credentials
    from deploy.remote.executor import SSHExecutor

    config = load(config_path, environment)
    configured = [n for n in ("postgres", "redis") if getattr(config.services, n) is not None]
    wanted = [service] if service else configured
    missing = [n for n in wanted if n not in configured]
    if not wanted or missing:
        fail(
            f"{config_path}: services.{(missing or ['postgres'])[0]} is not in deploy.yaml: "
            "there is nothing to show",
            2,
        )
    if not config.server.hosts:
        fail(f"{config_path}: server.hosts is empty: name the hosts (or use -e sandbox)", 2)
    executor = SSHExecutor(config, config.server.hosts, accept_new_host_keys=accept_new_host_keys)
    found: list[tuple[str, dict[str, str]]] = []
    try:
        try:
            if "postgres" in wanted:
                env, _ = services.app_env(config, executor)
                found.append(("postgres", dict(env)))
            if "redis" in wanted:
                found.append(("redis", dict(require_credentials(config, executor))))
        except (services.ServiceError, RedisError) as exc:
            fail(str(exc))
            return
    finally:
        executor.close()
    for name, env in found:
        click.echo(
            f"warning: the {name} password follows; it opens {_OPENS[name]} to anyone on an app host",
            err=True,
        )
        for key, value in env.items():
            click.echo(f"{key}={value}")


COMMANDS: list[click.Command] = [services_group]
