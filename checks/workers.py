"""The Gunicorn worker against the app it serves: ASGI apps, Flask async views, Flask-SocketIO."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from deploy.checker import Context, Finding, check
from deploy.config.workers import EXTRA_PACKAGES, WORKERS, is_asgi, worker
from deploy.project.frameworks import asgi_app, detect
from deploy.project.scan import Project, Value

from ._helpers import config_file, in_served_code, loads_config_from_environment, services_env
from .crosslayer import _host_counts
from .pitfalls import _SERVERS

_ROUTE_DECORATORS = {"route", "get", "post", "put", "patch", "delete"}
_FLASK_ASYNC_EXTRA = re.compile(r"^\s*flask\s*\[[^\]]*\basync\b", re.I | re.M)


def _async_flask_views(project: Project) -> Iterator[tuple[str, int, str]]:
    """(file, line, name) of `async def` views in modules that import Flask (not Quart)."""
    for module in project.python:
        if module.tree is None or "flask" not in module.text or "quart" in module.text:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.AsyncFunctionDef) and any(
                isinstance(d, ast.Call)
                and isinstance(d.func, ast.Attribute)
                and d.func.attr in _ROUTE_DECORATORS
                for d in node.decorator_list
            ):
                yield module.path, node.lineno, node.name


def _has_asgiref(project: Project) -> bool:
    if project.depends_on("asgiref"):
        return True
    return any(
        _FLASK_ASYNC_EXTRA.search(text) for path, text in project.files.items() if "requirements" in path
    )


@check(
    "XL020",
    area="deployment",
    severity="high",
    title="An app behind the wrong kind of worker",
    why="""Gunicorn's sync, gthread, gevent and eventlet workers call a WSGI app; Quart, FastAPI and
    Starlette apps are ASGI apps and fail on the first request behind them (`__call__() missing 1
    required positional argument: 'send'`). The other way round, an ASGI worker cannot call a Flask
    app. Flask runs an `async def` view only with `asgiref` installed (`flask[async]`); without it
    every request to the view is an error.""",
    fix="""Serve an ASGI app with `gunicorn.worker_class: asgi` (Gunicorn 24+) or
    `uvicorn_worker.UvicornWorker` (add uvicorn-worker to the requirements); a Flask app with a WSGI
    worker (sync, gthread, gevent). For Flask `async def` views, require `flask[async]` (it installs
    asgiref).""",
    layers=("source", "config", "project"),
    details="""The ASGI app is recognised by a module-level `Quart(...)`, `FastAPI(...)` or
    `Starlette(...)` in code that imports that framework (or, without one, by the framework among the
    imports). `deploy init` writes the ASGI worker for such a project.""",
    references=(
        "https://docs.gunicorn.org/en/stable/asgi.html",
        "https://github.com/Kludex/uvicorn-worker",
        "https://flask.palletsprojects.com/en/stable/async-await/",
    ),
)
@in_served_code
def wrong_worker(ctx: Context) -> Iterator[Finding]:
    if ctx.config is None:
        return
    worker_class = ctx.config.gunicorn.worker_class
    found = asgi_app(ctx.project)
    if found is not None and not is_asgi(worker_class):
        framework, _entry, file, line = found
        yield Finding(
            f"{framework} is an ASGI app, but gunicorn.worker_class {worker_class} is a WSGI worker",
            file or config_file(ctx),
            line or None,
        )
    elif found is None and is_asgi(worker_class) and ctx.project.apps:
        app = ctx.project.apps[0]
        yield Finding(f"a Flask (WSGI) app behind the ASGI worker {worker_class}", app.file, app.line)
    if found is None and not _has_asgiref(ctx.project):
        for file, line, name in _async_flask_views(ctx.project):
            yield Finding(
                f"async view {name}() without asgiref (flask[async]) in the requirements", file, line
            )


def _several_hosts(ctx: Context) -> str | None:
    """'N hosts (where)' for the most hosts deploy.yaml or one of its environments has, if above one."""
    if ctx.config is None:
        return None
    several = [(where, n) for where, n in _host_counts(ctx) if n > 1]
    if not several:
        return None
    where, count = max(several, key=lambda item: item[1])
    return f"{count} hosts ({where})"


@check(
    "XL021",
    area="deployment",
    severity="high",
    title="Flask-SocketIO in several processes",
    why="""Flask-SocketIO keeps each client's session in the process that accepted it. Gunicorn spreads
    requests over its workers with no stickiness, so with more than one worker a client's next request
    lands in a process that never saw its session and the connection fails ("Invalid session"). On
    several hosts, an event emitted on one host never reaches clients connected to another, unless the
    processes share a message queue.""",
    fix="""Run one worker per slot with Flask-SocketIO's async worker: `gunicorn: {workers: 1,
    worker_class: geventwebsocket.gunicorn.workers.GeventWebSocketWorker}` (or gevent; or gthread with
    `threads: 100`); on several hosts, pass `message_queue="redis://..."` to SocketIO() and keep each
    client on one host at the load balancer.""",
    layers=("source", "config"),
    references=(
        "https://flask-socketio.readthedocs.io/en/latest/deployment.html",
        "https://docs.gunicorn.org/en/stable/design.html",
    ),
)
def socketio_processes(ctx: Context) -> Iterator[Finding]:
    if ctx.config is None:
        return
    stack = detect(ctx.project)
    if not stack.socketio:
        return
    file, line = stack.where or (config_file(ctx), None)
    workers = ctx.config.gunicorn.workers
    if workers != 1:
        count = "2 x cores + 1 (auto)" if workers == "auto" else str(workers)
        yield Finding(f"Flask-SocketIO with {count} Gunicorn workers per slot (it needs 1)", file, line)
    several = _several_hosts(ctx)
    if several is not None and not stack.socketio_queue:
        yield Finding(f"Flask-SocketIO on {several} without a message_queue", file, line)


#: Gunicorn versions to test a requirement's specifier against (what pip could install).
_GUNICORN_VERSIONS = [Version(f"{m}.{n}.{p}") for m in range(19, 36) for n in range(4) for p in range(4)]


def _gunicorn_installed(project: Project) -> tuple[Version, str, str, int] | None:
    """The newest Gunicorn the requirements allow (what pip installs), the specifier, and where."""
    for r in project.requirements:
        if r.name.lower() == "gunicorn":
            try:
                spec = SpecifierSet(r.spec.split(";")[0].strip())
            except InvalidSpecifier:
                return None
            allowed = list(spec.filter(_GUNICORN_VERSIONS))
            return (max(allowed), str(spec) or "any", r.file, r.line) if allowed else None
    return None


def _gunicorn_extra(project: Project, extra: str) -> bool:
    """Whether a requirements file asks for `gunicorn[extra]` (the parsed requirements drop extras)."""
    wanted = re.compile(rf"^\s*gunicorn\s*\[[^\]]*\b{re.escape(extra)}\b", re.I | re.M)
    return any(wanted.search(text) for path, text in project.files.items() if "requirements" in path)


@check(
    "DEP020",
    area="deployment",
    severity="high",
    title="The Gunicorn worker is not installed",
    why="""Gunicorn loads its worker class from the release's virtualenv, which has only what the
    requirements list: a worker whose package is missing (uvicorn-worker, gevent, eventlet,
    gevent-websocket) stops every slot at start, and the push fails its health gate. Gunicorn's own
    ASGI worker exists from Gunicorn 24; its eventlet worker was removed in Gunicorn 26; its gevent
    worker imports `packaging`, which Gunicorn 26.1 and later install only with `gunicorn[gevent]`.""",
    fix="""Add gunicorn itself when the requirements lack it (uvicorn alone does not run under deploy's
    unit), and the worker's package, pinned, to the requirements (`uvicorn-worker`, `gevent`,
    `gevent-websocket`; `gunicorn[gevent]` for the gevent workers), or pin a Gunicorn that has the
    worker (`gunicorn>=24` for `asgi`, below 26 for `eventlet`), or choose another
    `gunicorn.worker_class`.""",
    layers=("config", "project"),
    references=(
        "https://docs.gunicorn.org/en/stable/settings.html#worker-class",
        "https://github.com/Kludex/uvicorn-worker",
    ),
)
def worker_not_installed(ctx: Context) -> Iterator[Finding]:
    if ctx.config is None or not (ctx.project.requirements or ctx.project.dependencies):
        return
    name = ctx.config.gunicorn.worker_class
    w = worker(name)
    # Without any server PIT001 says it for a Flask app; uvicorn alone (a FastAPI project's) is not one
    # deploy runs: the unit starts the release's gunicorn.
    if not ctx.project.depends_on("gunicorn") and not (
        ctx.project.apps and not ctx.project.depends_on(*_SERVERS)
    ):
        since = ">=" + ".".join(map(str, w.gunicorn_since)) if w.gunicorn_since else ""
        yield Finding(
            f"gunicorn is not among the requirements: the systemd unit deploy renders runs gunicorn{since} "
            f"(worker_class {name}) from the release's virtualenv",
            config_file(ctx),
        )
    if name not in WORKERS:
        return
    extra = w.extra is not None and _gunicorn_extra(ctx.project, w.extra)
    if (
        w.package is not None
        and not ctx.project.depends_on(w.package)
        and not (extra and w.package in EXTRA_PACKAGES.get(w.extra or "", ()))
    ):
        yield Finding(
            f"gunicorn.worker_class {name} needs {w.package}, which is not among the requirements",
            config_file(ctx),
        )
    installed = _gunicorn_installed(ctx.project)
    if installed is None:
        return
    version, spec, file, line = installed
    if w.gunicorn_since is not None and version < Version(".".join(map(str, w.gunicorn_since))):
        since = ".".join(map(str, w.gunicorn_since))
        yield Finding(
            f"worker_class {name} needs gunicorn>={since}; the requirements allow {spec}", file, line
        )
    if w.extra is not None and version >= Version("26.1") and not extra:
        for package in EXTRA_PACKAGES.get(w.extra, ()):
            if package != w.package and not ctx.project.depends_on(package):
                yield Finding(
                    f"worker_class {name} imports {package}, which gunicorn ({spec}) installs only with its "
                    f"{w.extra} extra: require gunicorn[{w.extra}]",
                    file,
                    line,
                )
    if w.gunicorn_until is not None and version.major > w.gunicorn_until:
        yield Finding(
            f"worker_class {name} was removed in gunicorn {w.gunicorn_until + 1}; the requirements allow "
            f"{spec} (pin gunicorn<{w.gunicorn_until + 1}, or use gevent)",
            file,
            line,
        )


#: Config keys and keyword arguments that name a Celery broker or result backend, or RQ's Redis.
_BROKER_KEYS = (
    "CELERY_BROKER_URL",
    "BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "RQ_REDIS_URL",
    "REDIS_URL",
    "broker_url",
    "result_backend",
)
_LOCAL_URL = re.compile(r"^[a-z+]+://(?:[^@/]*@)?(?:localhost|127\.\d+\.\d+\.\d+|\[::1\])(?:[:/]|$)", re.I)


def _local(value: Value, given: set[str]) -> str | None:
    """The local URL a value is in production, if it is one (not a fallback deploy.yaml's env overrides)."""
    if value.kind == "literal" and isinstance(value.literal, str) and _LOCAL_URL.match(value.literal):
        return value.literal
    if (
        value.kind == "env"
        and value.has_default
        and value.env_name not in given
        and isinstance(value.default, str)
        and _LOCAL_URL.match(value.default)
    ):
        return value.default
    return None


@check(
    "XL022",
    area="deployment",
    severity="high",
    title="A job queue on localhost with several hosts",
    why="""A Celery broker or an RQ Redis at `localhost` is a different server on every host: jobs the web
    process enqueues on one host are run only by that host's workers (or by none, where no worker runs),
    a scheduler singleton feeds only its own host, and results stored on one host are missing on the
    others.""",
    fix="""Point every host at one broker by a name or address they all reach (`services: {redis: {}}`
    gives them one, in `REDIS_URL`), read from the environment: `broker_url =
    os.environ["CELERY_BROKER_URL"]`, `Redis.from_url(os.environ["REDIS_URL"])`.""",
    layers=("source", "config"),
    details="""What counts: a `Celery(broker=..., backend=...)` argument, a config key naming a broker or
    RQ's Redis (`CELERY_BROKER_URL`, `broker_url`, `result_backend`, `RQ_REDIS_URL`, `REDIS_URL`), a
    `Redis(host=...)` or `Redis.from_url(...)` call, and the same names in deploy.yaml `app.env`, when
    the value, or the fallback of an environment variable deploy.yaml does not set, is a URL at
    localhost, 127.0.0.0/8 or ::1; only when deploy.yaml (with `-e ENV` overlaid) or one of its
    `environments:` has two hosts or more. Config keys are left
    alone when the app also loads its config from the environment or a file (`from_envvar`,
    `from_prefixed_env`): production is expected to replace such defaults there.""",
    references=(
        "https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-url",
        "https://python-rq.org/docs/connections/",
    ),
)
@in_served_code
def local_queue(ctx: Context) -> Iterator[Finding]:
    several = _several_hosts(ctx)
    if ctx.config is None or several is None:
        return
    hosts = several
    app = ctx.config.app
    given = set(app.env) | set(app.secrets) | services_env(ctx)
    for key, text in sorted(app.env.items()):
        if key in _BROKER_KEYS and _LOCAL_URL.match(text):
            yield Finding(f"app.env {key} is {text}, a different server on each of {hosts}", config_file(ctx))
    project = ctx.project
    # A config value is a default when the app reads its config from the environment or a file too
    # (`from_envvar`, `from_prefixed_env`): production replaces it there, and app.env was seen above.
    settings = [] if loads_config_from_environment(ctx) else _BROKER_KEYS
    for s in [s for key in settings for s in project.setting(key)]:
        url = _local(s.value, given)
        if url is not None:
            yield Finding(f"{s.key} is {url}, a different server on each of {hosts}", s.file, s.line)
    for call in project.calls_named(
        "Celery",
        "celery.Celery",
        "Redis",
        "StrictRedis",
        "redis.Redis",
        "Redis.from_url",
        "redis.Redis.from_url",
        "from_url",
    ):
        if call.leaf in ("Redis", "StrictRedis") and not call.args and not call.keywords:
            yield Finding(
                f"{call.name}() connects to localhost, a different server on each of {hosts}",
                call.file,
                call.line,
            )
            continue
        values = [call.keywords.get(k) for k in ("broker", "backend", "host", "url")]
        if call.leaf == "from_url" and call.args:
            values.append(call.args[0])
        for value in values:
            url = _local(value, given) if value is not None else None
            if (
                value is not None
                and call.leaf == "Redis"
                and value.literal in ("localhost", "127.0.0.1", "::1")
            ):
                url = f"host {value.literal}"
            if url is not None:
                yield Finding(
                    f"{call.name}() at {url}, a different server on each of {hosts}",
                    call.file,
                    call.line,
                )
