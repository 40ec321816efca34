"""HTTPS end to end on two sandbox hosts against a real ACME server (pebble), graded by sslyze and the
MDN HTTP Observatory.

The test name resolves (for pebble, through pebble-challtestsrv) to the SECOND host, while every host
runs certbot: the first host's challenges are answered by the second one, which is the several-hosts-
behind-one-name case. Pebble really validates every challenge (no always-valid mode, no authz reuse).
"""

from __future__ import annotations

import datetime
import json
import time

import pytest

from deploy.tls import steps as tls

from . import https_graders as graders
from .https_site import NAMES, Site

pytestmark = pytest.mark.hosts


def test_setup_obtains_a_certificate_that_every_host_serves(site: Site, issued: str) -> None:
    assert "HTTPS is set up for flaskr.test, www.flaskr.test on 2 host(s)." in issued
    now = datetime.datetime.now(datetime.UTC)
    for host in site.hosts:
        assert (
            f"{host.address}: serving /etc/letsencrypt/live/flaskr.test/fullchain.pem, valid for 89 more days"
            in issued
        )
        for name in NAMES:
            der = graders.served_certificate(
                name, host.address, site.pebble.root_file
            )  # verifies chain + name
            assert 88 <= tls.certificate_days_left(der, now) <= 90
    # Every challenge was validated on host 2, where the names point, also those host 1 asked for.
    answered = [
        int(site.ssh(h, "cat /var/log/nginx/*access.log | grep -c Pebble-VA || true").stdout.strip() or 0)
        for h in site.hosts
    ]
    assert answered[0] == 0
    assert answered[1] >= 2 * len(NAMES)  # two hosts' orders, one authorization per name each


def test_the_challenge_is_really_validated(site: Site, issued: str) -> None:
    """A name that resolves where no host answers gets no certificate."""
    site.pebble.point("nowhere.flaskr.test", site.hosts[0].gateway)  # this machine: nothing on port 80
    out = site.ssh(
        site.hosts[0],
        "REQUESTS_CA_BUNDLE=/etc/flaskr/tls/acme-ca.pem certbot certonly --webroot "
        f"-w /var/lib/deploy/acme -d nowhere.flaskr.test --server {site.pebble.directory} "
        "--non-interactive --agree-tos --email ops@flaskr.test --cert-name nowhere",
        check=False,
    )
    assert out.returncode != 0
    assert "nowhere.flaskr.test" in out.stdout + out.stderr
    assert "Some challenges have failed" in out.stdout + out.stderr


def test_deploy_certs_again_keeps_the_certificate(site: Site, issued: str) -> None:
    before = [graders.served_certificate(NAMES[0], h.address, site.pebble.root_file) for h in site.hosts]
    out = site.deploy("certs")
    after = [graders.served_certificate(NAMES[0], h.address, site.pebble.root_file) for h in site.hosts]
    assert before == after
    assert "HTTPS is set up" in out.stdout


def test_renewal_is_in_place(site: Site, issued: str) -> None:
    for host in site.hosts:
        out = site.ssh(
            host,
            "systemctl is-enabled certbot.timer; systemctl is-active certbot.timer; "
            "stat -c '%a %U' /etc/letsencrypt/renewal-hooks/deploy/flaskr-nginx-reload; "
            "grep -E '^(authenticator|server|account) ' /etc/letsencrypt/renewal/flaskr.test.conf",
        )
        lines = out.stdout.splitlines()
        assert lines[:3] == ["enabled", "active", "755 root"]
        assert "authenticator = webroot" in lines
        assert f"server = {site.pebble.directory}" in lines
    # What the timer starts: certbot.service trusts the ACME server (drop-in) and renews nothing yet,
    # so the deploy hook does not run and Nginx is not reloaded.
    host = site.hosts[0]
    pid_before = site.ssh(
        host, "systemctl show -p ExecMainPID --value nginx; pgrep -d, -P $(cat /run/nginx.pid)"
    ).stdout
    site.ssh(host, "systemctl start certbot.service")
    log = site.ssh(host, "journalctl -u certbot.service --no-pager -o cat | tail -20").stdout
    assert "Failed" not in log
    pid_after = site.ssh(
        host, "systemctl show -p ExecMainPID --value nginx; pgrep -d, -P $(cat /run/nginx.pid)"
    ).stdout
    assert pid_before == pid_after  # same workers: no reload without a renewal


def test_forced_renewal_reloads_nginx_and_drops_no_request(site: Site, app_deployed: None) -> None:
    host = site.hosts[0]
    before = graders.served_certificate(NAMES[0], host.address, site.pebble.root_file)
    with graders.HttpsLoad(
        NAMES[0], host.address, site.pebble.root_file, path="/health", workers=4, max_seconds=120
    ) as load:
        load.wait_for(100)
        started = time.monotonic()
        out = site.ssh(
            host,
            "REQUESTS_CA_BUNDLE=/etc/flaskr/tls/acme-ca.pem certbot renew --force-renewal "
            "--no-random-sleep-on-renew 2>&1",
        )
        renewal_seconds = time.monotonic() - started
        count = load.result.ok + load.result.failed
        load.wait_for(count + 200)
    result = load.result
    print(f"forced renewal in {renewal_seconds:.1f}s under load: {result.summary()}")
    assert "Congratulations, all renewals succeeded" in out.stdout
    after = graders.served_certificate(NAMES[0], host.address, site.pebble.root_file)
    assert after != before, "Nginx still serves the old certificate: the deploy hook did not reload it"
    assert result.failed == 0, result.summary()
    assert set(result.statuses) == {200}, result.summary()  # the app answered every request
    assert before in result.certificates and after in result.certificates
    journal = site.ssh(host, "journalctl -u nginx --no-pager -o cat | tail -5").stdout
    assert "Reloaded nginx.service" in journal


def test_sslyze_finds_the_endpoint_compliant_with_mozilla_intermediate(site: Site, issued: str) -> None:
    code, output = graders.sslyze_mozilla(NAMES[0], site.hosts[1].address, site.pebble.root_file)
    print(output)
    assert (
        "is compliant with Mozilla's intermediate" in output.replace("\n", " ") or "OK - Compliant" in output
    )
    assert code == 0, output


def test_observatory_grades_the_deployed_example_app_a_plus_120(site: Site, app_deployed: None) -> None:
    status, headers, body = graders.https_get(NAMES[0], site.hosts[1].address, site.pebble.root_file, "/")
    assert status == 200, body[:300]
    assert headers["content-security-policy"].startswith("default-src 'none'; ")
    result = graders.observatory_scan(NAMES[0], site.hosts[1].address, site.pebble.root_file)
    summary = graders.observatory_summary(result)
    print(summary)
    assert result["scan"]["grade"] == "A+", summary
    assert result["scan"]["score"] >= 120, summary
    tests = result["tests"]
    # The strict policy earns its +10, and the page the scanner reads (the notes form) sets the session
    # cookie (Flask-WTF's CSRF token): Secure, HttpOnly and SameSite earn +5.
    csp = tests["content-security-policy"]
    assert csp["result"] == "csp-implemented-with-no-unsafe-default-src-none", summary
    assert csp["scoreModifier"] == 10, summary
    assert tests["cookies"]["result"] == "cookies-secure-with-httponly-sessions-and-samesite", summary
    assert tests["cookies"]["scoreModifier"] == 5, summary
    cookie = headers.get("set-cookie", "")
    assert "session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert all(test["scoreModifier"] >= 0 for test in tests.values()), summary  # no penalty anywhere


def test_check_live_reads_the_certificate_and_the_renewal_timer(site: Site, issued: str) -> None:
    out = site.deploy(
        "check", "--live", "--select", "LIVE005", "--select", "LIVE016", "--format", "json", check=False
    )
    report = json.loads(out.stdout)
    print(json.dumps(report, indent=1)[:3000])
    # Both checks ran and passed on every host: a skipped check would also exit 0.
    assert sorted(report["passed"]) == ["LIVE005", "LIVE016"], report
    assert report["findings"] == [] and report["skipped"] == [], report
    assert out.returncode == 0, out.stdout + out.stderr
