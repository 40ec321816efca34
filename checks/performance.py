"""Performance checks: Gunicorn workers for the target host, static files, caching, connection pools."""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Iterator
from pathlib import PurePosixPath

from deploy.checker import Context, Finding, Severity, check
from deploy.project.scan import CallSite
from deploy.project.source import Route

from ._helpers import config_file, in_served_code

GUNICORN_DESIGN = "https://docs.gunicorn.org/en/stable/design.html#how-many-workers"


@check(
    "PERF001",
    area="performance",
    severity="medium",
    title="Worker count does not fit the target host",
    why="""Gunicorn's sync workers serve one request each; the documented starting point is
    (2 x cores) + 1 of the host the app runs on. A fixed count copied from a laptop leaves a big server
    idle or overloads a small one.""",
    fix="""Use `gunicorn.workers: auto` (deploy computes (2 x cores) + 1 from each host's cores), or set
    `server.cores` to the hosts' real core count and a matching number.""",
    layers=("config",),
    references=(GUNICORN_DESIGN,),
)
def workers_for_host(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    workers = ctx.config.gunicorn.workers
    if workers == "auto":
        return
    cores = ctx.config.server.cores
    if cores is None:
        yield Finding(
            f"gunicorn.workers is fixed at {workers} and server.cores is unknown: use 'auto'",
            config_file(ctx),
            severity=Severity.LOW,
        )
    elif int(workers) != 2 * cores + 1:
        yield Finding(
            f"gunicorn.workers is {workers}; for {cores} cores (2 x {cores}) + 1 = {2 * cores + 1}",
            config_file(ctx),
        )


@check(
    "PERF002",
    area="performance",
    severity="low",
    title="Static files are not served by Nginx",
    why="""Without an `app.static` entry every CSS, JS and image request goes through a Gunicorn worker,
    which is then busy for slow clients instead of serving the app. Nginx serves files from disk with
    caching headers at a fraction of the cost.""",
    fix="""Add `app.static: {url: /static, dir: <your static folder>}` to deploy.yaml. The static folder
    is the app's: `static/` beside the module that calls `Flask(__name__)`, or its `static_folder=`
    (blueprints' static folders are not it). `app.static.dir` may be that folder or a folder inside it
    (when the app serves other parts of /static itself).""",
    layers=("config", "project"),
    references=(
        "https://flask.palletsprojects.com/en/stable/deploying/nginx/",
        "https://nginx.org/en/docs/http/ngx_http_core_module.html#alias",
    ),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 0 of its 1 findings at medium severity
    were right (0%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.""",
)
def static_by_nginx(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    folders = _app_static_folders(ctx)
    if folders is None:  # no Flask(...) whose static folder is known: any folder named static
        folders = sorted(
            p.rstrip("/")
            for p in ctx.project.files
            if p.endswith("/") and PurePosixPath(p.rstrip("/")).name == "static"
        )
    static = ctx.config.app.static
    if static is None:
        if folders:
            yield Finding(
                f"{folders[0]}/ exists but deploy.yaml has no app.static: Gunicorn serves it",
                config_file(ctx),
            )
    elif folders and not any(_inside(static.dir.rstrip("/"), f) for f in folders):
        yield Finding(
            f"app.static.dir is {static.dir!r} but the static folder is {folders[0]!r}", config_file(ctx)
        )


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def _app_static_folders(ctx: Context) -> list[str] | None:
    """The existing static folders of the project's Flask(...) apps; None when one of them is not known.

    `Flask(__name__)` serves `static/` beside its module; `static_folder="assets"` names another folder
    (relative to the module's folder); `static_folder=None` serves none. A blueprint's static folder is
    not the app's.
    """
    out: set[str] = set()
    apps = ctx.project.apps
    if not apps:
        return None
    for call in apps:
        value = call.keywords.get("static_folder")
        if value is None:
            name = "static"
        elif value.kind == "literal" and (value.literal is None or isinstance(value.literal, str)):
            if value.literal is None:
                continue
            name = str(value.literal)
        else:
            return None
        parent = PurePosixPath(call.file).parent
        folder = posixpath.normpath(str(parent / name))  # static_folder="../client/static"
        if folder.startswith(("/", "..")):
            return None
        if folder + "/" in ctx.project.files or (ctx.project.root / folder).is_dir():
            out.add(folder)
    return sorted(out)


@check(
    "PERF003",
    area="performance",
    severity="low",
    title="No caching configured",
    why="""Without a cache, repeated work (the same query, the same rendered fragment, the same API call)
    is redone on every request and the workers saturate early. The check fires only where there is such
    work: a view that runs a database query or an outside HTTP request (directly or through a helper).""",
    fix="""Configure Flask-Caching with a shared backend (`CACHE_TYPE="RedisCache"`), or cache pure
    functions with `functools.lru_cache`/`cachetools`; suppress this check with a reason if nothing is
    worth caching.""",
    references=("https://flask-caching.readthedocs.io/en/latest/",),
)
def caching(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    if project.uses("flask_caching", "cachetools", "redis", "pymemcache", "dogpile", "cachelib", "diskcache"):
        return
    if project.calls_named("lru_cache", "cache", "cached", "memoize"):
        return
    # Only repeated expensive work is worth a cache: a query or an outside HTTP call per request.
    work = sorted(repeated_work(ctx), key=lambda w: len(w[0].methods))  # GET-only views first
    if work:
        route, what = work[0]
        more = f" (and {len(work) - 1} more view{'s' if len(work) > 2 else ''})" if len(work) > 1 else ""
        yield Finding(
            f"no cache, and {route.rule} ({route.function}) runs {what} on every request{more}",
            route.file,
            route.line,
        )


_QUERY_LEAVES = frozenset(
    {"execute", "scalars", "scalar", "paginate", "get_or_404", "first_or_404", "one_or_404", "urlopen"}
)
_HTTP_CLIENTS = ("requests.", "httpx.", "urllib.request.", "aiohttp.")


def _expensive(call: CallSite) -> str | None:
    """'a database query' or 'an HTTP request' when a call is one, else None."""
    if call.name.startswith(_HTTP_CLIENTS) or call.leaf == "urlopen":
        return "an HTTP request"
    if ".query" in call.name or call.leaf in _QUERY_LEAVES or call.name.startswith("db.session."):
        return "a database query"
    return None


def repeated_work(ctx: Context) -> list[tuple[Route, str]]:
    """GET views (what a cache can serve) that run a database query or an outside HTTP request, directly
    or in a helper they call."""
    by_function: dict[tuple[str, str], list[CallSite]] = {}
    for call in ctx.project.calls:
        by_function.setdefault((call.file, call.function), []).append(call)
    helpers: dict[str, str] = {}
    for (_, function), calls in by_function.items():
        found = [w for w in map(_expensive, calls) if w]
        if function and found:
            helpers[function] = found[0]
    out: list[tuple[Route, str]] = []
    seen: set[tuple[str, str]] = set()
    for route in ctx.project.routes:
        if (route.file, route.function) in seen or "GET" not in route.methods:
            continue
        calls = by_function.get((route.file, route.function), [])
        found = [w for w in (_expensive(c) or helpers.get(c.leaf) for c in calls) if w]
        what = found[0] if found else None
        if what:
            seen.add((route.file, route.function))
            out.append((route, what))
    return out


_DRIVERS = (
    "psycopg2.connect",
    "psycopg.connect",
    "pymysql.connect",
    "MySQLdb.connect",
    "mysql.connector.connect",
    "pymongo.MongoClient",
    "MongoClient",
)


def _alembic_env(ctx: Context, file: str) -> bool:
    """Alembic's env.py: NullPool there is the standard recipe for a one-off migration run."""
    parts = PurePosixPath(file).parts
    if "migrations" in parts or "alembic" in parts:
        return True
    module = next((m for m in ctx.project.python if m.path == file), None)
    return (
        module is not None
        and module.tree is not None
        and any(
            (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "alembic")
            or (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "alembic" for a in node.names))
            for node in ast.walk(module.tree)
        )
    )


@check(
    "PERF004",
    area="performance",
    severity="medium",
    title="No database connection pooling",
    why="""Opening a database connection costs a TCP and TLS handshake and authentication, often more than
    the query; a connection per request also exhausts the server's connection limit under load.""",
    fix="""Use SQLAlchemy's engine (pooled by default; tune `SQLALCHEMY_ENGINE_OPTIONS={"pool_size": ...,
    "pool_pre_ping": True}`), or psycopg_pool / psycopg2.pool; never `NullPool` in production.""",
    references=(
        "https://docs.sqlalchemy.org/en/20/core/pooling.html",
        "https://www.psycopg.org/psycopg3/docs/advanced/pool.html",
    ),
)
def connection_pooling(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    for name, file, line in project.pool_classes:
        if name.endswith("NullPool") and not _alembic_env(ctx, file):
            yield Finding("poolclass=NullPool opens a new database connection for every checkout", file, line)
    if project.uses("psycopg2.pool", "psycopg_pool", "sqlalchemy", "flask_sqlalchemy", "peewee"):
        return
    for call in project.calls:
        if call.name in _DRIVERS and call.function:
            yield Finding(
                f"{call.name}() inside {call.function}() opens a connection without a pool",
                call.file,
                call.line,
            )


#: Threads (workers times threads) below which long-lived streams exhaust a gthread pool.
_THREADS_FOR_STREAMS = 100


@check(
    "PERF005",
    area="performance",
    severity="high",
    title="Streaming responses on sync workers",
    why="""A Gunicorn sync worker serves one request at a time, start to end. A streaming response
    (server-sent events, Flask-SSE, Flask-SocketIO, `stream_with_context`, a `Response` built from a
    generator) keeps its worker until the stream ends: with server-sent events that is as long as the
    page is open, so a few open tabs take every worker and the site stops answering; and a sync worker
    busy for longer than `gunicorn.timeout` is killed, cutting the stream.""",
    fix="""Serve the app with workers that hold many connections each: `gunicorn.worker_class: gevent`
    (with gevent in the requirements; Flask-SocketIO also needs `workers: 1` or a message queue), or
    `worker_class: gthread` with enough `threads` for the streams open at once; or move the stream to a
    separate process (a small async service behind its own Nginx location). Send
    `X-Accel-Buffering: no` with an event stream so that Nginx passes each event on at once.""",
    layers=("source", "config"),
    references=(
        "https://docs.gunicorn.org/en/stable/design.html#choosing-a-worker-type",
        "https://flask.palletsprojects.com/en/stable/patterns/streaming/",
        "https://flask-socketio.readthedocs.io/en/latest/deployment.html#gunicorn-web-server",
    ),
    details="""What counts: a `text/event-stream` response, Flask-SSE (`flask_sse`), Flask-SocketIO
    (`SocketIO(...)`) (high: open as long as the page is), and `stream_with_context()`,
    `stream_template()` or a `Response` built from a generator (low: the worker is held until the
    generator ends, and a stream longer than `gunicorn.timeout` is cut). Quiet with `worker_class`
    gevent, eventlet or uvicorn. With gthread workers (or sync workers given `threads` above 1, which
    Gunicorn runs as gthread) event streams and Socket.IO still hold a thread per open page: the check
    reports them while workers × threads is below 100 (Flask-SocketIO's documented threaded setup
    runs 100 threads); generator responses are quiet there. Only code the served entry point imports
    counts: a stream in a module it never imports (a Tornado side server, a vendored socket library) is
    not reported.""",
)
@in_served_code
def streaming_on_sync_workers(ctx: Context) -> Iterator[Finding]:
    from deploy.project.scan import streams

    assert ctx.config is not None
    g = ctx.config.gunicorn
    # Gunicorn turns sync workers with threads into gthread workers.
    if g.worker_class == "gthread" or (g.worker_class == "sync" and g.threads > 1):
        # Each open page holds a thread: only a pool of threads as large as the pages open at once does.
        workers = ctx.config.workers_for(None) or 3
        total = workers * g.threads
        if total >= _THREADS_FOR_STREAMS:
            return
        for stream in streams(ctx.project.python):
            if stream.kind != "stream":
                yield Finding(
                    f"{stream.how} on gthread workers: each open page holds one of the {total} threads "
                    f"({workers} × {g.threads}) for as long as it is open, so {total} open pages take every "
                    "thread and the site stops answering; use worker_class gevent or eventlet, or far more "
                    f"threads (at least {_THREADS_FOR_STREAMS})",
                    stream.file,
                    stream.line,
                )
        return
    if g.worker_class != "sync":
        return
    for stream in streams(ctx.project.python):
        if stream.kind == "stream":
            yield Finding(
                f"{stream.how} holds a sync worker until the generator ends; a stream longer than "
                f"gunicorn.timeout ({g.timeout} s) is cut off",
                stream.file,
                stream.line,
                severity=Severity.LOW,
            )
        else:
            yield Finding(
                f"{stream.how} on sync workers: each open page holds a worker for as long as it is open",
                stream.file,
                stream.line,
            )
