"""Live checks on hand-made facts (a failing and a passing fixture each); tests/hosts runs them for real."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.checker.context import Context
from deploy.checker.live_probe import HostLive, LiveFacts, Response, SiteLive
from deploy.checker.registry import load_checks, select
from deploy.checker.results import Report
from deploy.checker.runner import run
from deploy.config.loader import load_text
from deploy.remote.facts import HostState
from tests.unit.checks.support import CONFIG, project

pytestmark = pytest.mark.unit

LIVE_CONFIG = CONFIG.replace(
    "  domains: [demo.example.com]\n", "  domains: [demo.example.com]\n  hosts: [10.0.0.1]\n"
)
GOOD_HEADERS = (
    ("server", "nginx"),
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("content-security-policy", "default-src 'self'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
)
ENV_FILE = "/etc/demo/env"
UNIT = "demo@blue.service"


def good_host() -> HostLive:
    state = HostState(
        host="10.0.0.1",
        cores=2,
        nginx_ok=True,
        links={"live": "/run/demo/blue.sock"},
        services={UNIT: "active", "demo@green.service": "inactive"},
        owners={ENV_FILE: {"owner": "root", "group": "demo", "mode": 0o600, "kind": "file"}},
        files={"/etc/nginx/sites-available/demo.conf": "server {}\n"},
    )
    return HostLive(
        "10.0.0.1",
        state,
        workers={UNIT: 5, "demo@green.service": None},
        certbot_timer="active",
        disk_free=20 * 1024**3,
        disk_total=40 * 1024**3,
        rendered={"nginx/demo.conf": ("/etc/nginx/sites-available/demo.conf", "server {}\n")},
    )


def good_site() -> SiteLive:
    ok = Response(
        200, (*GOOD_HEADERS, ("set-cookie", "session=abc; Secure; HttpOnly; Path=/; SameSite=Lax")), "ok"
    )
    return SiteLive(
        "10.0.0.1",
        "demo.example.com",
        True,
        http_root=Response(301, (("location", "https://demo.example.com/"),)),
        root=ok,
        health=Response(200, GOOD_HEADERS, '{"status": "ok"}'),
        console=Response(404, GOOD_HEADERS, "Not Found"),
        debugger=Response(200, GOOD_HEADERS, "<html>the app's index page</html>"),
        tls_version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        cert_days_left=80,
    )


def live_run(root: Path, ids: list[str], host: HostLive, site: SiteLive, config: str = LIVE_CONFIG) -> Report:
    cfg = load_text(config, "deploy.yaml", None)
    facts = LiveFacts((host,), (site,))
    ctx = Context(root=root, config=cfg, live=True, environment="production", live_probe=lambda *_: facts)
    return run(select(load_checks(plugins=False), ids), ctx)


def state(host: HostLive, **changes: object) -> HostLive:
    assert host.state is not None
    return replace(host, state=replace(host.state, **changes))  # type: ignore[arg-type]


Breaker = Callable[[HostLive, SiteLive], tuple[HostLive, SiteLive]]

CASES: dict[str, tuple[Breaker, str]] = {
    "LIVE001": (lambda h, s: (state(h, services={UNIT: "failed"}), s), "demo@blue.service is failed"),
    "LIVE002": (lambda h, s: (replace(h, workers={UNIT: 1}), s), "1 workers run; 2 cores want 5"),
    "LIVE003": (lambda h, s: (state(h, nginx_ok=False), s), "nginx -t reports an invalid configuration"),
    "LIVE004": (
        lambda h, s: (state(h, files={"/etc/nginx/sites-available/demo.conf": "server { hand edit }\n"}), s),
        "/etc/nginx/sites-available/demo.conf differs from the rendered nginx/demo.conf",
    ),
    "LIVE005": (lambda h, s: (replace(h, certbot_timer="inactive"), s), "certbot.timer is inactive"),
    "LIVE006": (
        lambda h, s: (state(h, owners={ENV_FILE: {"owner": "root", "group": "demo", "mode": 0o644}}), s),
        "/etc/demo/env has mode 0644",
    ),
    "LIVE007": (lambda h, s: (replace(h, disk_free=300 * 1024**2), s), "300 MiB free (1%)"),
    "LIVE008": (
        lambda h, s: (h, replace(s, http_root=Response(200, GOOD_HEADERS, "hi"))),
        "http:// answered 200",
    ),
    "LIVE009": (
        lambda h, s: (h, replace(s, root=Response(200, GOOD_HEADERS[2:]))),
        "no Strict-Transport-Security",
    ),
    "LIVE010": (
        lambda h, s: (h, replace(s, health=Response(200, GOOD_HEADERS[:2]))),
        "health (200) lacks content-security-policy, x-content-type-options, x-frame-options, "
        "referrer-policy",
    ),
    "LIVE011": (
        lambda h, s: (
            h,
            replace(s, root=Response(200, (*GOOD_HEADERS, ("set-cookie", "session=x; Path=/")))),
        ),
        "session without Secure",
    ),
    "LIVE012": (lambda h, s: (h, replace(s, health=Response(502, GOOD_HEADERS))), "/health answered 502"),
    "LIVE013": (
        lambda h, s: (
            h,
            replace(s, console=Response(200, (), "<title>Console // Werkzeug Debugger</title>")),
        ),
        "/console serves the Werkzeug debugger",
    ),
    "LIVE014": (
        lambda h, s: (h, replace(s, root=Response(200, (("server", "nginx/1.22.1"), *GOOD_HEADERS[1:])))),
        "Server: nginx/1.22.1",
    ),
    "LIVE015": (lambda h, s: (h, replace(s, old_protocols=("TLSv1", "TLSv1.1"))), "accepts TLSv1, TLSv1.1"),
    "LIVE016": (lambda h, s: (h, replace(s, cert_days_left=5)), "the certificate expires in 5 days"),
}


@pytest.mark.parametrize("check_id", sorted(CASES))
def test_live_failing_fixture(tmp_path: Path, check_id: str) -> None:
    breaker, message = CASES[check_id]
    host, site = breaker(good_host(), good_site())
    report = live_run(project(tmp_path), [check_id], host, site)
    assert report.skipped == []
    messages = [r.finding.message for r in report.active if r.check.id == check_id]
    assert message in " ".join(messages), messages
    assert all(r.finding.host for r in report.active)


@pytest.mark.parametrize("check_id", sorted(CASES))
def test_live_passing_fixture(tmp_path: Path, check_id: str) -> None:
    report = live_run(project(tmp_path), [check_id], good_host(), good_site())
    assert report.skipped == [] and report.active == []


def test_every_live_check_has_cases() -> None:
    live = {c.id for c in load_checks(plugins=False) if any(layer.value == "live" for layer in c.layers)}
    assert live == set(CASES)


def test_unreachable_host_is_a_finding_and_skips_nothing_else(tmp_path: Path) -> None:
    report = live_run(
        project(tmp_path),
        ["LIVE001", "LIVE003"],
        HostLive("10.0.0.1", error="cannot connect to port 22"),
        good_site(),
    )
    assert [(r.check.id, r.finding.message) for r in report.active] == [
        ("LIVE001", "cannot gather facts: cannot connect to port 22")
    ]


def test_https_checks_skip_when_tls_is_off(tmp_path: Path) -> None:
    config = LIVE_CONFIG.replace("  tls: {email: ops@example.com}\n", "")
    report = live_run(project(tmp_path), ["LIVE008", "LIVE015", "LIVE005"], good_host(), good_site(), config)
    assert {c.id: reason for c, reason in report.skipped} == {
        "LIVE008": "server.tls is off (SEC004)",
        "LIVE015": "server.tls is off (SEC004)",
        "LIVE005": "no ACME certificates (server.tls is off or uses your own certificate)",
    }


def test_without_live_the_live_checks_are_skipped(tmp_path: Path) -> None:
    ctx = Context(root=project(tmp_path), config=load_text(LIVE_CONFIG))
    report = run(select(load_checks(plugins=False), ["LIVE"]), ctx)
    assert report.passed == [] and len(report.skipped) == len(CASES)
    assert all("--live -e ENV" in reason for _, reason in report.skipped)


def test_live006_flags_an_env_file_the_app_user_owns(tmp_path: Path) -> None:
    """Mode 0600 is not enough: the app's user owning the file can rewrite what systemd reads as root."""
    host = state(good_host(), owners={ENV_FILE: {"owner": "demo", "group": "demo", "mode": 0o600}})
    report = live_run(project(tmp_path), ["LIVE006"], host, good_site())
    assert [r.finding.message for r in report.active] == [
        f"{ENV_FILE} belongs to demo, who can rewrite what systemd reads as root"
    ]


def test_a_worker_only_host_is_not_expected_to_run_gunicorn_nginx_or_certbot(tmp_path: Path) -> None:
    """A host whose roles leave out web: no web unit, no worker count, no certbot timer expected."""
    config = LIVE_CONFIG.replace("  hosts: [10.0.0.1]\n", "  hosts: [{address: 10.0.0.1, roles: [worker]}]\n")
    host = state(good_host(), services={UNIT: "inactive"})
    host = replace(host, workers={UNIT: None}, certbot_timer=None)
    ids = ["LIVE001", "LIVE002", "LIVE005"]
    assert live_run(project(tmp_path), ids, host, good_site(), config).active == []
    # The same host with the web role: each is a finding.
    found = live_run(project(tmp_path), ids, replace(host, workers={UNIT: 3}), good_site())
    assert sorted(r.check.id for r in found.active) == ids
