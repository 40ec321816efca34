"""Commands of the `deploy` CLI for HTTPS: `deploy certs`; also reads the local files `tls` names."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from deploy.cli.common import config_option, env_option, fail, handles_config_errors
from deploy.config.loader import ConfigError, KeyPath, Problem, line_of, load, read_bytes
from deploy.config.model import Config

if TYPE_CHECKING:
    from deploy.remote.executor import Executor
    from deploy.remote.facts import HostFacts
    from deploy.tls.steps import TLSFiles


def _line_of(config_path: Path, environment: str | None, key: str) -> tuple[int | None, KeyPath]:
    """The line where `server.tls.<key>` is written (in the environment's overlay if it is there)."""
    return line_of(config_path, environment, ("server", "tls", key))


def read_tls_files(config: Config, config_path: str | Path) -> TLSFiles:
    """Read the files `tls.cert`, `tls.key` and `tls.ca_bundle` name (relative to deploy.yaml's folder).

    A missing or unusable file is a ConfigError naming the file, line and key (exit code 2).
    """
    from deploy.tls import steps as tls

    settings = tls.tls_settings(config)
    if settings is None:
        return tls.TLSFiles()
    config_file = Path(config_path)
    project = config_file.resolve().parent
    problems: list[Problem] = []
    contents: dict[str, bytes | None] = {"cert": None, "key": None, "ca_bundle": None}
    for key in contents:
        name = getattr(settings, key)
        if name is None:
            continue
        # os.path's expanduser leaves '~nobody-known/x' as it is (pathlib's raised RuntimeError).
        file = Path(os.path.expanduser(name))
        file = file if file.is_absolute() else project / file
        try:
            data = read_bytes(file)
        except ConfigError as exc:
            line, path = _line_of(config_file, config.environment, key)
            why = exc.problems[0].message.removeprefix("cannot read this file: ")
            problems.append(Problem(str(config_file), line, path, f"cannot read {file}: {why}"))
            continue
        if key != "key" and b"-----BEGIN CERTIFICATE-----" not in data:
            line, path = _line_of(config_file, config.environment, key)
            problems.append(Problem(str(config_file), line, path, f"{file} holds no PEM certificate"))
        contents[key] = data
    if problems:
        raise ConfigError(problems)
    files = tls.TLSFiles(cert=contents["cert"], key=contents["key"], ca_bundle=contents["ca_bundle"])
    if files.cert is not None and files.key is not None:
        found = tls.check_own_certificate(config, files, datetime.datetime.now(datetime.UTC))
        if found:
            line, path = _line_of(config_file, config.environment, "cert")
            raise ConfigError([Problem(str(config_file), line, path, message) for message in found])
    return files


def https_on_hosts(
    config: Config,
    executor: Executor,
    facts: Mapping[str, HostFacts],
    files: TLSFiles,
    project: Path,
    say: Callable[[str], None],
) -> None:
    """Obtain or upload the certificates and serve HTTPS on `facts`' hosts; print days left on each.

    `deploy certs` and `deploy setup` (after the hosts are prepared) both end here. Exits 1 with the
    failing host and step when a step fails.
    """
    from deploy.remote.executor import ConnectError
    from deploy.render.render import render
    from deploy.tls import certs as certs_flow
    from deploy.tls import steps as tls

    hosts = list(facts)
    try:
        certs_flow.install_certificates(
            config,
            executor,
            hosts,
            files,
            facts,
            lambda host_facts: render(config, host_facts, project),
            say=say,
        )
    except (certs_flow.CertsError, tls.TLSError, ConnectError) as exc:
        fail(f"HTTPS setup stopped: {exc}")
    if tls.tls_settings(config) is None:
        return
    now = datetime.datetime.now(datetime.UTC)
    cert_path, _ = tls.certificate_files(config)
    for host in hosts:
        code, pem = executor.run(host, tls.read_certificate_command(config), timeout=30)
        if code == 0:
            days = tls.certificate_days_left(pem.encode(), now)
            say(f"{host}: serving {cert_path}, valid for {days} more days")
    say(f"HTTPS is set up for {', '.join(config.server.domains)} on {len(hosts)} host(s).")


@click.command()
@config_option
@env_option
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust hosts seen for the first time and add their keys to known_hosts.",
)
@handles_config_errors
def certs(config_path: str, environment: str | None, accept_new_host_keys: bool) -> None:
    """Obtain or upload the TLS certificates and serve HTTPS on every host.

    With tls.email: certbot certonly --webroot against the ACME server (Let's Encrypt unless
    tls.acme_server says otherwise) on each host, the HTTP site with the challenge path first, the
    HTTPS site once the certificate exists, renewal by certbot's systemd timer with a hook that
    reloads Nginx. With tls.cert and tls.key: uploads them (key mode 0600). Safe to run again: a
    certificate far from expiry is kept.
    """
    from deploy.remote.executor import ConnectError, Event, SSHExecutor, host_name
    from deploy.remote.facts import FactError, parse_state, probe_command
    from deploy.tls import steps as tls

    config = load(config_path, environment)
    if tls.tls_settings(config) is None:
        click.echo("tls is false in deploy.yaml: the site is served over plain HTTP; no certificate to get.")
        return
    if not config.server.hosts:
        fail(
            "server.hosts is empty: nothing to set up (use -e ENV, or -e sandbox after 'deploy sandbox up')",
            2,
        )
    files = read_tls_files(config, config_path)
    project = Path(config_path).resolve().parent

    def show(event: Event) -> None:
        if event.status == "start":
            return
        mark = click.style("ok", fg="green") if event.status == "ok" else click.style("FAILED", fg="red")
        seconds = f" ({event.seconds:.1f}s)" if event.seconds is not None else ""
        click.echo(f"  {event.host}: {event.step} {mark}{seconds}")

    executor = SSHExecutor(
        config, config.server.hosts, accept_new_host_keys=accept_new_host_keys, on_event=show
    )
    try:
        try:
            hosts = [host_name(h) for h in config.server.hosts]
            states = {h: parse_state(h, executor.gather(h, probe_command(config))) for h in hosts}
        except (ConnectError, FactError) as exc:
            fail(str(exc))
            return
        https_on_hosts(config, executor, {h: s.facts for h, s in states.items()}, files, project, click.echo)
    finally:
        executor.close()


COMMANDS: list[click.Command] = [certs]
