"""HTTPS setup over hosts (deploy.certs): what it says, what it returns, and how it reports a failure,
checked exactly (benchmarks/mutation.py: certs and tls)."""

from __future__ import annotations

import pytest

from deploy import certs, tls
from deploy.executor import StepResult
from deploy.facts import HostFacts
from deploy.plan import Command, Step
from deploy.render import render
from tests.unit.test_tls import ACME, CA_FILES, PEBBLE, ScriptedHosts, config

pytestmark = pytest.mark.unit

HOSTS = ["10.0.0.1", "10.0.0.2"]


class Hosts(ScriptedHosts):
    """ScriptedHosts that records run() timeouts, can fail reading the account, and can fail one step
    with a given exit code and output."""

    def __init__(self, **kwargs: object) -> None:
        with_certificate = kwargs.pop("with_certificate", frozenset())
        super().__init__(with_certificate=with_certificate)  # type: ignore[arg-type]
        self.timeouts: list[float | None] = []
        self.account_code = 0
        self.step_failure: tuple[str, str, StepResult] | None = None

    def run(self, host: str, command: Command, timeout: float | None = None) -> tuple[int, str]:
        self.timeouts.append(timeout)
        code, output = super().run(host, command, timeout)
        if command.argv[0] == "python3" and self.account_code:
            return self.account_code, "private key material"
        return code, output

    def run_step(self, host: str, step: Step) -> StepResult:
        result = super().run_step(host, step)
        if self.step_failure and (host, step.name) == self.step_failure[:2]:
            return self.step_failure[2]
        return result


def _install(executor: Hosts, cfg_yaml: str = ACME, hosts: list[str] | None = None) -> tuple[
    certs.CertsOutcome, list[str]
]:
    cfg = config(cfg_yaml)
    said: list[str] = []
    files = CA_FILES if "acme_server" in cfg_yaml else tls.TLSFiles(cert=b"CERT", key=b"KEY")
    outcome = certs.install_certificates(
        cfg,
        executor,
        HOSTS if hosts is None else hosts,
        files,
        {h: HostFacts() for h in HOSTS},
        lambda f: render(cfg, f),
        say=said.append,
        parallel=False,
    )
    return outcome, said


def test_acme_setup_says_each_stage_and_reports_every_host_ok() -> None:
    executor = Hosts(with_certificate=frozenset({"10.0.0.2"}))
    outcome, said = _install(executor)
    assert said == [
        "Nginx site with the ACME challenge path on every host",
        "certbot: webroot, renewal hook, systemd timer",
        f"ACME account at {PEBBLE} (registered once on 10.0.0.1, shared with every host)",
        "certbot certonly for flaskr.example.com, www.flaskr.example.com on each host",
        "HTTPS site",
    ]
    assert outcome.results == {"10.0.0.1": None, "10.0.0.2": None}
    assert outcome.had_certificate == ["10.0.0.2"]
    assert outcome.ok and outcome.failed() == {}
    # Asking whether a certificate exists and reading the account: bounded, one minute each.
    assert executor.timeouts == [60, 60, 60]


def test_own_certificate_setup_says_so() -> None:
    outcome, said = _install(Hosts(), "{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    assert said == ["uploading your certificate and key (key mode 0600)", "HTTPS site"]
    assert outcome.ok and outcome.had_certificate == []


def test_tls_false_says_there_is_nothing_to_do() -> None:
    outcome, said = _install(Hosts(), "false")
    assert said == ["tls is false: this app is served over plain HTTP; nothing to do"]
    assert not outcome.ok and outcome.results == {}


def test_no_host_is_an_error_not_an_empty_success() -> None:
    with pytest.raises(certs.CertsError, match=r"^server\.hosts is empty: no host to set up$"):
        _install(Hosts(), hosts=[])


def test_an_unreadable_account_stops_with_its_exit_code_and_never_its_output() -> None:
    executor = Hosts()
    executor.account_code = 3
    with pytest.raises(certs.CertsError) as raised:
        _install(executor)
    assert str(raised.value) == "10.0.0.1: could not read certbot's ACME account (exit 3)"
    assert not any(step == "tls: share the ACME account" for _, step, _ in executor.log)


def test_a_failed_step_names_host_step_command_exit_code_and_the_last_eight_lines() -> None:
    executor = Hosts()
    output = "\n".join(f"line {i}" for i in range(1, 11)) + "\n\n"
    executor.step_failure = (
        "10.0.0.2",
        "tls: certificate",
        StepResult("10.0.0.2", "tls: certificate", False, 0.0, output, "certbot certonly", 7),
    )
    with pytest.raises(certs.CertsError) as raised:
        _install(executor)
    tail = "\n".join(f"line {i}" for i in range(3, 11))
    assert str(raised.value) == f"10.0.0.2: tls: certificate: certbot certonly (exit 7)\n{tail}"
    assert not any(step == "tls: HTTPS site" for _, step, _ in executor.log)


def test_a_failed_step_without_a_command_or_output_says_failed() -> None:
    executor = Hosts()
    executor.step_failure = (
        "10.0.0.1",
        "tls: HTTPS site",
        StepResult("10.0.0.1", "tls: HTTPS site", False, 0.0, "  \n", None, 2),
    )
    with pytest.raises(certs.CertsError) as raised:
        _install(executor)
    assert str(raised.value) == "10.0.0.1: tls: HTTPS site: failed (exit 2)"


def test_the_outcome_lists_only_failed_hosts_and_is_not_ok_when_empty() -> None:
    outcome = certs.CertsOutcome({"a": None, "b": "no"})
    assert outcome.failed() == {"b": "no"}
    assert not outcome.ok
    assert not certs.CertsOutcome().ok
    assert certs.CertsOutcome({"a": None}).ok


def test_the_dry_run_plan_names_every_step_on_every_host_in_order() -> None:
    cfg = config(ACME)
    facts = {"10.0.0.2": HostFacts(has_certificate=True)}
    steps = certs.planned_steps(cfg, HOSTS, CA_FILES, facts, lambda f: render(cfg, f))
    assert [(s.name, s.host) for s in steps] == [
        ("tls: site before certbot", "10.0.0.1"),
        ("tls: site before certbot", "10.0.0.2"),
        ("tls: prepare certbot", "10.0.0.1"),
        ("tls: prepare certbot", "10.0.0.2"),
        ("tls: ACME account", "10.0.0.1"),
        ("tls: share the ACME account", "10.0.0.1"),
        ("tls: share the ACME account", "10.0.0.2"),
        ("tls: certificate", "10.0.0.1"),
        ("tls: certificate", "10.0.0.2"),
        ("tls: HTTPS site", "10.0.0.1"),
        ("tls: HTTPS site", "10.0.0.2"),
    ]
    share = steps[6].actions
    folder = tls.account_dir(PEBBLE)
    assert share == (
        Command(
            ("true",),
            f"copy meta.json, regr.json, private_key.json (0400) of the account in {folder} from 10.0.0.1",
        ),
    )
    assert steps[7] == tls.obtain_step(cfg, "10.0.0.1", tls.tls_settings(cfg), None)  # type: ignore[arg-type]


def test_the_dry_run_plan_is_empty_without_tls_or_hosts_and_short_with_an_own_certificate() -> None:
    cfg = config(ACME)
    assert certs.planned_steps(cfg, [], CA_FILES, {}, lambda f: render(cfg, f)) == []
    plain = config("false")
    assert certs.planned_steps(plain, HOSTS, CA_FILES, {}, lambda f: render(plain, f)) == []
    own = config("{cert: certs/fullchain.pem, key: certs/privkey.pem}")
    files = tls.TLSFiles(cert=b"CERT", key=b"KEY")
    steps = certs.planned_steps(own, HOSTS, files, {}, lambda f: render(own, f))
    assert [(s.name, s.host) for s in steps] == [
        ("tls: own certificate", "10.0.0.1"),
        ("tls: own certificate", "10.0.0.2"),
        ("tls: HTTPS site", "10.0.0.1"),
        ("tls: HTTPS site", "10.0.0.2"),
    ]
