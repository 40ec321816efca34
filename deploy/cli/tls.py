"""Commands of the `deploy` CLI for HTTPS: `deploy certs`."""

from __future__ import annotations

from pathlib import Path

import click

from deploy.cli.common import config_option, env_option, fail, handles_config_errors


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
    reloads Nginx. With tls.cert and tls.key: uploads them (key mode 0600) and puts them in place with
    the HTTPS site, in one Nginx change (one that nginx -t rejects puts the previous pair back). Safe
    to run again: a certificate far from expiry is kept.
    """
    # Imported here, not at the top: `deploy --help` stays fast.
    from deploy.config.loader import load
    from deploy.remote.executor import ConnectError, Event, SSHExecutor, host_name
    from deploy.remote.facts import FactError, parse_state, probe_command
    from deploy.tls import steps as tls
    from deploy.tls.certs import CertsError, https_on_hosts
    from deploy.tls.files import read_tls_files

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
        try:
            facts = {h: s.facts for h, s in states.items() if config.runs_web(h)}  # where Nginx serves
            https_on_hosts(config, executor, facts, files, project, click.echo)
        except CertsError as exc:
            fail(str(exc))
    finally:
        executor.close()


COMMANDS: list[click.Command] = [certs]
