"""The frameworks around a project's web app that decide how it is served and what else runs beside it.

ASGI frameworks (Quart, FastAPI, Starlette) need an ASGI worker; Flask-SocketIO needs a worker that
holds many connections, one per slot; Celery, RQ, rq-scheduler and APScheduler need processes of their
own (a worker, and exactly one scheduler). Read from the imports and the declared requirements; used
by `deploy init` (the config it writes) and by the checks (an app behind the wrong worker).
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass, field, replace

from deploy.config.workers import worker
from deploy.project.scan import Project, streams
from deploy.project.source import PythonFile

#: ASGI frameworks: the import that marks each, the distribution, and the class that builds an app.
ASGI_FRAMEWORKS = (
    ("quart", "quart", "Quart"),
    ("fastapi", "fastapi", "FastAPI"),
    ("starlette", "starlette", "Starlette"),
)


@dataclass(frozen=True)
class Process:
    """One `processes:` entry `deploy init` writes (SCHEMA: command, singleton, stop and ready)."""

    name: str
    command: str
    why: str
    singleton: bool = False
    stop_timeout: int | None = None
    ready: str | None = None


@dataclass
class Stack:
    """What runs the app and beside it."""

    #: The ASGI framework of the app ("FastAPI"), or None for a WSGI app.
    asgi: str | None = None
    #: `module:name` of a module-level ASGI app, when there is one.
    asgi_entry: str | None = None
    #: Flask-SocketIO is used; and whether a message queue connects its processes.
    socketio: bool = False
    socketio_queue: bool = False
    #: Where (file, line) the evidence for `asgi` / `socketio` is.
    where: tuple[str, int] | None = None
    processes: list[Process] = field(default_factory=list)
    #: app.shared folders the processes write (beat's schedule).
    shared: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _imports(module: PythonFile) -> set[str]:
    out: set[str] = set()
    if module.tree is None:
        return out
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def _top(imports: set[str]) -> set[str]:
    return {name.split(".")[0] for name in imports}


def _dotted(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _app_assignments(module: PythonFile, classes: set[str]) -> list[tuple[str, int]]:
    """Module-level `name = Class(...)` assignments of one of `classes`: (name, line)."""
    out: list[tuple[str, int]] = []
    for node in module.tree.body if module.tree is not None else []:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
        ):
            func = node.value.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in classes:
                out.append((node.targets[0].id, node.lineno))
    return out


def asgi_app(project: Project) -> tuple[str, str | None, str, int] | None:
    """(framework, `module:name` or None, file, line) of the project's ASGI app, if it builds one."""
    for package, _dist, cls in ASGI_FRAMEWORKS:
        for module in project.python:
            if package in _top(_imports(module)):
                found = _app_assignments(module, {cls})
                if found:
                    name, line = found[0]
                    return cls, f"{_dotted(module.path)}:{name}", module.path, line
    for package, dist, cls in ASGI_FRAMEWORKS:
        if project.uses(package) or (package != "starlette" and project.depends_on(dist)):
            return cls, None, "", 0
    return None


def _socketio(project: Project) -> tuple[bool, bool, tuple[str, int] | None]:
    calls = project.calls_named("SocketIO", "flask_socketio.SocketIO")
    if not calls and not project.uses("flask_socketio"):
        return False, False, None
    queue = any("message_queue" in c.keywords for c in calls)
    where = (calls[0].file, calls[0].line) if calls else None
    return True, queue, where


def _modules_importing(project: Project, package: str) -> list[PythonFile]:
    return [m for m in project.python if package in _top(_imports(m))]


def _celery_factories(module: PythonFile) -> set[str]:
    """The module's functions that build a Celery app (`def create_celery_app(app): ... Celery(...)`)."""
    return {
        node.name
        for node in (module.tree.body if module.tree is not None else [])
        if isinstance(node, ast.FunctionDef)
        and any(
            isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) or getattr(n.func, "attr", None)) == "Celery"
            for n in ast.walk(node)
        )
    }


def _celery_app(project: Project) -> tuple[PythonFile, str] | None:
    """The module that builds the Celery app at its top, and the `-A` that finds it: `celery_app =
    Celery(...)`; else `celery_app = create_celery_app()` with a function of that module that builds it
    (named then, `-A pkg.module.celery_app`: Celery finds only `app`, `celery` or an instance itself)."""
    modules = _modules_importing(project, "celery")
    for module in modules:
        if _app_assignments(module, {"Celery"}):
            return module, _dotted(module.path)
    for module in modules:
        built = _app_assignments(module, _celery_factories(module))
        if built:
            name = built[0][0]
            return module, _dotted(module.path) + ("" if name in ("app", "celery") else f".{name}")
    return None


#: The app.shared folder beat keeps its schedule in (the release is read-only to the app, and so is
#: the shared folder's root: only its app.shared folders are the app's own; check XL035).
BEAT_FOLDER = "celerybeat"


def _celery(project: Project, notes: list[str]) -> list[Process]:
    """A worker and beat, beat's schedule in the shared folder BEAT_FOLDER."""
    found = _celery_app(project)
    if found is None:
        return []
    module, target = found
    if not any(word in module.text for word in ("broker", "config_from_object", "conf.update")):
        notes.append(
            f"the Celery app in {module.path} is configured elsewhere (the Flask app's factory?): "
            f"`celery -A {target}` must find it configured; point -A at a module that builds the app"
        )
    return [
        Process(
            "worker",
            f"celery -A {target} worker --loglevel=INFO",
            "Celery worker; SIGTERM is its warm shutdown",
            stop_timeout=600,
            ready="celery",
        ),
        Process(
            "beat",
            f"celery -A {target} beat --loglevel=INFO -s {BEAT_FOLDER}/celerybeat-schedule",
            "Celery beat: exactly one, or every task is sent twice",
            singleton=True,
        ),
    ]


#: Calls that put a job on an RQ queue (a project that only reads queues, a dashboard, runs no worker).
_ENQUEUE = {"enqueue", "enqueue_call", "enqueue_in", "enqueue_at", "enqueue_many"}


def _enqueues(project: Project) -> bool:
    """Whether the project puts jobs on RQ queues (`queue.enqueue(...)`, rq's `@job` decorator)."""
    for module in project.python:
        for node in ast.walk(module.tree) if module.tree is not None else []:
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in _ENQUEUE:
                return True
            if isinstance(node, ast.ImportFrom) and node.module == "rq.decorators":
                return True
    return False


#: A queue name as a shell word needs no quoting.
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def _queue_name(call: ast.Call) -> str | None:
    """The name an RQ `Queue(...)` call (or rq's `@job(...)`) gives its queue: the first argument or
    `name=`/`queue=`, `default` without one; None when it is not a literal."""
    given = (
        call.args[0]
        if call.args
        else next((k.value for k in call.keywords if k.arg in ("name", "queue")), None)
    )
    if given is None:
        return "default"
    if (
        isinstance(given, ast.Constant)
        and isinstance(given.value, str)
        and _QUEUE_NAME.fullmatch(given.value)
    ):
        return given.value
    return None


def rq_queues(project: Project) -> list[str]:
    """The queues the project's RQ code names (`Queue("mail", connection=...)`, `@job("mail")`), in the
    order they appear; `default` when it names none: a worker listens to these or its jobs wait forever."""
    names: list[str] = []
    for module in project.python:
        if module.tree is None or "rq" not in _top(_imports(module)):
            continue
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            named = func == "Queue" or (func == "job" and "rq.decorators" in module.text)
            name = _queue_name(node) if named else None
            if name is not None and name not in names:
                names.append(name)
    return names or ["default"]


def _rq(project: Project) -> list[Process]:
    if not (project.uses("rq") or project.depends_on("rq")) or not _enqueues(project):
        return []
    out = [
        Process(
            "worker",
            "rq worker --url $REDIS_URL " + " ".join(rq_queues(project)),
            "RQ worker; SIGTERM is its warm shutdown",
            stop_timeout=600,
            ready="rq",
        )
    ]
    if project.uses("rq_scheduler") or project.depends_on("rq-scheduler"):
        out.append(
            Process(
                "rqscheduler",
                "rqscheduler --url $REDIS_URL",
                "rq-scheduler: exactly one, or jobs are enqueued twice",
                singleton=True,
            )
        )
    return out


def _apscheduler(project: Project) -> tuple[list[Process], list[str]]:
    """A script that runs APScheduler on its own (a BlockingScheduler started under a main guard)."""
    starts = {(c.file, c.main_guarded) for c in project.calls_named("BlockingScheduler", "start")}
    for module in _modules_importing(project, "apscheduler"):
        if (module.path, True) in starts or "BlockingScheduler" in module.text:
            return [
                Process(
                    "scheduler",
                    f"python {module.path}",
                    "APScheduler in its own script: exactly one, or each job runs once per copy",
                    singleton=True,
                )
            ], []
    if _modules_importing(project, "apscheduler"):
        return [], [
            "APScheduler starts inside the app: every Gunicorn worker on every host runs each job; move "
            "it to a script of its own (a singleton process) or to jobs: timers"
        ]
    return [], []


def detect(project: Project) -> Stack:
    """The stack of a scanned project."""
    stack = Stack()
    found = asgi_app(project)
    if found is not None:
        stack.asgi, stack.asgi_entry = found[0], found[1]
        stack.where = (found[2], found[3]) if found[2] else None
    stack.socketio, stack.socketio_queue, where = _socketio(project)
    if stack.socketio and stack.where is None:
        stack.where = where
    names: set[str] = set()
    scheduler, notes = _apscheduler(project)
    for process in [*_celery(project, notes), *_rq(project), *scheduler]:
        name = process.name if process.name not in names else f"{process.name}-2"
        names.add(name)
        stack.processes.append(replace(process, name=name))
        if f" {BEAT_FOLDER}/" in process.command and BEAT_FOLDER not in stack.shared:
            stack.shared.append(BEAT_FOLDER)
            notes.append(
                f"Celery beat keeps its schedule in {BEAT_FOLDER}/, shared: the release is read-only"
            )
    stack.notes += notes
    return stack


def gunicorn_settings(stack: Stack, project: Project) -> tuple[str, str] | None:
    """The `gunicorn:` line (and its comment) for an ASGI or Flask-SocketIO app, else None."""
    if stack.asgi is not None:
        if project.depends_on("uvicorn-worker"):
            return "{workers: auto, worker_class: uvicorn_worker.UvicornWorker, timeout: 30}", (
                f"{stack.asgi} is ASGI: the uvicorn-worker package's worker"
            )
        return "{workers: auto, worker_class: asgi, timeout: 30}", (
            f"{stack.asgi} is ASGI: Gunicorn 24+'s own worker (pin gunicorn>=24)"
        )
    if stack.socketio:
        cls = _async_worker(stack, project, ("gevent-websocket", "gevent", "eventlet"))
        if cls is not None:
            return f"{{workers: 1, worker_class: {cls}, timeout: 30}}", (
                "Flask-SocketIO: one worker per slot (its sessions live in that process)"
            )
        return "{workers: 1, worker_class: gthread, threads: 100, timeout: 30}", (
            "Flask-SocketIO: one worker per slot, threads for the open sockets"
        )
    sse = next((s for s in streams(project.python) if s.kind == "sse"), None)
    if sse is not None:
        # Each open page holds a sync worker for as long as it is open (check PERF005).
        cls = _async_worker(stack, project, ("gevent", "eventlet"))
        if cls is not None:
            # One worker holds many open pages; async workers are not preloaded, so each would run the
            # app factory at once (a migration or a key file written at start races): one to begin with.
            return f"{{workers: 1, worker_class: {cls}, timeout: 30}}", (
                f"{sse.how} ({sse.file}:{sse.line}): one {cls} worker holds many open pages"
            )
    return None


_WORKERS = {
    "gevent-websocket": "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
    "gevent": "gevent",
    "eventlet": "eventlet",
}


def _async_worker(stack: Stack, project: Project, dists: tuple[str, ...]) -> str | None:
    """The worker class of the first of `dists` the project requires (noting gunicorn[gevent]), or None."""
    for dist in dists:
        if project.depends_on(dist):
            cls = _WORKERS[dist]
            extra = re.compile(r"^\s*gunicorn\s*\[[^\]]*\bgevent\b", re.I | re.M)
            if dist != "eventlet" and not any(
                extra.search(text) for path, text in project.files.items() if "requirements" in path
            ):
                stack.notes.append(
                    f"the {cls} worker imports packaging, which Gunicorn 26.1+ installs only with its "
                    "gevent extra: require gunicorn[gevent] in the requirements"
                )
            return cls
    return None


def procfile_process(name: str, command: str) -> Process:
    """A Procfile line as a process, with what init knows of its kind: an RQ or Celery worker gets the
    time its warm shutdown may take and its ready-made probe, a scheduler runs as a singleton."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    base = words[0].rsplit("/", 1)[-1] if words else ""
    beat = base == "celery" and any(w in ("beat", "-B", "--beat") for w in words)
    if base == "rq" and words[1:2] == ["worker"]:
        return Process(name, command, "RQ worker; SIGTERM is its warm shutdown", stop_timeout=600, ready="rq")
    if base == "celery" and "worker" in words:
        why = "Celery worker; SIGTERM is its warm shutdown"
        if beat:
            why = "Celery worker with beat (-B): exactly one, or every task is sent twice"
        return Process(name, command, why, singleton=beat, stop_timeout=600, ready="celery")
    if beat or base in ("rqscheduler", "rq-scheduler"):
        return Process(name, command, "a scheduler: exactly one, or each job is sent twice", singleton=True)
    return Process(name, command, "")


def process_rows(
    stack: Stack, live: bool = True, header: str = "run beside web, released with it"
) -> list[tuple[str, str]]:
    """The `processes:` section (SCHEMA.md) as (text, comment) rows; none when nothing runs beside web.

    Not `live` (this deploy's deploy.yaml has no processes yet): the same rows, commented out.
    """
    if not stack.processes:
        return []
    rows: list[tuple[str, str]] = [("processes:", header)]
    for p in stack.processes:
        rows.append((f"  {p.name}:", p.why))
        rows.append((f"    command: {json.dumps(p.command)}", "in the release's virtualenv and folder"))
        if p.singleton:
            rows.append(("    singleton: true", "one instance on one host, never two at once"))
        if p.stop_timeout is not None:
            rows.append((f"    stop_timeout: {p.stop_timeout}", "seconds to finish the job in hand"))
        if p.ready is not None:
            rows.append((f"    ready: {{kind: {p.ready}}}", "ready-made probe"))
    if not live:
        rows = [("# processes beside web: this deploy cannot run them yet", "")] + [
            (f"# {text}", comment) for text, comment in rows
        ]
    return [("", ""), *rows]


def service_rows(stack: Stack, secrets: list[str]) -> list[tuple[str, str]]:
    """`services: redis` when a process written reads the URL only that service gives it (an RQ worker's
    `--url $REDIS_URL`): without it the variable is empty and the worker fails at every start."""
    if "REDIS_URL" in secrets or not any("$REDIS_URL" in p.command for p in stack.processes):
        return []
    return [
        ("", ""),
        ("services:", ""),
        ("  redis: {}", "on the first host; deploy setup sets REDIS_URL for web and processes"),
    ]


def worker_needs(worker_class: str) -> str | None:
    """The distribution a worker class needs in the requirements (None: Gunicorn alone)."""
    return worker(worker_class).package
