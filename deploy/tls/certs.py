"""The order of HTTPS setup over every host: HTTP site, ACME account, certbot, then the HTTPS site.

`deploy setup` and `deploy certs` call `install_certificates`. It decides; the executor runs; the steps
come from `deploy.tls.steps`. For ACME: each host without a certificate first serves the HTTP-only site (the
challenge path is live), certbot's webroot, renewal hook and timer are prepared everywhere, the ACME
account is registered on the first host and shared with the others together with the stateless
challenge answer, each host obtains its own certificate, and only then is the HTTPS site installed.
With the user's own certificate: upload it beside its place, then the HTTPS site, which puts it in place in
the same Nginx change (a change Nginx rejects puts the previous pair back). No manual step in between.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploy.config.model import Config
from deploy.layout import account_dir
from deploy.plan import Command, Step
from deploy.remote.executor import ConnectError, Executor, each
from deploy.remote.facts import HostFacts
from deploy.render.render import render
from deploy.tls import steps as tls
from deploy.tls.steps import TLSFiles

#: Renders the site for a host given its facts: `render(config, facts, project_dir)`.
Render = Callable[[HostFacts], Mapping[str, str]]
Say = Callable[[str], None]


@dataclass
class CertsOutcome:
    """What happened on each host: None for success, else the reason it failed."""

    results: dict[str, str | None] = field(default_factory=dict)
    #: Hosts that already had their certificate before this run.
    had_certificate: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(reason is None for reason in self.results.values())

    def failed(self) -> dict[str, str]:
        return {host: reason for host, reason in self.results.items() if reason is not None}


class CertsError(Exception):
    """HTTPS setup stopped; the message names the host and the step."""


def _reason(step: str, output: str, failed: str | None, code: int) -> str:
    tail = "\n".join(output.strip().splitlines()[-8:])
    return f"{step}: {failed or 'failed'} (exit {code})" + (f"\n{tail}" if tail else "")


def _run_on(
    executor: Executor,
    outcome: CertsOutcome,
    step_for: Callable[[str], Step],
    on: Sequence[str],
    parallel: bool,
) -> None:
    """Run `step_for(host)` on every host of `on`; CertsError naming each host whose step failed."""

    def one(host: str) -> None:
        step = step_for(host)
        result = executor.run_step(host, step)
        if not result.ok:
            raise CertsError(f"{host}: " + _reason(step.name, result.output, result.failed, result.exit_code))

    results = each(list(on), one, parallel)
    errors = {host: error for host, error in results.items() if isinstance(error, BaseException)}
    for host, error in errors.items():
        outcome.results[host] = str(error)
    if errors:
        raise CertsError("\n".join(str(e) for e in errors.values()))


def install_certificates(
    config: Config,
    executor: Executor,
    hosts: Sequence[str],
    files: tls.TLSFiles,
    facts: Mapping[str, HostFacts],
    render: Callable[[HostFacts], Mapping[str, str]],
    say: Say | None = None,
    parallel: bool = True,
) -> CertsOutcome:
    """Get every host serving HTTPS with a valid certificate; raise CertsError at the first failure.

    `facts` are each host's facts (nginx version, ...); `render(facts)` renders the site for them.
    """
    report = say or (lambda _message: None)
    outcome = CertsOutcome()
    settings = tls.tls_settings(config)
    if settings is None:
        report("tls is false: this app is served over plain HTTP; nothing to do")
        return outcome
    if not hosts:
        raise CertsError("server.hosts is empty: no host to set up")

    def run(step_for: Callable[[str], Step], on: Sequence[str]) -> None:
        _run_on(executor, outcome, step_for, on, parallel)

    def with_certificate(host: str, present: bool) -> HostFacts:
        return dataclasses.replace(facts.get(host, HostFacts()), has_certificate=present)

    if settings.acme:
        present = {}
        for host in hosts:
            code, _ = executor.run(host, tls.has_certificate_command(config), timeout=60)
            present[host] = code == 0
        outcome.had_certificate = [h for h in hosts if present[h]]
        # The site as it can be served now, with the current names on port 80: HTTP-only where the
        # certificate is missing (the challenge path goes live), HTTPS where it exists.
        report("Nginx site with the ACME challenge path on every host")
        run(
            lambda h: tls.site_step(
                config, h, render(with_certificate(h, present[h])), "tls: site before certbot"
            ),
            hosts,
        )
        report("certbot: webroot, renewal hook, systemd timer")
        run(lambda h: tls.acme_prepare_step(config, h, settings, files), hosts)
        first = hosts[0]
        server = tls.acme_server(settings)
        report(f"ACME account at {server} (registered once on {first}, shared with every host)")
        run(lambda h: tls.register_step(config, h, settings), [first])
        code, output = executor.run(first, tls.show_account_command(config, settings), timeout=60)
        if code != 0:
            raise CertsError(f"{first}: could not read certbot's ACME account (exit {code})")
        account = tls.parse_account(server, output)
        del output  # the account key: never printed, never kept longer than needed
        run(lambda h: tls.share_account_step(config, h, account), hosts)
        report(f"certbot certonly for {', '.join(config.server.domains)} on each host")
        run(lambda h: tls.obtain_step(config, h, settings, account), hosts)
    else:
        report("uploading your certificate and key (key mode 0600)")
        run(lambda h: tls.own_certificate_step(config, h, files), hosts)
    # An own pair goes in place with the site, in one change: one Nginx rejects puts the previous pair back.
    report("HTTPS site" if settings.acme else "HTTPS site, with that certificate and key")
    site = "tls: HTTPS site"
    run(lambda h: tls.site_step(config, h, render(with_certificate(h, True)), site, not settings.acme), hosts)
    for host in hosts:
        outcome.results[host] = None
    return outcome


def planned_steps(
    config: Config,
    hosts: Sequence[str],
    files: tls.TLSFiles,
    facts: Mapping[str, HostFacts],
    render: Callable[[HostFacts], Mapping[str, str]],
) -> list[Step]:
    """The steps `install_certificates` takes, in its order, for `deploy setup --dry-run` to show.

    The ACME account is not known before it is registered: sharing it shows as a plain step that
    names the files copied from the first host.
    """
    settings = tls.tls_settings(config)
    if settings is None or not hosts:
        return []

    def with_certificate(host: str, present: bool | None) -> HostFacts:
        return dataclasses.replace(facts.get(host, HostFacts()), has_certificate=present)

    steps: list[Step] = []
    if settings.acme:
        present = {h: bool(facts.get(h, HostFacts()).has_certificate) for h in hosts}
        steps += [
            tls.site_step(config, h, render(with_certificate(h, present[h])), "tls: site before certbot")
            for h in hosts
        ]
        steps += [tls.acme_prepare_step(config, h, settings, files) for h in hosts]
        steps.append(tls.register_step(config, hosts[0], settings))
        folder = account_dir(tls.acme_server(settings))
        steps += [
            Step(
                "tls: share the ACME account",
                h,
                (
                    Command(
                        ("true",),
                        f"copy meta.json, regr.json, private_key.json (0400) of the account in {folder} "
                        f"from {hosts[0]}",
                    ),
                ),
            )
            for h in hosts
        ]
        steps += [tls.obtain_step(config, h, settings, None) for h in hosts]
    else:
        steps += [tls.own_certificate_step(config, h, files) for h in hosts]
    own = not settings.acme
    steps += [
        tls.site_step(config, h, render(with_certificate(h, True)), "tls: HTTPS site", own) for h in hosts
    ]
    return steps


def https_on_hosts(
    config: Config,
    executor: Executor,
    facts: Mapping[str, HostFacts],
    files: TLSFiles,
    project: Path,
    say: Callable[[str], None],
) -> None:
    """Obtain or upload the certificates and serve HTTPS on `facts`' hosts; print days left on each.

    `deploy certs` and `deploy setup` (after the hosts are prepared) both end here. Raises CertsError naming
    the failing host and step when a step fails.
    """
    hosts = list(facts)
    try:
        install_certificates(
            config,
            executor,
            hosts,
            files,
            facts,
            lambda host_facts: render(config, host_facts, project),
            say=say,
        )
    except (CertsError, tls.TLSError, ConnectError) as exc:
        raise CertsError(f"HTTPS setup stopped: {exc}") from exc
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
