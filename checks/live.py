"""Checks of the live deployment: the hosts over SSH and the site over HTTP(S) (`--live -e ENV`)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from deploy.checker import Context, Finding, HostLive, Response, Severity, SiteLive, Skip, check

LIVE = ("live",)
MIN_FREE_BYTES = 1024**3
MIN_FREE_SHARE = 0.10
MIN_HSTS = 15552000


def _reachable(ctx: Context) -> None:
    """Skip a check when no host could be reached (LIVE001 reports each unreachable host)."""
    hosts = ctx.live_facts.hosts
    if hosts and all(h.unreachable for h in hosts):
        raise Skip("no host could be reached (see LIVE001)")


def _hosts(ctx: Context) -> Iterator[HostLive]:
    _reachable(ctx)
    for host in ctx.live_facts.hosts:
        if host.error:
            continue
        yield host


def _live_slot(host: HostLive) -> str | None:
    """The slot ('blue' or 'green') the live socket link points to."""
    target = (host.state.links.get("live") if host.state else None) or ""
    match = re.search(r"/(blue|green)\.sock$", target)
    return match.group(1) if match else None


def _web(ctx: Context, host: HostLive) -> bool:
    """Whether the host runs the web process (its roles hold web): else no Gunicorn, Nginx or certificate."""
    return ctx.config is None or ctx.config.runs_web(host.host)


def _unit(ctx: Context, slot: str) -> str:
    assert ctx.config is not None
    return f"{ctx.config.app.name}@{slot}.service"


@check(
    "LIVE001",
    area="deployment",
    severity="critical",
    title="Hosts unreachable or the app's service is not running",
    why="""The live slot's Gunicorn unit must be active on every host; a failed or stopped unit means Nginx
    answers 502 for every request to that host.""",
    fix="""`deploy push` again, or look at the unit with `journalctl -u APP@SLOT` on the host; a host that
    cannot be reached over SSH needs its address, key and known_hosts entry checked.""",
    layers=LIVE,
    references=(
        "https://www.freedesktop.org/software/systemd/man/latest/systemctl.html#is-active%20PATTERN%E2%80%A6",
    ),
)
def service_active(ctx: Context) -> Iterator[Finding]:
    for host in ctx.live_facts.hosts:
        if host.unreachable:
            ctx.notes.append(f"{host.host} is unreachable: the live checks did not look at it (LIVE001)")
            yield Finding(f"unreachable: {host.error}", host=host.host)
            continue
        if host.error:
            yield Finding(f"cannot gather facts: {host.error}", host=host.host)
            continue
        slot = _live_slot(host)
        if slot is None:
            yield Finding("no release is live (the live socket link is missing)", host=host.host)
            continue
        if not _web(ctx, host):
            continue
        status = host.state.services.get(_unit(ctx, slot)) if host.state else None
        if status != "active":
            yield Finding(f"{_unit(ctx, slot)} is {status or 'unknown'}", host=host.host)


@check(
    "LIVE002",
    area="performance",
    severity="medium",
    title="Live worker count does not fit the host",
    why="""The running Gunicorn master should have (2 x cores) + 1 workers of the host it runs on (or the
    fixed number deploy.yaml asks for); fewer means requests queue, more means memory pressure.""",
    fix="""Push again after changing `gunicorn.workers`/`server.cores`; if workers keep dying, read the
    unit's journal (out of memory, crash at import).""",
    layers=LIVE,
    references=("https://docs.gunicorn.org/en/stable/design.html#how-many-workers",),
)
def live_workers(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    for host in _hosts(ctx):
        slot = _live_slot(host)
        if slot is None or host.state is None or not _web(ctx, host):
            continue
        running = host.workers.get(_unit(ctx, slot))
        expected = ctx.config.workers_for(host.state.cores)
        if running is not None and expected is not None and running != expected:
            yield Finding(f"{running} workers run; {host.state.cores} cores want {expected}", host=host.host)


@check(
    "LIVE003",
    area="deployment",
    severity="high",
    title="nginx -t fails on the host",
    why="""With a configuration Nginx rejects, the next reload or restart (a certificate renewal, a reboot)
    fails and the site goes down.""",
    fix="""Run `nginx -t` on the host, fix the file it names (or remove a hand-made site that breaks it), and
    push again.""",
    layers=LIVE,
    references=("https://nginx.org/en/docs/switches.html",),
)
def nginx_test(ctx: Context) -> Iterator[Finding]:
    for host in _hosts(ctx):
        if host.state is not None and host.state.nginx_ok is False:
            yield Finding("nginx -t reports an invalid configuration", host=host.host)


@check(
    "LIVE004",
    area="deployment",
    severity="medium",
    title="Live configs drifted from the rendered ones",
    why="""A config edited by hand on a host (or left from an older deploy) differs from what deploy.yaml
    renders: the next push overwrites the hand edit, and until then hosts behave differently.""",
    fix="""Move the change into deploy.yaml (or a template override in the project's templates/) and push;
    `deploy push --dry-run` shows the diff.""",
    layers=LIVE,
    references=("https://en.wikipedia.org/wiki/Configuration_drift",),
)
def drift(ctx: Context) -> Iterator[Finding]:
    for host in _hosts(ctx):
        if host.state is None:
            continue
        for key, (path, text) in sorted(host.rendered.items()):
            live = host.state.files.get(path)
            if live is None:
                yield Finding(f"{path} is missing (rendered as {key})", host=host.host)
            elif live != text:
                yield Finding(f"{path} differs from the rendered {key}", host=host.host)


@check(
    "LIVE005",
    area="security",
    severity="high",
    title="Certificate renewal timer is not active",
    why="""Let's Encrypt certificates last 90 days; without certbot's timer the site breaks with a
    certificate error on the day it expires.""",
    fix="""`systemctl enable --now certbot.timer` on the host (deploy certs sets it up).""",
    layers=LIVE,
    references=("https://eff-certbot.readthedocs.io/en/stable/using.html#automated-renewals",),
)
def certbot_timer(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    tls = ctx.config.server.tls
    if tls is False or not tls.acme:
        raise Skip("no ACME certificates (server.tls is off or uses your own certificate)")
    for host in _hosts(ctx):
        if host.certbot_timer != "active" and _web(ctx, host):
            yield Finding(f"certbot.timer is {host.certbot_timer or 'missing'}", host=host.host)


@check(
    "LIVE006",
    area="security",
    severity="high",
    title="The environment file is readable by others",
    why="""The environment file holds the app's secrets; readable by other users of the host, any
    compromised service can read SECRET_KEY and the database password.""",
    fix="""`chmod 600` and `chown root:root` it (deploy setup and push write it that way): systemd reads it
    as root before it starts the app, so neither the app's user nor anyone else needs to read it, and
    an app that owns it could rewrite what the next start reads as root.""",
    layers=LIVE,
    references=(
        "https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#EnvironmentFile=",
    ),
)
def env_file_mode(ctx: Context) -> Iterator[Finding]:
    from deploy.layout import paths_for

    assert ctx.config is not None
    path = paths_for(ctx.config).env_file
    for host in _hosts(ctx):
        info = host.state.owners.get(path) if host.state else None
        if info is None:
            if ctx.config.app.secrets:
                yield Finding(
                    f"{path} is missing but app.secrets lists {len(ctx.config.app.secrets)}", host=host.host
                )
            continue
        mode = int(str(info.get("mode", 0)))
        if mode & 0o077:
            yield Finding(
                f"{path} has mode {mode:04o} (owner {info.get('owner')}:{info.get('group')})", host=host.host
            )
        elif info.get("owner") != "root":
            yield Finding(
                f"{path} belongs to {info.get('owner')}, who can rewrite what systemd reads as root",
                host=host.host,
            )


@check(
    "LIVE007",
    area="deployment",
    severity="medium",
    title="Little free disk space",
    why="""Releases, virtualenvs, logs and the journal grow; a full disk fails the next push half-way and
    makes the running app fail on writes.""",
    fix="""Lower `push.keep_releases`, vacuum the journal (`journalctl --vacuum-size=200M`), or grow
    the disk.""",
    layers=LIVE,
    references=("https://www.freedesktop.org/software/systemd/man/latest/journald.conf.html",),
)
def free_disk(ctx: Context) -> Iterator[Finding]:
    for host in _hosts(ctx):
        if host.disk_free is None or not host.disk_total:
            continue
        share = host.disk_free / host.disk_total
        if host.disk_free < MIN_FREE_BYTES or share < MIN_FREE_SHARE:
            yield Finding(f"{host.disk_free // 1024**2} MiB free ({share:.0%})", host=host.host)


# --- the site --------------------------------------------------------------------------------------


def _sites(ctx: Context) -> Iterator[SiteLive]:
    """The sites that were visited (not those on unreachable hosts, which LIVE001 reports)."""
    _reachable(ctx)
    for site in ctx.live_facts.sites:
        if site.unreachable is None:
            yield site


def _need_tls(ctx: Context) -> None:
    assert ctx.config is not None
    if ctx.config.server.tls is False:
        raise Skip("server.tls is off (SEC004)")


def _where(site: SiteLive) -> str:
    return f"{site.domain} via {site.host}"


@check(
    "LIVE008",
    area="security",
    severity="high",
    title="HTTP does not redirect to HTTPS",
    why="""Visitors who type the bare name arrive over HTTP; without a permanent redirect they stay on an
    unencrypted page that anyone on the path can read or change.""",
    fix="""Serve the rendered Nginx site (port 80 answers 301 to https://), and push again.""",
    layers=LIVE,
    references=("https://developer.mozilla.org/en-US/docs/Web/HTTP/Redirections",),
)
def http_redirect(ctx: Context) -> Iterator[Finding]:
    _need_tls(ctx)
    for site in _sites(ctx):
        answer = site.http_root
        if answer is None:
            continue
        location = answer.header("location") or ""
        if answer.status not in (301, 308) or not location.startswith(f"https://{site.domain}"):
            yield Finding(f"http:// answered {answer.status} {location}".rstrip(), host=_where(site))


@check(
    "LIVE009",
    area="security",
    severity="medium",
    title="No HSTS on the live site",
    why="""Without Strict-Transport-Security a browser tries HTTP first on every visit, and an attacker on
    the path can keep it there (SSL stripping).""",
    fix="""Keep `nginx.hsts_max_age` at 63072000 (two years) and serve the rendered site.""",
    layers=LIVE,
    references=("https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Strict-Transport-Security",),
)
def live_hsts(ctx: Context) -> Iterator[Finding]:
    _need_tls(ctx)
    for site in _sites(ctx):
        if site.root is None:
            continue
        value = site.root.header("strict-transport-security")
        match = re.search(r"max-age=(\d+)", value or "")
        if match is None:
            yield Finding("no Strict-Transport-Security header", host=_where(site))
        elif int(match.group(1)) < MIN_HSTS:
            yield Finding(f"HSTS max-age is {match.group(1)} s", host=_where(site), severity=Severity.LOW)


_LIVE_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


@check(
    "LIVE010",
    area="security",
    severity="medium",
    title="Security headers missing on the live site",
    why="""What counts is what browsers receive: a proxy in front, a hand-edited site or an error page can
    drop headers the rendered config sets.""",
    fix="""Serve the rendered Nginx site on every host (see LIVE004 for drift) and keep `always` on each
    add_header.""",
    layers=LIVE,
    references=("https://owasp.org/www-project-secure-headers/",),
)
def live_headers(ctx: Context) -> Iterator[Finding]:
    for site in _sites(ctx):
        for name, answer in (("/", site.root), ("health", site.health)):
            if answer is None:
                continue
            missing = [h for h in _LIVE_HEADERS if answer.header(h) is None]
            if missing:
                yield Finding(f"{name} ({answer.status}) lacks {', '.join(missing)}", host=_where(site))


def _cookie_problems(cookie: str, tls: bool) -> list[str]:
    parts = [p.strip().lower() for p in cookie.split(";")]
    name = cookie.split("=", 1)[0].strip()
    problems = []
    if tls and "secure" not in parts:
        problems.append(f"{name} without Secure")
    if "httponly" not in parts:
        problems.append(f"{name} without HttpOnly")
    if not any(p.startswith("samesite=") for p in parts):
        problems.append(f"{name} without SameSite")
    return problems


@check(
    "LIVE011",
    area="security",
    severity="high",
    title="Live cookies lack Secure, HttpOnly or SameSite",
    why="""The cookies the site really sets (session, remember-me, CSRF) must be Secure, HttpOnly and
    SameSite, or they leak over HTTP, to scripts, or to other sites.""",
    fix="""Set SESSION_COOKIE_SECURE/HTTPONLY/SAMESITE (and the same for other cookies the app sets).""",
    layers=LIVE,
    references=("https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Set-Cookie",),
)
def live_cookies(ctx: Context) -> Iterator[Finding]:
    for site in _sites(ctx):
        cookies = [
            c for answer in (site.root, site.health) if answer is not None for c in answer.all("set-cookie")
        ]
        for cookie in cookies:
            for problem in _cookie_problems(cookie, site.tls):
                yield Finding(problem, host=_where(site))


@check(
    "LIVE012",
    area="observability",
    severity="high",
    title="The live health endpoint does not answer 200",
    why="""Pushes, load balancers and monitors ask the health URL; on a live host it must answer 200 through
    Nginx, exactly as users reach the app.""",
    fix="""Look at the unit's journal on that host; check that Nginx proxies the health path to the app.""",
    layers=LIVE,
    references=("https://microservices.io/patterns/observability/health-check-api.html",),
)
def live_health(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    for site in _sites(ctx):
        if site.health is None:
            yield Finding(
                f"{ctx.config.app.health} gave no answer: {'; '.join(site.errors)[:300]}", host=_where(site)
            )
        elif site.health.status != 200:
            yield Finding(f"{ctx.config.app.health} answered {site.health.status}", host=_where(site))


def _debugger(answer: Response | None) -> bool:
    if answer is None or answer.status != 200:
        return False
    text = answer.body.lower()
    return "werkzeug" in text or "debugger" in text or "__debugger__" in text


@check(
    "LIVE013",
    area="security",
    severity="critical",
    title="The Werkzeug debugger or console is reachable",
    why="""A reachable debugger console runs any Python on the server for anyone who finds it.""",
    fix="""Turn debug mode off in production (SEC001, SEC017, XL004) and push again.""",
    layers=LIVE,
    references=("https://werkzeug.palletsprojects.com/en/stable/debug/",),
)
def live_debugger(ctx: Context) -> Iterator[Finding]:
    for site in _sites(ctx):
        for path, answer in (("/console", site.console), ("?__debugger__=yes", site.debugger)):
            if _debugger(answer):
                yield Finding(f"{path} serves the Werkzeug debugger", host=_where(site))


@check(
    "LIVE014",
    area="security",
    severity="low",
    title="The live site discloses software versions",
    why="""A Server header such as `nginx/1.22.1` or an X-Powered-By header tells attackers which known
    vulnerabilities to try.""",
    fix="""`server_tokens off;` in Nginx (the rendered site has it) and no X-Powered-By from the app.""",
    layers=LIVE,
    references=("https://owasp.org/www-project-secure-headers/#server",),
)
def version_disclosure(ctx: Context) -> Iterator[Finding]:
    for site in _sites(ctx):
        for answer in (site.root, site.health):
            if answer is None:
                continue
            server = answer.header("server") or ""
            if re.search(r"\d", server):
                yield Finding(f"Server: {server}", host=_where(site))
                break
            if answer.header("x-powered-by"):
                yield Finding(f"X-Powered-By: {answer.header('x-powered-by')}", host=_where(site))
                break


@check(
    "LIVE015",
    area="security",
    severity="high",
    title="The live site accepts old TLS protocols or weak ciphers",
    why="""TLS 1.0 and 1.1 are deprecated (RFC 8996) and non-ECDHE or CBC-SHA1 suites lack forward secrecy;
    scanners and compliance rules fail the site for them.""",
    fix="""Serve the rendered Nginx site (Mozilla intermediate: TLS 1.2 and 1.3, ECDHE with AEAD ciphers).""",
    layers=LIVE,
    references=("https://ssl-config.mozilla.org/", "https://www.rfc-editor.org/rfc/rfc8996"),
)
def live_tls(ctx: Context) -> Iterator[Finding]:
    _need_tls(ctx)
    for site in _sites(ctx):
        if site.old_protocols:
            yield Finding(f"accepts {', '.join(site.old_protocols)}", host=_where(site))
        if site.weak_ciphers:
            yield Finding(
                "accepts cipher suites outside Mozilla intermediate (CBC-SHA1, RSA or DHE key exchange)",
                host=_where(site),
            )


@check(
    "LIVE016",
    area="security",
    severity="high",
    title="The live certificate is invalid or expires soon",
    why="""A certificate that does not verify, or that expires in days, shows every visitor a full-page
    browser warning; renewal problems surface weeks before expiry if someone looks.""",
    fix="""Check `certbot renew --dry-run` and certbot.timer on the host (LIVE005); for your own certificate,
    install the renewed one with `deploy certs`.""",
    layers=LIVE,
    references=("https://letsencrypt.org/docs/integration-guide/#when-to-renew",),
)
def certificate(ctx: Context) -> Iterator[Finding]:
    _need_tls(ctx)
    for site in _sites(ctx):
        failed = [e for e in site.errors if e.startswith("TLS handshake")]
        if failed:
            yield Finding(failed[0], host=_where(site), severity=Severity.CRITICAL)
        elif site.cert_days_left is not None and site.cert_days_left < 30:
            severity = Severity.CRITICAL if site.cert_days_left < 7 else Severity.HIGH
            yield Finding(
                f"the certificate expires in {site.cert_days_left} days", host=_where(site), severity=severity
            )
