"""The `deploy` command line: parsing and printing only; the work happens in the modules it calls."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from deploy import __version__
from deploy.loader import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error to stderr and exit with `code` (2: usage or configuration)."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def handles_config_errors(func: F) -> F:
    """Turn a ConfigError into one line per problem on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(click.style("error: ", fg="red", bold=True) + str(problem), err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    default="deploy.yaml",
    show_default=True,
    metavar="FILE",
    help="The deploy.yaml to read.",
)
env_option = click.option(
    "-e",
    "--env",
    "environment",
    default=None,
    metavar="ENV",
    help="Overlay this entry of environments: (or 'sandbox' after 'deploy sandbox up').",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="deploy")
def main() -> None:
    """Take a Python web app from your laptop to production servers, and keep it honest there.

    One deploy.yaml describes the app and where it runs. Start with 'deploy init' in a Flask
    project, then 'deploy render' and 'deploy check'.
    """


def _register() -> None:
    from deploy import cli_check, cli_config, cli_push, cli_sandbox, cli_tls

    for module in (cli_config, cli_check, cli_sandbox, cli_push, cli_tls):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
