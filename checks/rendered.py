"""Checks of the configs deploy renders: Nginx headers, TLS and tokens, systemd exposure, hadolint, gixy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from deploy.checker import Context, Finding, Severity, Skip, check, linters

MOZILLA_TLS = "https://ssl-config.mozilla.org/"


# --- a small Nginx parser ------------------------------------------------------------------------


@dataclass
class Directive:
    """One Nginx directive: its name, arguments, line, and the block it opens (if any)."""

    name: str
    args: list[str]
    line: int
    block: list[Directive] | None = None
    file: str = ""

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]


@dataclass
class _Tokens:
    items: list[tuple[str, int]] = field(default_factory=list)
    pos: int = 0


_TOKEN = re.compile(r"""#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};"'#]+""")


def parse_nginx(text: str, file: str = "") -> list[Directive]:
    """Parse Nginx configuration text into nested directives (comments dropped, quotes removed)."""
    tokens = _Tokens()
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token.startswith("#"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        if token[0] in "\"'" and len(token) >= 2:
            token = token[1:-1]
        tokens.items.append((token, line))
    return _parse_block(tokens, file)


def _parse_block(tokens: _Tokens, file: str) -> list[Directive]:
    out: list[Directive] = []
    words: list[tuple[str, int]] = []
    while tokens.pos < len(tokens.items):
        word, line = tokens.items[tokens.pos]
        tokens.pos += 1
        if word == ";":
            if words:
                out.append(Directive(words[0][0], [w for w, _ in words[1:]], words[0][1], None, file))
            words = []
        elif word == "{":
            name, first = (words[0][0], words[0][1]) if words else ("", line)
            out.append(Directive(name, [w for w, _ in words[1:]], first, _parse_block(tokens, file), file))
            words = []
        elif word == "}":
            return out
        else:
            words.append((word, line))
    return out


def _nginx_files(ctx: Context) -> dict[str, str]:
    rendered = ctx.rendered
    if isinstance(rendered, str):
        return {}
    return {
        p: t for p, t in rendered.items() if p.startswith("nginx/") or (p.endswith(".conf") and "nginx" in p)
    }


def _expand(directives: list[Directive], files: dict[str, str], depth: int = 0) -> list[Directive]:
    """Replace `include` of a rendered snippet with its directives (matched by file name)."""
    by_name = {PurePosixPath(p).name: (p, t) for p, t in files.items()}
    out: list[Directive] = []
    for d in directives:
        if d.name == "include" and d.args and depth < 5 and PurePosixPath(d.args[0]).name in by_name:
            path, text = by_name[PurePosixPath(d.args[0]).name]
            out.extend(_expand(parse_nginx(text, path), files, depth + 1))
        elif d.block is not None:
            out.append(Directive(d.name, d.args, d.line, _expand(d.block, files, depth), d.file))
        else:
            out.append(d)
    return out


def site(ctx: Context) -> tuple[str, list[Directive]] | None:
    """The rendered Nginx site (path, directives with snippets expanded)."""
    files = _nginx_files(ctx)
    # Not the snippets, nor the catch-all default servers under conf.d/ (shared by the host's apps).
    sites = [
        p
        for p, t in sorted(files.items())
        if "server_name" in t and "/snippets/" not in p and "/conf.d/" not in p
    ]
    if not sites:
        return None
    return sites[0], _expand(parse_nginx(files[sites[0]], sites[0]), files)


def app_servers(directives: list[Directive]) -> list[Directive]:
    """Server blocks that pass requests to the app (not the catch-all `return 444` ones)."""
    servers = [d for d in directives if d.name == "server" and d.block is not None]
    return [s for s in servers if _mentions(s, "proxy_pass")]


def _mentions(block: Directive, name: str) -> bool:
    return any(d.name == name or (d.block is not None and _mentions(d, name)) for d in block.block or [])


def _headers(block: list[Directive]) -> dict[str, Directive]:
    return {d.args[0].lower(): d for d in block if d.name == "add_header" and d.args}


def nginx_headers(ctx: Context) -> set[str]:
    """Every header name the rendered Nginx configuration adds anywhere."""
    names: set[str] = set()
    for path, text in _nginx_files(ctx).items():
        for d in _walk(parse_nginx(text, path)):
            if d.name == "add_header" and d.args:
                names.add(d.args[0])
    return names


def _walk(directives: list[Directive]) -> Iterator[Directive]:
    for d in directives:
        yield d
        if d.block is not None:
            yield from _walk(d.block)


def _tls(ctx: Context) -> bool:
    return ctx.config is not None and ctx.config.server.tls is not False


_REQUIRED = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


@check(
    "RND001",
    area="security",
    severity="medium",
    title="Rendered Nginx site lacks security headers",
    why="""The Nginx site is where the security headers are set for every response, static files included;
    a location with its own `add_header` silently drops all the headers inherited from the server block.""",
    fix="""Keep the shipped security-headers snippet included in every server and location that adds a
    header; if you override templates, include it there too. Headers need `always` to reach error pages.""",
    layers=("rendered",),
    references=(
        "https://nginx.org/en/docs/http/ngx_http_headers_module.html#add_header",
        "https://owasp.org/www-project-secure-headers/",
    ),
)
def nginx_security_headers(ctx: Context) -> Iterator[Finding]:
    found = site(ctx)
    if found is None:
        return
    path, directives = found
    required = _REQUIRED + (("strict-transport-security",) if _tls(ctx) else ())
    for server in app_servers(directives):
        blocks = [(server, server.block or [])] + [
            (d, d.block or []) for d in _walk(server.block or []) if d.name == "location"
        ]
        inherited = _headers(server.block or [])
        for owner, block in blocks:
            own = _headers(block)
            effective = own if own else inherited
            if owner is not server and not own:
                continue
            missing = [h for h in required if h not in effective]
            where = "server" if owner is server else f"location {' '.join(owner.args)}"
            if missing:
                yield Finding(f"{where} sends no {', '.join(missing)}", path, owner.line)
            for name, d in sorted(effective.items()):
                if name in required and "always" not in d.args:
                    yield Finding(
                        f"{where}: add_header {d.args[0]} lacks 'always' (missing on error pages)",
                        path,
                        d.line,
                        severity=Severity.LOW,
                    )


@check(
    "RND002",
    area="security",
    severity="high",
    title="Rendered Nginx TLS settings are weak",
    why="""TLS 1.0 and 1.1 are deprecated (RFC 8996), CBC and non-ECDHE ciphers lack forward secrecy or
    AEAD, and a short HSTS max-age lets a downgrade succeed after it lapses.""",
    fix="""Use Mozilla's intermediate profile: `ssl_protocols TLSv1.2 TLSv1.3;`, ECDHE+AEAD ciphers, and
    HSTS max-age 63072000 (`nginx.hsts_max_age`).""",
    layers=("rendered", "config"),
    references=(MOZILLA_TLS, "https://www.rfc-editor.org/rfc/rfc8996"),
)
def nginx_tls(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    found = site(ctx)
    if found is None or not _tls(ctx):
        return
    path, directives = found
    https = [
        s
        for s in app_servers(directives)
        if any(d.name == "listen" and "ssl" in d.args for d in s.block or [])
    ]
    for server in https:
        protocols = [d for d in server.block or [] if d.name == "ssl_protocols"]
        if not protocols:
            yield Finding("no ssl_protocols: the OpenSSL default may allow old protocols", path, server.line)
        for d in protocols:
            old = [p for p in d.args if p in ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")]
            if old:
                yield Finding(f"ssl_protocols allows {', '.join(old)}", path, d.line)
        for d in (d for d in server.block or [] if d.name == "ssl_ciphers"):
            weak = (
                [
                    c
                    for c in d.args[0].split(":")
                    if (c and not c.startswith("ECDHE") and not c.startswith("TLS_"))
                    or re.search(r"CBC|SHA$|RC4|3DES|NULL", c)
                ]
                if d.args
                else []
            )
            if weak:
                yield Finding(f"ssl_ciphers includes {', '.join(weak[:3])}", path, d.line)
        hsts = _headers(server.block or []).get("strict-transport-security")
        if hsts is not None and len(hsts.args) > 1:
            match = re.search(r"max-age=(\d+)", hsts.args[1])
            if match and int(match.group(1)) < 15552000:
                yield Finding(
                    f"HSTS max-age is {match.group(1)} s (under 180 days)",
                    path,
                    hsts.line,
                    severity=Severity.LOW,
                )


@check(
    "RND003",
    area="security",
    severity="low",
    title="Rendered Nginx discloses its version",
    why="""`server_tokens on` (Nginx's default) puts the exact version in the Server header and on error
    pages, which tells attackers which known vulnerabilities to try.""",
    fix="""`server_tokens off;` in every server block (the shipped template does this).""",
    layers=("rendered",),
    references=("https://nginx.org/en/docs/http/ngx_http_core_module.html#server_tokens",),
)
def nginx_server_tokens(ctx: Context) -> Iterator[Finding]:
    found = site(ctx)
    if found is None:
        return
    path, directives = found
    for server in (d for d in directives if d.name == "server"):
        tokens = [d for d in server.block or [] if d.name == "server_tokens"]
        if not tokens or tokens[-1].args[:1] != ["off"]:
            yield Finding("server block without `server_tokens off`", path, server.line)


EXPOSURE_LIMIT = 5.0


@check(
    "RND004",
    area="security",
    severity="medium",
    title="Rendered systemd unit is exposed",
    why="""A unit without sandboxing lets a compromised app read the whole file system, load kernel modules,
    or gain privileges; `systemd-analyze security` scores this exposure from 0 (locked down) to 10.""",
    fix="""Keep the shipped hardening (ProtectSystem=strict, NoNewPrivileges, PrivateTmp, ...); relax only the
    directives your app needs through `systemd.overrides`, and keep secrets in EnvironmentFile=, never
    Environment=.""",
    layers=("rendered", "tools"),
    references=(
        "https://www.freedesktop.org/software/systemd/man/latest/systemd-analyze.html#systemd-analyze%20security%20%5BUNIT...%5D",
        "https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#Security",
    ),
)
def systemd_exposure(ctx: Context) -> Iterator[Finding]:
    rendered = ctx.rendered
    assert not isinstance(rendered, str)
    units = {p: t for p, t in rendered.items() if p.endswith(".service")}
    for path, text in sorted(units.items()):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.startswith("Environment=") and re.search(r"(?i)(secret|passw|token|api_?key)", line):
                yield Finding("a secret is passed with Environment= (readable by every user)", path, number)
        try:
            exposure = linters.systemd_exposure(PurePosixPath(path).name, text)
        except linters.LinterUnavailable as exc:
            raise Skip(str(exc)) from None
        if exposure.score > EXPOSURE_LIMIT:
            yield Finding(f"exposure {exposure.score} {exposure.level} (limit {EXPOSURE_LIMIT})", path)


def lint_dockerfiles(dockerfiles: dict[str, str]) -> Iterator[Finding]:
    """hadolint's errors (medium) and warnings (low) for each Dockerfile, by path."""
    for path, text in sorted(dockerfiles.items()):
        try:
            issues = linters.hadolint(text)
        except linters.LinterUnavailable as exc:
            raise Skip(str(exc)) from None
        for issue in issues:
            level = issue.get("level")
            if level in ("error", "warning"):
                severity = Severity.MEDIUM if level == "error" else Severity.LOW
                yield Finding(
                    f"{issue.get('code')}: {issue.get('message')}", path, issue.get("line"), severity=severity
                )


@check(
    "RND005",
    area="deployment",
    severity="medium",
    title="hadolint finds problems in the rendered Dockerfile",
    why="""hadolint checks a Dockerfile against Docker's best practices: unpinned base images and packages,
    running as root, shell-form commands that swallow signals, caches left in layers. This is the
    Dockerfile deploy renders from deploy.yaml (your templates/Dockerfile.j2 if you override it); the
    project's own Dockerfile is DEP007.""",
    fix="""Fix what hadolint names in your template override (each rule links to its wiki page), or suppress
    a rule with a reason.""",
    layers=("rendered",),
    references=("https://github.com/hadolint/hadolint#rules",),
)
def hadolint(ctx: Context) -> Iterator[Finding]:
    rendered = ctx.rendered
    assert not isinstance(rendered, str)
    dockerfiles = {p: t for p, t in rendered.items() if PurePosixPath(p).name == "Dockerfile"}
    if not dockerfiles:
        raise Skip("no Dockerfile rendered")
    yield from lint_dockerfiles(dockerfiles)


@check(
    "RND006",
    area="security",
    severity="medium",
    title="gixy finds problems in the Nginx site",
    why="""gixy knows Nginx's security traps: header redefinition in locations, alias path traversal, host
    header spoofing, SSRF through proxy_pass, unanchored regular expressions.""",
    fix="""Fix what gixy names (each plugin has a page in gixy-ng's docs), or suppress it with a reason.""",
    layers=("rendered", "tools"),
    references=("https://github.com/dvershinin/gixy",),
)
def gixy(ctx: Context) -> Iterator[Finding]:
    found = site(ctx)
    if found is None:
        return
    try:
        issues = linters.gixy(_nginx_files(ctx), found[0])
    except linters.LinterUnavailable as exc:
        raise Skip(str(exc)) from None
    for issue in issues:
        severity = {"HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM}.get(
            str(issue.get("severity")).upper(), Severity.LOW
        )
        reason = str(issue.get("reason") or "").strip()
        yield Finding(
            f"{issue.get('plugin')}: {issue.get('summary')}" + (f" ({reason})" if reason else ""),
            found[0],
            severity=severity,
        )


@check(
    "RND007",
    area="deployment",
    severity="high",
    title="nginx -t rejects the rendered Nginx configuration",
    why="""Setup and push test the Nginx files on each host with `nginx -t` and stop when it fails; a file
    Nginx rejects, once installed, also breaks the next restart or reload of every site on the host.
    This check runs the same test on this machine, before a host sees the files: the site, its
    snippets and the catch-all servers, with a throwaway certificate in place of the real one.""",
    fix="""Fix the line nginx names in your template override (templates/ beside deploy.yaml), or the
    deploy.yaml value that reaches it; `deploy render --stdout` shows the rendered files.""",
    layers=("rendered", "tools"),
    references=("https://nginx.org/en/docs/switches.html",),
)
def nginx_test(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    from deploy.render.render import DEFAULT_NGINX_VERSION

    files = _nginx_files(ctx)
    if not files:
        return
    try:
        local = linters.nginx_version()
    except linters.LinterUnavailable as exc:
        if "not installed" in str(exc):
            raise Skip(
                "nginx is not installed here: the rendered Nginx files are tested on the hosts only"
            ) from None
        raise Skip(str(exc)) from None
    target = ctx.config.nginx.version or DEFAULT_NGINX_VERSION
    if local < tuple(int(p) for p in target.split(".")):
        raise Skip(
            f"this machine's nginx {'.'.join(map(str, local))} is older than the hosts' {target} "
            "(nginx.version): it would reject what they accept"
        )
    try:
        rejections = linters.nginx_test(files)
    except linters.LinterUnavailable as exc:
        raise Skip(str(exc)) from None
    for rejection in rejections:
        yield Finding(f"nginx -t: {rejection.message}", rejection.file, rejection.line)


@check(
    "RND008",
    area="deployment",
    severity="high",
    title="systemd-analyze verify rejects the rendered unit",
    why="""systemd ignores a line it cannot parse (a misspelt key, a bad value) with only a log message, so
    a hardening directive can silently not apply, and a unit whose command is missing fails to start
    on every host. `systemd-analyze verify` reports both before a host sees the unit.""",
    fix="""Fix the line systemd names in your templates/app.service.j2 (or job.service.j2, job.timer.j2)
    override or in `systemd.overrides`; a command outside the app's folders must exist on the hosts
    (and here).""",
    layers=("rendered", "tools"),
    references=(
        "https://www.freedesktop.org/software/systemd/man/latest/systemd-analyze.html#systemd-analyze%20verify%20FILE...",
    ),
)
def systemd_verify(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    rendered = ctx.rendered
    assert not isinstance(rendered, str)
    # What lies under the app's folder exists once push has run (the release, its virtualenv).
    base = (ctx.config.base_dir,)
    units = sorted((p, t) for p, t in rendered.items() if p.endswith((".service", ".timer")))
    for path, text in units:
        # A timer (a scheduled job's) is verified beside the service it starts.
        service = path.removesuffix(".timer") + ".service"
        timer = path.endswith(".timer") and service in rendered
        beside = {PurePosixPath(service).name: rendered[service]} if timer else {}
        try:
            rejections = linters.systemd_verify(PurePosixPath(path).name, text, base, beside)
        except linters.LinterUnavailable as exc:
            raise Skip(str(exc)) from None
        for rejection in rejections:
            yield Finding(f"systemd-analyze verify: {rejection.message}", path, rejection.line)


@check(
    "RND009",
    area="deployment",
    severity="high",
    title="The configs do not render",
    why="""render, setup and push render every config from deploy.yaml and the project's template
    overrides; an error in an override (a misspelt variable, a broken tag) stops all three, and every
    check of the rendered files is skipped.""",
    fix="""Fix the template line named (`deploy templates NAME` prints the shipped one to compare with).""",
    layers=("config",),
    references=("https://jinja.palletsprojects.com/en/stable/templates/",),
)
def renders(ctx: Context) -> Iterator[Finding]:
    failure = ctx.render_failure
    if failure is not None:
        yield Finding(failure.message, failure.file, failure.line)
