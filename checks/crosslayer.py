"""Cross-layer checks: what no single linter sees (the code against deploy.yaml and rendered files)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import PurePosixPath

from deploy.checker import Context, Finding, check

from ._helpers import config_file, in_served_code, last_setting
from .pitfalls import given_env, sqlite_connects, sqlite_settings
from .rendered import nginx_headers

_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
_SQLITE_URL = re.compile(r"(?i)^sqlite(\+\w+)?:")
_IN_PROCESS_CACHES = {"simple", "simplecache", "null", "nullcache", "flask_caching.backends.simplecache"}


def nginx_bytes(size: str) -> int:
    """Nginx size syntax (`16m`, `512k`, `1g`, `0`) in bytes."""
    match = _SIZE.match(size)
    if not match:
        raise ValueError(f"not an nginx size: {size!r}")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]


def _workers(ctx: Context) -> int | None:
    """How many worker processes the config runs (auto is at least three)."""
    assert ctx.config is not None
    if ctx.config.gunicorn.workers == "auto":
        return ctx.config.workers_for(None) or 3
    return int(ctx.config.gunicorn.workers)


@check(
    "XL001",
    area="security",
    severity="high",
    title="Secure cookies without HTTPS",
    why="""SESSION_COOKIE_SECURE=True while deploy.yaml serves plain HTTP: browsers never send the cookie
    back, so every login and every form with a CSRF token silently fails.""",
    fix="""Turn on HTTPS (`server.tls`); only for a deliberate HTTP-only site, set SESSION_COOKIE_SECURE
    from the environment and turn it off there.""",
    layers=("source", "config"),
    references=("https://flask.palletsprojects.com/en/stable/config/#SESSION_COOKIE_SECURE",),
)
def secure_cookie_without_tls(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    if ctx.config.server.tls is not False:
        return
    s = last_setting(ctx, "SESSION_COOKIE_SECURE")
    on = s is not None and (
        s.value.is_true or (s.value.kind == "env" and s.value.default not in ("", "false", "0"))
    )
    if s is not None and on:
        yield Finding(
            "SESSION_COOKIE_SECURE is on but server.tls is off: the cookie never comes back", s.file, s.line
        )


@check(
    "XL002",
    area="security",
    severity="low",
    title="MAX_CONTENT_LENGTH exceeds client_max_body_size",
    why="""Nginx rejects bodies above client_max_body_size with its own bare 413 page before Flask sees
    them, so the app's larger MAX_CONTENT_LENGTH (and its error handling) never applies: uploads between
    the two limits fail with a page the app does not control.""",
    fix="""Make `nginx.client_max_body_size` at least MAX_CONTENT_LENGTH (or lower MAX_CONTENT_LENGTH).""",
    layers=("source", "config"),
    references=(
        "https://nginx.org/en/docs/http/ngx_http_core_module.html#client_max_body_size",
        "https://flask.palletsprojects.com/en/stable/config/#MAX_CONTENT_LENGTH",
    ),
)
def body_limits(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    s = last_setting(ctx, "MAX_CONTENT_LENGTH")
    if s is None or s.value.kind != "literal" or not isinstance(s.value.literal, int):
        return
    limit = nginx_bytes(ctx.config.nginx.client_max_body_size)
    if limit != 0 and s.value.literal > limit:
        yield Finding(
            f"MAX_CONTENT_LENGTH is {s.value.literal} bytes but nginx.client_max_body_size is "
            f"{ctx.config.nginx.client_max_body_size} ({limit} bytes)",
            s.file,
            s.line,
        )


@check(
    "XL003",
    area="performance",
    severity="low",
    title="Per-process state with several workers",
    why="""Each Gunicorn worker is its own process: an in-process cache (Flask-Caching SimpleCache) holds a
    different copy per worker (stale, inconsistent pages) and SQLite takes one writer at a time ("database
    is locked" under concurrent writes).""",
    fix="""Use a shared cache (`CACHE_TYPE="RedisCache"`) and a database server (PostgreSQL); keep state the
    views change in the database or in Redis (rate limits: `storage_uri="redis://..."`); or run a
    single worker with threads (`workers: 1`, `worker_class: gthread`).""",
    layers=("source", "config"),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 7 of its 8 findings at high severity
    were right (87%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.

    What counts, when deploy.yaml runs two or more workers: an in-process cache (`CACHE_TYPE`
    `SimpleCache` or `NullCache`); SQLite; a rate limiter keeping its counters in memory
    (`Limiter(storage_uri="memory://")`: every worker counts on its own, so the limit is multiplied by the
    workers); a TinyDB JSON file (no locking between processes: concurrent writes are lost); and a
    module-level dict, list or set that a view changes at runtime, directly or through a function of
    the same module it calls (`datasets[name] = ...`, `sessions.pop(key)`): each worker has its own copy,
    so what one request stored is missing in the next. Containers filled only at import or start
    (registries), UPPER_CASE constants and names a function binds locally do not count, nor an SQLite
    fallback of a variable deploy.yaml gives (app.env, app.secrets, `services: postgres`).""",
    references=(
        "https://flask-caching.readthedocs.io/en/latest/#simplecache",
        "https://www.sqlite.org/lockingv3.html",
    ),
)
@in_served_code
def per_process_state(ctx: Context) -> Iterator[Finding]:
    workers = _workers(ctx)
    if workers is None or workers < 2:
        return
    assert ctx.config is not None
    auto = ctx.config.gunicorn.workers == "auto" and ctx.config.workers_for(None) is None
    count = "2 × cores + 1 workers (auto)" if auto else f"{workers} workers"
    for s in ctx.project.setting("CACHE_TYPE"):
        if s.value.kind == "literal" and str(s.value.literal).lower() in _IN_PROCESS_CACHES:
            yield Finding(f"CACHE_TYPE={s.value.literal!r} is per process, with {count}", s.file, s.line)
    given = given_env(ctx)
    for key, s in sqlite_settings(ctx.project, ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL")):
        if s.value.kind == "env" and s.value.env_name in given:
            continue  # deploy.yaml gives the variable: the SQLite fallback never applies
        yield Finding(f"SQLite ({key}) with {count} writing to it", s.file, s.line)
    for call in sqlite_connects(ctx.project):
        yield Finding(f"SQLite with {count} writing to it", call.file, call.line)
    from deploy.project.scan import process_state

    for state in process_state(ctx.project.python):
        if state.changed_at is not None:
            message = (
                f"{state.what} is changed by a view (line {state.changed_at}): each of the {count} has its "
                "own copy, so what one request stores the next may not see"
            )
        elif state.what.startswith("TinyDB"):
            message = f"{state.what} written by {count} without locking: concurrent writes are lost"
        else:
            message = f"{state.what} keeps its counters per process, with {count}: limits multiply"
        yield Finding(message, state.file, state.line)


def _host_counts(ctx: Context) -> list[tuple[str, int]]:
    """(where, how many hosts) for deploy.yaml's own server.hosts and each environment's overlay."""
    assert ctx.config is not None
    label = f"environment {ctx.config.environment}" if ctx.config.environment else "deploy.yaml"
    counts = [(label, len(ctx.config.server.hosts))]
    for name, overlay in sorted((ctx.config.environments or {}).items()):
        hosts = (overlay.get("server") or {}).get("hosts") if isinstance(overlay, dict) else None
        if isinstance(hosts, list) and name != ctx.config.environment:
            counts.append((f"environment {name}", len(hosts)))
    return counts


@check(
    "XL006",
    area="pitfalls",
    severity="critical",
    title="SQLite on several hosts",
    why="""Each host has its own disk, so each has its own SQLite database: users see different data
    depending on the host that answers, what one host stores the others never see, and the release
    command (migrations) runs on the first host only, so the other hosts' databases are never migrated.""",
    fix="""Use one database server that every host reaches (PostgreSQL or MySQL, its URL from
    `os.environ["DATABASE_URL"]`); or serve the app from one host.""",
    layers=("source", "config"),
    details="""What counts as SQLite: an `sqlite:` URL in `SQLALCHEMY_DATABASE_URI`, `DATABASE_URL` or
    `DATABASE_URI` however it is assembled (`"sqlite:///" + basedir + "/app.db"`, an f-string,
    `.format()`), also as the fallback of an environment variable (`os.environ.get("DATABASE_URL",
    "sqlite:///app.db")`) unless deploy.yaml gives that variable (`app.env` or `app.secrets`); a
    `DATABASE`-style key naming a `.db` or `.sqlite` file (Flask's tutorial:
    `DATABASE=os.path.join(app.instance_path, "flaskr.sqlite")`); `sqlite3.connect()`; SQLAlchemy
    `create_engine()` given an SQLite file URL; and an `sqlite:` URL in deploy.yaml `app.env` itself.
    Connections to `:memory:` or to a file in a `tempfile` folder do not count. The hosts counted: those
    of deploy.yaml (with `-e ENV` overlaid) and those of every entry of `environments:`; with one host,
    PIT005 and PIT006 still apply.""",
    references=("https://www.sqlite.org/whentouse.html",),
)
@in_served_code
def sqlite_on_several_hosts(ctx: Context) -> Iterator[Finding]:
    from deploy.config.loader import line_of
    from deploy.project.scan import sqlite_engines

    assert ctx.config is not None
    several = [(where, n) for where, n in _host_counts(ctx) if n > 1]
    if not several:
        return
    where, count = max(several, key=lambda item: item[1])
    hosts = f"{count} hosts ({where})"
    app = ctx.config.app
    given = given_env(ctx)
    for key, value in sorted(app.env.items()):
        if _SQLITE_URL.match(value.strip()):
            file = config_file(ctx)
            line, _ = line_of(ctx.root / file, ctx.environment, ("app", "env", key))
            yield Finding(f"SQLite ({key} in app.env) on {hosts}: one database per host", file, line)
    for key, s in sqlite_settings(ctx.project):
        if s.value.kind == "env" and s.value.env_name in given:
            continue  # deploy.yaml gives the variable: the SQLite fallback never applies
        fallback = f", the default when {s.value.env_name} is unset" if s.value.kind == "env" else ""
        yield Finding(f"SQLite ({key}{fallback}) on {hosts}: one database per host", s.file, s.line)
    for call in sqlite_connects(ctx.project):
        yield Finding(f"SQLite (sqlite3.connect) on {hosts}: one database per host", call.file, call.line)
    for file, line in sqlite_engines(ctx.project.python):
        yield Finding(f"SQLite (create_engine) on {hosts}: one database per host", file, line)


_DEBUG_VARS = {"FLASK_DEBUG", "DEBUG", "FLASK_ENV"}


#: A reference to a variable, `$NAME`, `${NAME}` or with a default: `${NAME:-false}`, `${NAME-false}`.
_REFERENCE = re.compile(r"^\$(?:(\w+)|\{(\w+)(?::?-([^}]*))?\})$")


def _debug_value(key: str, value: str, defaults: dict[str, str] | None = None) -> bool:
    """Whether `value` turns debug mode on; a variable reference by its default (its `${X:-default}`,
    or the Dockerfile's `ARG X=default`), and not at all without one: what is passed in decides."""
    value = value.strip().strip("\"'")
    reference = _REFERENCE.match(value)
    if reference is not None:
        name = reference.group(1) or reference.group(2)
        default = reference.group(3) if reference.group(3) is not None else (defaults or {}).get(name)
        return default is not None and _debug_value(key, default)
    value = value.lower()
    if key == "FLASK_ENV":
        return value == "development"
    return value not in ("", "0", "false", "no", "off")


@check(
    "XL004",
    area="security",
    severity="critical",
    title="Debug mode switched on by the environment",
    why="""FLASK_DEBUG=1 (or FLASK_ENV=development) in a Dockerfile, a .env file, a systemd unit or a
    compose file turns on the interactive debugger in production even when the code is clean.""",
    fix="""Remove FLASK_DEBUG / FLASK_ENV from every file that reaches production; use `flask run --debug`
    locally.""",
    details="""A value passed through from a variable counts by its default: `${FLASK_DEBUG:-false}` in a
    compose file, `ENV FLASK_DEBUG="${FLASK_DEBUG}"` after `ARG FLASK_DEBUG="false"` in a Dockerfile
    are off; `${FLASK_DEBUG}` with no default anywhere is decided by what is passed in, and not reported.""",
    layers=("project",),
    references=("https://flask.palletsprojects.com/en/stable/config/#DEBUG",),
)
def debug_in_environment(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    for path, instructions in project.dockerfiles.items():
        defaults: dict[str, str] = {}  # ARG NAME=default, for ENV NAME=${NAME}
        for ins in instructions:
            if ins.keyword == "ARG":
                for word in shlex.split(ins.args) if ins.args.count('"') % 2 == 0 else ins.args.split():
                    name, equals, default = word.partition("=")
                    if equals:
                        defaults[name] = default
            if ins.keyword == "ENV":
                from deploy.project.scan import dockerfile_env

                for key, value in dockerfile_env(ins):
                    if key in _DEBUG_VARS and _debug_value(key, value, defaults):
                        yield Finding(f"{key}={value} in the image", path, ins.line)
            if ins.keyword in ("CMD", "ENTRYPOINT") and "--debug" in ins.args:
                yield Finding("the command passes --debug", path, ins.line)
    for env in project.dotenv:
        if env.key in _DEBUG_VARS and _debug_value(env.key, env.value):
            yield Finding(f"{env.key} turns on debug mode", env.file, env.line)
    for path, text in project.glob(
        ".service", "compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml", "Procfile"
    ):
        for number, line in enumerate(text.splitlines(), start=1):
            for key in _DEBUG_VARS:
                match = re.search(rf"\b{key}\s*[=:]\s*\"?([^\s\"]+)", line)
                if match and _debug_value(key, match.group(1)):
                    yield Finding(f"{key}={match.group(1)} in {PurePosixPath(path).name}", path, number)
            if "flask" in line and "--debug" in line:
                yield Finding("the command passes --debug", path, number)


_TALISMAN_HEADERS = (
    "content-security-policy",
    "strict-transport-security",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
)


@check(
    "XL005",
    area="security",
    severity="low",
    title="The same header is set by the app and by Nginx",
    why="""With `add_header` in Nginx and the same header from the app, responses carry it twice: browsers
    combine two Content-Security-Policy headers (the strictest wins, pages break), and disagreeing
    X-Frame-Options values are ignored altogether.""",
    fix="""Set each security header in one place: leave them to the rendered Nginx site, and remove them from
    the app (or drop Flask-Talisman's copies, `Talisman(app, content_security_policy=None, ...)`).""",
    layers=("source", "rendered"),
    references=(
        "https://www.w3.org/TR/CSP3/#multiple-policies",
        "https://nginx.org/en/docs/http/ngx_http_headers_module.html#add_header",
    ),
)
def duplicate_headers(ctx: Context) -> Iterator[Finding]:
    nginx = {name.lower() for name in nginx_headers(ctx)}
    seen: set[str] = set()
    for header, file, line in ctx.project.after_request_headers:
        if header.lower() in nginx and header.lower() not in seen:
            seen.add(header.lower())
            yield Finding(f"the app sets {header}, and so does the Nginx site", file, line)
    for call in ctx.project.calls_named("Talisman"):
        both = sorted(h for h in _TALISMAN_HEADERS if h in nginx and h not in seen)
        if both:
            yield Finding(
                f"Flask-Talisman and the Nginx site both set: {', '.join(both)}", call.file, call.line
            )
