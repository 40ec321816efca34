"""Commands of the `deploy` CLI for the services beside the app: `deploy services credentials`."""

from __future__ import annotations

import click

from deploy.cli.common import config_option, env_option, fail, handles_config_errors


@click.group("services")
def services_group() -> None:
    """The services deploy runs beside the app (services: in deploy.yaml): Redis."""


@services_group.command()
@config_option
@env_option
@click.option(
    "--service",
    type=click.Choice(["redis"]),
    default="redis",
    show_default=True,
    help="The service whose URL to print.",
)
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@handles_config_errors
def credentials(config_path: str, environment: str | None, service: str, accept_new_host_keys: bool) -> None:
    """Print the URL the app connects to a service with, password included.

    This is the one command that shows it: deploy made the password on the service host (kept there,
    root 0600) and writes it only into the app's env file. Anyone who sees the output can use the
    service from an app host: do not paste it anywhere.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import load
    from deploy.push.services_redis import RedisError, require_credentials
    from deploy.remote.executor import SSHExecutor

    config = load(config_path, environment)
    if config.services.redis is None:
        fail(f"{config_path}: services.{service} is not in deploy.yaml: there is nothing to show", 2)
    if not config.server.hosts:
        fail(f"{config_path}: server.hosts is empty: name the hosts (or use -e sandbox)", 2)
    executor = SSHExecutor(config, config.server.hosts, accept_new_host_keys=accept_new_host_keys)
    try:
        try:
            env = require_credentials(config, executor)
        except RedisError as exc:
            fail(str(exc))
            return
    finally:
        executor.close()
    click.echo(f"warning: the {service} password follows; it opens Redis to anyone on an app host", err=True)
    for name, value in env.items():
        click.echo(f"{name}={value}")


COMMANDS: list[click.Command] = [services_group]
