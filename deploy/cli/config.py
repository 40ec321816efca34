"""Commands that work on deploy.yaml alone: init, config, schema, render."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from deploy.cli.common import config_option, env_option, fail, handles_config_errors


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing deploy.yaml.")
@click.option("--domain", default=None, help="The domain the app is served on (default: a placeholder).")
@click.option("--host", "hosts", multiple=True, help="A server to deploy to (repeatable).")
@handles_config_errors
def init(directory: Path, force: bool, domain: str | None, hosts: tuple[str, ...]) -> None:
    """Inspect a Flask project and write a commented deploy.yaml for it.

    Finds the app (`app = Flask(...)` or a `create_app` factory), the requirements file, the
    static folder and the secrets the code reads from the environment. An ASGI app (Quart, FastAPI,
    Starlette) gets an ASGI worker, Flask-SocketIO its async worker (one per slot); Celery, RQ,
    rq-scheduler and an APScheduler script become processes (the scheduler a singleton; an RQ worker
    listens to the queues the code names), and so do a Procfile's lines besides web. Exit 2,
    writing nothing, when the app has no importable entry (only the project's own CLI registers its
    routes): the message names that code, and you write a wsgi.py that builds the app.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import load_text
    from deploy.project.init import inspect_project, write_deploy_yaml

    if not directory.is_dir():
        fail(f"{directory}: no such directory", 2)
    target = directory / "deploy.yaml"
    if target.exists() and not force:
        fail(f"{target} exists already; use --force to overwrite it", 2)
    found = inspect_project(directory)
    if found.wsgi is None and found.no_entry is not None:
        fail(
            f"{directory}: no importable WSGI entry: {found.no_entry}. Write a wsgi.py that builds the "
            "app the way that code does ('app = ...') and set app.wsgi: \"wsgi:app\" in deploy.yaml; "
            "'deploy schema' lists every key",
            2,
        )
    if found.wsgi is None:
        fail(
            f"{directory}: found no Flask app (an 'app = Flask(...)' or a 'create_app' factory); "
            "write deploy.yaml by hand: 'deploy schema' lists every key",
            2,
        )
    text = write_deploy_yaml(found, domain=domain, hosts=list(hosts))
    # What init writes must load: a bad --domain or --host is refused before anything is written.
    load_text(text, str(target))
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}")
    for note in found.notes:
        click.echo(f"  - {note}")
    click.echo("next: review it, then run 'deploy render' and 'deploy check'")


@click.command(name="config")
@config_option
@env_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@handles_config_errors
def show_config(config_path: str, environment: str | None, as_json: bool) -> None:
    """Print the effective configuration (environment overlaid, defaults filled in).

    Secret values never appear: deploy.yaml only names secrets, and each is shown as set (in the
    environment or in .env, and whether it is too weak to sign sessions) or missing.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    import yaml

    from deploy.config.loader import load, secret_status

    config = load(config_path, environment)
    data: dict[str, Any] = config.model_dump(mode="json", exclude={"environments"})
    data["app"]["secrets"] = {
        name: state for name, state in secret_status(config, Path(config_path).parent).items()
    }
    from deploy.config.loader import known_secrets
    from deploy.config.redact import redacting_output

    # A secret's value pasted into deploy.yaml (app.env, a hook) is shown by its name.
    with redacting_output(known_secrets(config, Path(config_path).parent)):
        if as_json:
            click.echo(json.dumps(data, indent=2, sort_keys=False))
        else:
            click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())


@click.command()
def schema() -> None:
    """Print the JSON Schema of deploy.yaml, for editors (yaml-language-server) and CI."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.model import Config

    document = Config.model_json_schema(mode="validation")
    document["properties"].pop("environment", None)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "deploy.yaml"
    click.echo(json.dumps(document, indent=2, sort_keys=True))


@click.command()
@config_option
@env_option
@click.option(
    "--out",
    "out_dir",
    default="deploy-out",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder to write the rendered files into.",
)
@click.option(
    "--cores",
    type=click.IntRange(1, 1024),
    default=None,
    help="The target host's cores (for workers: auto); default: decided on the host.",
)
@click.option("--nginx-version", default=None, help="The target's nginx version (default 1.22.1, Debian 12).")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the files instead of writing them.")
@handles_config_errors
def render(
    config_path: str,
    environment: str | None,
    out_dir: Path,
    cores: int | None,
    nginx_version: str | None,
    to_stdout: bool,
) -> None:
    """Render gunicorn.conf.py, the Nginx site, the systemd units (web, each process, and a service and a
    timer per scheduled job), the Dockerfile, .dockerignore and compose.yaml.

    The same deploy.yaml always renders byte-identical files. To change one template, print it with
    'deploy templates NAME', save it under the same name in a templates/ folder beside deploy.yaml,
    and edit it there.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import ConfigError, Problem, load
    from deploy.remote.facts import HostFacts
    from deploy.render.render import render as render_files

    if nginx_version is not None and not re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,6}){0,3}", nginx_version):
        raise ConfigError(
            [
                Problem(
                    "--nginx-version", None, (), f"expected a version such as 1.22.1, got {nginx_version!r}"
                )
            ]
        )
    if not to_stdout and out_dir.exists() and not out_dir.is_dir():
        fail(f"--out {out_dir}: this is a file, not a folder; name a folder (it is created if missing)", 2)
    config = load(config_path, environment)
    facts = HostFacts(cores=cores, nginx_version=nginx_version)
    files = render_files(config, facts, project_dir=Path(config_path).resolve().parent)
    if to_stdout:
        for path, text in files.items():
            click.echo(click.style(f"==> {path} <==", bold=True))
            click.echo(text, nl=False)
        return
    # A folder of render's own (new, empty, or marked before) keeps itself out of git, so that the
    # project's tree stays clean for 'deploy push' and the rendered files are never shipped.
    marker = out_dir / ".gitignore"
    own = not out_dir.exists() or not any(out_dir.iterdir()) or _is_ours(marker)
    for path, text in files.items():
        target = out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        click.echo(f"wrote {target}")
    if own:
        marker.write_text(GITIGNORE, encoding="utf-8")
    sys.stdout.flush()


#: The .gitignore render puts in a folder of its own: everything in it, itself included, is ignored.
GITIGNORE = "# Written by 'deploy render': this folder stays out of git and out of every push.\n*\n"


def _is_ours(marker: Path) -> bool:
    try:
        return marker.read_text(encoding="utf-8") == GITIGNORE
    except OSError:
        return False


@click.command()
@click.argument("name", required=False)
def templates(name: str | None) -> None:
    """List the shipped templates, or print one (to copy into your project's templates/ folder)."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    import importlib.resources

    shipped = importlib.resources.files("deploy.templates")
    names = sorted(p.name for p in shipped.iterdir() if p.name.endswith(".j2"))
    if name is None:
        for item in names:
            click.echo(item)
        return
    if name not in names:
        fail(f"no template {name!r}; shipped: {', '.join(names)}", 2)
    click.echo((shipped / name).read_text(encoding="utf-8"), nl=False)


COMMANDS: list[click.Command] = [init, show_config, schema, render, templates]
