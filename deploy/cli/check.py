"""Commands of the `deploy` CLI for checking a deployment: `deploy check` and `deploy explain ID`."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from deploy.cli.common import config_option, env_option, fail, handles_config_errors

if TYPE_CHECKING:
    from deploy.checker.registry import Check
    from deploy.config.model import Config

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def _split(values: tuple[str, ...]) -> list[str]:
    return [part for value in values for part in value.split(",") if part.strip()]


@click.command("check")
@click.argument("path", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@config_option
@env_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "junit", "github"]),
    default="text",
    show_default=True,
    help="Output for people (text) or machines.",
)
@click.option(
    "--fail-on",
    default="medium",
    show_default=True,
    metavar="SEVERITY",
    help="Exit 1 when a finding at or above this severity remains: low, medium, high, critical.",
)
@click.option(
    "--import",
    "import_app",
    is_flag=True,
    help="Also import the app factory in a subprocess under the production environment (runs your code).",
)
@click.option(
    "--app",
    "app_spec",
    metavar="MODULE:APP",
    help="The app to import without deploy.yaml (pkg:create_app()).",
)
@click.option(
    "--python",
    "python",
    metavar="PATH",
    help="The interpreter for --import (the project's virtualenv); default: PATH/.venv or PATH/venv if "
    "present, else the activated virtualenv ($VIRTUAL_ENV), else deploy's own.",
)
@click.option(
    "--live", is_flag=True, help="Also check the hosts over SSH and the site over HTTPS (needs -e ENV)."
)
@click.option("--list", "list_checks", is_flag=True, help="List every check and exit.")
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE instead of standard output.",
)
@click.option(
    "--select",
    multiple=True,
    metavar="IDS",
    help="Run only these checks (ids, id prefixes or areas; repeatable).",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="IDS",
    help="Skip these checks (ids, id prefixes or areas; repeatable).",
)
@click.option(
    "--suppressions", metavar="FILE", help="The suppressions file (default: deploy-check.yaml in PATH)."
)
@click.option(
    "--no-plugins", is_flag=True, help="Run only the built-in checks (no entry points, no deploy_checks/)."
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also list suppressed findings and each skipped check with its reason.",
)
@click.pass_context
@handles_config_errors
def check(
    click_ctx: click.Context,
    path: Path,
    config_path: str,
    environment: str | None,
    fmt: str,
    fail_on: str,
    import_app: bool,
    app_spec: str | None,
    python: str | None,
    live: bool,
    list_checks: bool,
    output: Path | None,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    suppressions: str | None,
    no_plugins: bool,
    verbose: bool,
) -> None:
    """Check a Flask project against the production checklist: code, files, deploy.yaml, rendered configs.

    PATH is the project (default: the folder of -c FILE when given, else the current folder).
    Works without deploy.yaml (static checks only) and names every check it skipped and why.
    Exit 0 when nothing at or above --fail-on was found, 1 when something was, 2 for usage errors.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.checker import formats as checkfmt
    from deploy.checker import suppress
    from deploy.checker.context import Context
    from deploy.checker.layers import Severity
    from deploy.checker.registry import RegistryError, load_checks
    from deploy.checker.registry import select as select_checks
    from deploy.checker.runner import run

    try:
        threshold = Severity.parse(fail_on)
    except ValueError as exc:
        fail(f"--fail-on: {exc}", EXIT_USAGE)
        return
    explicit = click_ctx.get_parameter_source("config_path") is not click.core.ParameterSource.DEFAULT
    root = _project_root(click_ctx, path, config_path, explicit)
    try:
        checks = load_checks(root, plugins=not no_plugins)
    except RegistryError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    _refuse_bad_options(checks, select, ignore, import_app, app_spec, python)
    checks = select_checks(checks, _split(select), _split(ignore))
    if list_checks:
        _emit(checkfmt.listing(checks, "json" if fmt == "json" else "text"), output)
        return
    if live and not environment:
        fail("--live needs -e ENV: the environment whose hosts and site to visit", EXIT_USAGE)
    # An explicit -c is a path from the current folder, as in every command; the default is the project's.
    config_file = Path(config_path).absolute() if explicit else root / config_path
    config = _config(config_file, explicit, environment, live)
    resolved = config_file.resolve()
    shown = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(config_file)
    ctx = Context(
        root=root,
        config=config,
        config_file=shown,
        import_app=import_app,
        app_spec=app_spec,
        python=python,
        live=live,
        environment=environment,
    )
    report = run(checks, ctx, suppress.load(root, suppressions))
    cwd = Path.cwd().resolve()
    if root.is_relative_to(cwd):
        # CI runs from the repository's root: SARIF and annotations name files from there.
        report.base = str(cwd)
        report.prefix = "" if root == cwd else root.relative_to(cwd).as_posix() + "/"
    colour = fmt == "text" and output is None and sys.stdout.isatty()
    _emit(checkfmt.render(report, fmt, threshold, colour=colour, verbose=verbose), output)
    sys.exit(EXIT_FINDINGS if report.failing(threshold) else EXIT_CLEAN)


def _refuse_bad_options(
    checks: list[Check],
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    import_app: bool,
    app_spec: str | None,
    python: str | None,
) -> None:
    """Exit 2 on a --select/--ignore that names no check, or --app/--python without a usable --import."""
    for option, values in (("--select", select), ("--ignore", ignore)):
        unknown = _unknown_ids(checks, _split(values))
        if unknown:
            fail(f"{option}: {unknown}", EXIT_USAGE)
    if (app_spec or python) and not import_app:
        fail(f"{'--app' if app_spec else '--python'} is only used with --import", EXIT_USAGE)
    if python and not Path(python).is_file():
        fail(f"--python {python}: no such file", EXIT_USAGE)


def _project_root(click_ctx: click.Context, path: Path, config_path: str, explicit: bool) -> Path:
    """The project checked: PATH, or the folder of -c FILE when only that is given."""
    path_given = click_ctx.get_parameter_source("path") is not click.core.ParameterSource.DEFAULT
    if explicit and not path_given and Path(config_path).absolute().parent.is_dir():
        # `-c ../p/deploy.yaml` alone checks the project of that deploy.yaml, as every other command does.
        path = Path(config_path).absolute().parent
    return path.resolve()


def _config(config_file: Path, explicit: bool, environment: str | None, live: bool) -> Config | None:
    """The deploy.yaml checked, if there is one (an explicit -c must exist); --live refuses placeholders."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import load

    config = None
    if config_file.is_file() or explicit:
        # What app.static.dir holds is reported by SEC022 (with its line), not refused at load.
        config = load(config_file, environment, project_files=False)
    elif environment:
        fail(f"-e {environment}: there is no {config_file} to take the environment from", EXIT_USAGE)
    if live and config is not None:
        from deploy.checker.live_probe import placeholder_hosts, placeholder_message

        placeholders = placeholder_hosts(config)
        if placeholders:
            fail(f"--live: {placeholder_message(placeholders, environment)}", EXIT_USAGE)
    return config


def _unknown_ids(checks: list[Check], patterns: list[str]) -> str | None:
    """A message for the first pattern that names no check, id prefix or area; None if all do."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.checker.registry import AREAS

    ids = [c.id for c in checks]
    for raw in patterns:
        pattern = raw.strip().upper()
        if pattern.lower() in AREAS or any(i.startswith(pattern) for i in ids):
            continue
        hint = difflib.get_close_matches(pattern, ids, n=3)
        return f"unknown check id {raw.strip()}" + (
            f"; did you mean {', '.join(hint)}?" if hint else "; see 'deploy check --list'"
        )
    return None


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}", EXIT_USAGE)


@click.command("explain")
@click.argument("check_id", metavar="ID")
def explain(check_id: str) -> None:
    """Print the documentation page of one check: why it matters, how to fix it, references."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.checker.registry import RegistryError, load_checks

    try:
        checks = {c.id: c for c in load_checks(Path.cwd())}
    except RegistryError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    found = checks.get(check_id.strip().upper())
    if found is None:
        hint = difflib.get_close_matches(check_id.upper(), list(checks), n=1)
        fail(
            f"no check {check_id!r}"
            + (f"; did you mean {hint[0]}?" if hint else "; see 'deploy check --list'"),
            EXIT_USAGE,
        )
        return
    click.echo(found.doc().rstrip("\n"))


COMMANDS: list[click.Command] = [check, explain]
