"""`deploy check --live` against real sandbox hosts running the example app (systemd, Nginx, SSH).

One private host over HTTP: set it up, push the example app, check it (clean), then break it each way a
live check looks for (a hand edit, a readable secrets file, a stopped service, a worker fewer, a config
nginx -t rejects, a nearly full disk, headers removed, the debugger and a flagless cookie in the app),
check, and repair it. Then two hosts with certificates from pebble (the session's HTTPS site of
https_site.py, shared with test_https.py):
clean, the renewal timer stopped, plain HTTP without the redirect, weakened TLS; and there the renewal
hook deploy installed meets a real Nginx with a broken config. Every run asserts
which checks found something, which were skipped and that all the others ran and passed; every test
repairs what it broke, so the next one starts from a clean host whatever the order.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.hosts.https_site import Site
from tests.hosts.pushkit import Project, make_project, private_sandbox

pytestmark = pytest.mark.hosts

ENVIRONMENT = "live"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "check-live-sandbox", 1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = make_project(tmp_path_factory.mktemp("check-live-project"), box.hosts())
    with (project.path / "deploy.yaml").open("a", encoding="utf-8") as fh:
        fh.write(f"environments:\n  {ENVIRONMENT}: {{}}\n")
    project.commit("an environment for deploy check --live")
    project.deploy("setup", check=True)
    project.deploy("push", check=True)
    return project


#: Every live check; on a tls: false app the HTTPS ones say why they do not apply instead of passing.
ALL_LIVE = frozenset(f"LIVE{n:03d}" for n in range(1, 17))
HTTPS_ONLY = frozenset({"LIVE005", "LIVE008", "LIVE009", "LIVE015", "LIVE016"})
SITE_FILE = "/etc/nginx/sites-available/flaskr.conf"
HEADERS_FILE = "/etc/nginx/snippets/flaskr-security-headers.conf"


@dataclass
class Live:
    """One `deploy check --live --format json` run: exit code, findings, skipped and passed checks."""

    code: int
    found: dict[str, list[str]]
    skipped: dict[str, str]
    passed: set[str]

    def assert_ran(self, expected: set[str], skipped: frozenset[str] = frozenset()) -> None:
        """Exactly `expected` found something, exactly `skipped` were skipped, every other check ran
        and passed: a check that silently stopped running cannot pass this."""
        assert set(self.found) == expected, self.found
        assert set(self.skipped) == skipped, self.skipped
        assert self.passed == ALL_LIVE - expected - skipped, self.passed
        assert self.code == (1 if expected else 0)


def parse_live(out: subprocess.CompletedProcess[str], with_host: bool = False) -> Live:
    assert out.returncode in (0, 1), out.stdout + out.stderr
    doc = json.loads(out.stdout)
    found: dict[str, list[str]] = {}
    for f in doc["findings"]:
        where = f"{f.get('host')}: " if with_host else ""
        found.setdefault(f["id"], []).append(where + f["message"])
    skipped = {s["id"]: s["reason"] for s in doc["skipped"]}
    return Live(out.returncode, found, skipped, set(doc["passed"]))


def live(project: Project) -> Live:
    out = project.deploy(
        "check", ".", "--live", "-e", ENVIRONMENT, "--select", "LIVE", "--format", "json", timeout=240
    )
    return parse_live(out)


def sh(box: Sandbox, script: str) -> str:
    return box.run(box.hosts()[0], ["sh", "-c", script], check=True, timeout=120).stdout


@contextmanager
def edited(run: Callable[[str], object], *paths: str) -> Iterator[None]:
    """Hand edits to these files (on the host `run` runs a shell script on) are undone afterwards, and
    Nginx reloaded with the originals."""
    run("; ".join(f"cp -p {p} {p}.test-orig" for p in paths))
    try:
        yield
    finally:
        run("; ".join(f"mv {p}.test-orig {p}" for p in paths) + "; nginx -t && systemctl reload nginx")


def live_slot(box: Sandbox) -> str:
    target = sh(box, "readlink /srv/flaskr/live.sock").strip()
    return "blue" if target.endswith("blue.sock") else "green"


def test_freshly_pushed_host_passes_the_live_checks(project: Project) -> None:
    result = live(project)
    # tls: false in the sandbox config: the HTTPS checks say so instead of passing.
    result.assert_ran(set(), skipped=HTTPS_ONLY)
    assert all("server.tls is off" in r or "no ACME" in r for r in result.skipped.values()), result.skipped


def test_broken_host_gets_exactly_the_live_findings(project: Project, box: Sandbox) -> None:
    slot = live_slot(box)
    with edited(lambda script: sh(box, script), SITE_FILE):
        sh(box, f"echo '# edited by hand' >> {SITE_FILE}")
        sh(box, "chmod 0644 /etc/flaskr/env")
        sh(box, f"systemctl stop flaskr@{slot}.service")
        try:
            result = live(project)
        finally:
            sh(box, f"chmod 0600 /etc/flaskr/env; systemctl start flaskr@{slot}.service")
    assert result.found["LIVE001"] == [f"flaskr@{slot}.service is inactive"]
    assert result.found["LIVE004"] == [f"{SITE_FILE} differs from the rendered nginx/flaskr.conf"]
    assert result.found["LIVE006"][0].startswith("/etc/flaskr/env has mode 0644")
    assert result.found["LIVE012"] == ["/health answered 502"]
    result.assert_ran({"LIVE001", "LIVE004", "LIVE006", "LIVE012"}, skipped=HTTPS_ONLY)


# --- each live check against a host really set up wrong (break, check, repair; one host for all) -----


def gunicorn_workers(box: Sandbox, slot: str) -> int:
    pid = sh(box, f"systemctl show -p MainPID --value flaskr@{slot}.service").strip()
    return len(sh(box, f"pgrep -P {pid} || true").split())


def wait_for_workers(box: Sandbox, slot: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while (now := gunicorn_workers(box, slot)) != count:
        assert time.monotonic() < deadline, f"Gunicorn still has {now} workers, not {count}"
        time.sleep(0.2)


def test_live002_finds_a_master_running_fewer_workers_than_the_cores_want(
    project: Project, box: Sandbox
) -> None:
    slot = live_slot(box)
    pid = sh(box, f"systemctl show -p MainPID --value flaskr@{slot}.service").strip()
    cores = int(sh(box, "nproc").strip())
    wait_for_workers(box, slot, 2 * cores + 1)
    sh(box, f"kill -TTOU {pid}")  # Gunicorn: one worker fewer
    try:
        wait_for_workers(box, slot, 2 * cores)
        result = live(project)
    finally:
        sh(box, f"kill -TTIN {pid}")
        wait_for_workers(box, slot, 2 * cores + 1)
    assert result.found["LIVE002"] == [f"{2 * cores} workers run; {cores} cores want {2 * cores + 1}"]
    result.assert_ran({"LIVE002"}, skipped=HTTPS_ONLY)


def test_live003_finds_a_config_nginx_rejects(project: Project, box: Sandbox) -> None:
    broken = "/etc/nginx/conf.d/zz-hand-made.conf"
    sh(box, f"echo 'server {{ listen 80; no_such_directive on; }}' > {broken}")
    try:
        result = live(project)
    finally:
        sh(box, f"rm -f {broken}")
    assert result.found["LIVE003"] == ["nginx -t reports an invalid configuration"]
    result.assert_ran({"LIVE003"}, skipped=HTTPS_ONLY)


#: The app's base folder moves onto a 64 MiB filesystem, nearly full; its entries stay in place (bind
#: mounts), so the app keeps serving while statvfs reports the small disk.
SMALL_DISK = """
set -e
mkdir -p /run/test-orig
mount --bind /srv/flaskr /run/test-orig
# Not a peer of /srv/flaskr (systemd makes / shared): the tmpfs below must not show up here too.
mount --make-private /run/test-orig
mount -t tmpfs -o size=64m,mode=0755 small /srv/flaskr
chown --reference=/run/test-orig /srv/flaskr
chmod --reference=/run/test-orig /srv/flaskr
for entry in /run/test-orig/* /run/test-orig/.[!.]*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name=$(basename "$entry")
    if [ -d "$entry" ] && [ ! -L "$entry" ]; then
        mkdir "/srv/flaskr/$name"
        mount --bind "$entry" "/srv/flaskr/$name"
    else
        cp -a "$entry" "/srv/flaskr/$name"
    fi
done
head -c 60M /dev/zero > /srv/flaskr/.filler
"""
BIG_DISK = """
grep -o ' /srv/flaskr/[^ ]*' /proc/mounts | sort -r | while read -r m; do umount "$m"; done
umount /srv/flaskr || true
umount /run/test-orig || true
"""


def test_live007_finds_a_nearly_full_disk(project: Project, box: Sandbox) -> None:
    try:
        sh(box, SMALL_DISK)
        assert sh(box, "stat -f -c %T /srv/flaskr").strip() == "tmpfs"
        result = live(project)
    finally:
        sh(box, BIG_DISK)
    assert sh(box, "stat -f -c %T /srv/flaskr").strip() != "tmpfs"
    [message] = result.found["LIVE007"]
    match = re.fullmatch(r"(\d+) MiB free \((\d+)%\)", message)
    assert match and int(match[1]) < 8 and int(match[2]) < 10, message
    result.assert_ran({"LIVE007"}, skipped=HTTPS_ONLY)


def test_live010_finds_security_headers_missing(project: Project, box: Sandbox) -> None:
    with edited(lambda script: sh(box, script), HEADERS_FILE):
        sh(
            box,
            f"sed -i '/X-Frame-Options\\|Referrer-Policy/d' {HEADERS_FILE}; nginx -t; systemctl reload nginx",
        )
        result = live(project)
    assert result.found["LIVE010"] == [
        "/ (200) lacks x-frame-options, referrer-policy",
        "health (200) lacks x-frame-options, referrer-policy",
    ]
    assert result.found["LIVE004"] == [
        f"{HEADERS_FILE} differs from the rendered nginx/snippets/flaskr-security-headers.conf"
    ]
    result.assert_ran({"LIVE004", "LIVE010"}, skipped=HTTPS_ONLY)


#: App code a developer might leave in: the Werkzeug debugger with its console, trusted for the site's
#: name (without that it refuses other hosts), and a cookie set without flags.
DEBUGGER_AND_COOKIE = """\
    from werkzeug.debug import DebuggedApplication as _Debugged
    app.wsgi_app = _Debugged(app.wsgi_app, evalex=True)
    app.wsgi_app.trusted_hosts.append("flaskr.test")

    @app.after_request
    def _tracker(response):
        response.set_cookie("tracker", "1")
        return response

"""


def test_live011_and_live013_find_a_flagless_cookie_and_the_debugger_console(project: Project) -> None:
    project.set_version("debug", DEBUGGER_AND_COOKIE)
    try:
        project.deploy("push", check=True)
        result = live(project)
    finally:
        project.set_version("v1")
        project.deploy("push", check=True)
    assert sorted(set(result.found["LIVE011"])) == ["tracker without HttpOnly", "tracker without SameSite"]
    assert result.found["LIVE013"] == [
        "/console serves the Werkzeug debugger",
        "?__debugger__=yes serves the Werkzeug debugger",
    ]
    result.assert_ran({"LIVE011", "LIVE013"}, skipped=HTTPS_ONLY)


# --- HTTPS: two hosts with certificates from a real ACME server (pebble), as in test_https.py -------


def live_https(site: Site) -> Live:
    out = site.deploy("check", "--live", "--select", "LIVE", "--format", "json", check=False)
    return parse_live(out, with_host=True)


def test_https_site_passes_every_live_check(site: Site, app_deployed: None) -> None:
    live_https(site).assert_ran(set())


def test_live005_finds_the_renewal_timer_stopped(site: Site, app_deployed: None) -> None:
    host = site.hosts[0]
    site.ssh(host, "systemctl stop certbot.timer")
    try:
        result = live_https(site)
    finally:
        site.ssh(host, "systemctl start certbot.timer")
    assert result.found["LIVE005"] == [f"{host.address}: certbot.timer is inactive"]
    result.assert_ran({"LIVE005"})


def test_live008_finds_plain_http_served_without_a_redirect(site: Site, app_deployed: None) -> None:
    host = site.hosts[0]
    with edited(lambda script: site.ssh(host, script), SITE_FILE):
        site.ssh(
            host,
            "sed -i 's|return 301 https://$host$request_uri;|return 200 \"plain HTTP\";|' "
            f"{SITE_FILE} && nginx -t && systemctl reload nginx",
        )
        result = live_https(site)
    assert result.found["LIVE008"] == [f"flaskr.test via {host.address}: http:// answered 200"]
    assert result.found["LIVE004"] == [
        f"{host.address}: {SITE_FILE} differs from the rendered nginx/flaskr.conf"
    ]
    result.assert_ran({"LIVE004", "LIVE008"})


def test_weakened_tls_and_headers_are_found_on_the_live_site(site: Site, app_deployed: None) -> None:
    host = site.hosts[0]
    tls_catch_all = "/etc/nginx/conf.d/deploy-catch-all-tls.conf"
    with edited(lambda script: site.ssh(host, script), SITE_FILE, tls_catch_all, HEADERS_FILE):
        site.ssh(
            host,
            "sed -i 's/ssl_protocols TLSv1.2 TLSv1.3;/ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;/; "
            "s/ssl_ciphers [^;]*;/ssl_ciphers ALL:@SECLEVEL=0;/; s/server_tokens off;/server_tokens on;/' "
            # The catch-all default server too: nginx settles the protocol before it reads the name (SNI).
            f"{SITE_FILE} {tls_catch_all} && "
            f"sed -i '/Strict-Transport-Security/d' {HEADERS_FILE} && "
            "nginx -t && systemctl reload nginx",
        )
        result = live_https(site)
    found = result.found
    where = f"flaskr.test via {host.address}"
    assert found["LIVE009"] == [f"{where}: no Strict-Transport-Security header"]
    assert found["LIVE014"] == [f"{where}: Server: nginx/1.22.1"]
    assert f"{where}: accepts TLSv1, TLSv1.1" in found["LIVE015"]
    assert len(found["LIVE004"]) == 3  # the site, the catch-all and the headers snippet differ from render
    result.assert_ran({"LIVE004", "LIVE009", "LIVE014", "LIVE015"})


# --- the renewal hook deploy installed, on a real Nginx ------------------------------------------------
# (here rather than in test_https.py: it needs the same pebble site, and one boot serves both)

HOOK = "/etc/letsencrypt/renewal-hooks/deploy/flaskr-nginx-reload"
MARKER = "/etc/nginx/conf.d/zz-test-marker.conf"
BROKEN = "/etc/nginx/conf.d/zz-test-broken.conf"


def nginx_workers(site: Site, host: SandboxHost) -> str:
    return site.ssh(host, "cat /run/nginx.pid; pgrep -P $(cat /run/nginx.pid) | sort").stdout


def marker(site: Site, host: SandboxHost) -> str:
    """What the marker server answers, asked on the host itself (nothing but the site is opened to us)."""
    fetch = (
        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8091/', timeout=5).read().decode())"
    )
    return site.ssh(host, f'python3 -c "{fetch}"', check=False).stdout.strip()


def reloads(site: Site, host: SandboxHost) -> int:
    """How often systemd has started reloading nginx.service (its journal's "Reloading ..." lines)."""
    out = site.ssh(host, "journalctl -u nginx.service --no-pager -o cat | grep -c '^Reloading' || true")
    return int(out.stdout.strip() or 0)


def run_hook(site: Site, host: SandboxHost) -> subprocess.CompletedProcess[str]:
    # As certbot runs a deploy hook after it renewed this certificate.
    return site.ssh(host, f"RENEWED_LINEAGE=/etc/letsencrypt/live/flaskr.test {HOOK} 2>&1", check=False)


def test_renewal_hook_never_reloads_a_broken_config_then_reloads_the_fixed_one(
    site: Site,
    issued: str,
) -> None:
    host = site.hosts[0]
    serve = "server {{ listen 8091; default_type text/plain; return 200 '{}'; }}"
    site.ssh(host, f'echo "{serve.format("old")}" > {MARKER} && nginx -t && systemctl reload nginx')
    try:
        deadline = time.monotonic() + 30
        while marker(site, host) != "old":  # the old workers finish while the new ones start
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # A renewal arrives while a new config is half-written: the marker changed, another file is broken.
        site.ssh(
            host, f"echo \"{serve.format('new')}\" > {MARKER} && echo 'no_such_directive on;' > {BROKEN}"
        )
        before, reloaded = nginx_workers(site, host), reloads(site, host)
        failed = run_hook(site, host)
        assert failed.returncode != 0, failed.stdout
        assert 'unknown directive "no_such_directive"' in failed.stdout
        # Stopped at its own nginx -t: no reload was even tried (Nginx would refuse a broken config by
        # itself; a hook that restarted instead would take the site down).
        assert "nginx.service" not in failed.stdout and reloads(site, host) == reloaded, failed.stdout
        assert nginx_workers(site, host) == before, "the hook reloaded Nginx with a broken configuration"
        assert site.ssh(host, "systemctl is-active nginx").stdout.strip() == "active"
        assert marker(site, host) == "old"  # still the configuration it had
        # Fixed: the hook reloads, and the new configuration is served.
        site.ssh(host, f"rm {BROKEN}")
        fixed = run_hook(site, host)
        assert fixed.returncode == 0, fixed.stdout
        deadline = time.monotonic() + 30
        while marker(site, host) != "new":
            assert time.monotonic() < deadline, "the hook did not reload Nginx with the fixed configuration"
            time.sleep(0.1)
        assert nginx_workers(site, host) != before
        assert reloads(site, host) == reloaded + 1
    finally:
        site.ssh(host, f"rm -f {MARKER} {BROKEN} && nginx -t && systemctl reload nginx")
