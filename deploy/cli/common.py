"""What every command module of the CLI shares: the error boundary, the common options, `fail`."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from deploy.config.errors import ConfigError, one_line

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error to stderr and exit with `code` (2: usage or configuration)."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def _config_error(exc: ConfigError) -> NoReturn:
    for problem in exc.problems:
        click.echo(click.style("error: ", fg="red", bold=True) + str(problem), err=True)
    sys.exit(2)


def handles_config_errors(func: F) -> F:
    """Turn a ConfigError into one line per problem on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _config_error(exc)

    return wrapper  # type: ignore[return-value]


def _expected_error(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code of an error that bad input or the machine causes (not a
    bug in deploy): a file that cannot be read or written, text that is not UTF-8, YAML or a
    template that does not parse, a host that cannot be reached. None for anything else."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    import jinja2
    import yaml

    from deploy.remote.executor import ConnectError

    if isinstance(exc, OSError) and exc.filename is not None:
        files = ", ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        return f"{files}: {exc.strerror or exc}", 2
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8", 2
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return f"a number has more than {sys.get_int_max_str_digits()} digits", 2
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}:{mark.line + 1}: " if mark is not None else ""
        return f"{where}this is not valid YAML: {getattr(exc, 'problem', None) or exc}", 2
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or exc.name}:{exc.lineno}: template error: {exc.message}", 2
    if isinstance(exc, jinja2.TemplateError):
        return f"template error: {exc.message or type(exc).__name__}", 2
    if isinstance(exc, ConnectError | OSError):
        return str(exc) or type(exc).__name__, 1
    return None


class Main(click.Group):
    """The top-level group: the one error boundary of every command. Expected errors end in one
    line on stderr (exit 2 for input, 1 for an unreachable host); a bug still shows its traceback,
    followed by a line saying it is one."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _config_error(exc)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            raise  # stdout closed early (| head): click ends quietly
        except Exception as exc:
            expected = _expected_error(exc)
            if expected is None:
                traceback.print_exc()
                name = type(exc).__name__
                fail(f"this is a bug in deploy ({name}); please report it with the traceback above")
            else:
                fail(one_line(expected[0]), expected[1])


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
