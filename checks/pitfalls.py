"""Common Flask deployment pitfalls: the development server, no factory, no Flask-WTF, one worker, SQLite."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import PurePosixPath

from deploy.checker import Context, Finding, check
from deploy.project.evidence import csrf_enforcement
from deploy.project.scan import (
    SQLITE_FILE_KEYS,
    CallSite,
    Project,
    Setting,
    committed_files,
    write_is_log,
    written_folder,
)

from ._helpers import (
    app_site,
    commands,
    config_file,
    in_served_code,
    script_runs,
    served,
    services_env,
    unguarded,
)

_SERVERS = ("gunicorn", "uwsgi", "waitress", "uvicorn", "hypercorn", "mod-wsgi", "bjoern", "meinheld")


@check(
    "PIT001",
    area="pitfalls",
    severity="high",
    title="The development server runs in production",
    why="""`flask run` and `app.run()` start Werkzeug's development server: single process, not hardened,
    not meant for traffic ("Do not use it in a production deployment"). Reported for the commands that
    start the app and for `app.run()` in code the served app imports, not for developer scripts.""",
    fix="""Serve the app with Gunicorn (deploy renders its config and systemd unit) and keep `app.run()`
    only under `if __name__ == "__main__":` for local use; add gunicorn to the pinned requirements.""",
    layers=("source", "project"),
    details="""Also reported when the project declares its dependencies (requirements files,
    pyproject.toml, or `install_requires` in setup.py) and none of them is a production WSGI server
    (gunicorn, uWSGI, Waitress, ...): the release's virtualenv, built from them, has nothing but the
    development server to serve the app with.

    A Flask-Script `manage.py` (`manager = Manager(app)`, `manager.run()`) is a command line: `python
    manage.py run_worker` runs that command, and only its server commands (`runserver`, and each
    `manager.add_command(NAME, Server(...))`) start the development server.""",
    references=(
        "https://flask.palletsprojects.com/en/stable/deploying/",
        "https://werkzeug.palletsprojects.com/en/stable/serving/",
    ),
)
def development_server(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    production = served(ctx)
    for call in unguarded(project.calls_named("run")):
        if (
            (production is None or call.file in production)
            and call.name.count(".") == 1
            and not call.name.startswith(("subprocess.", "asyncio.", "os."))
            and (call.function == "" or call.function in ("create_app", "make_app"))
            and project.apps
        ):
            yield Finding(
                f"{call.name}() runs at import time, outside `if __name__ == '__main__':`",
                call.file,
                call.line,
            )
    scripts = {(path, command) for path, _module, command in script_runs(ctx)}
    for path, line, command in commands(ctx):
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        if "flask" in [w.rsplit("/", 1)[-1] for w in words] and "run" in words:
            yield Finding(f"`{command}` starts the development server", path, line)
        elif (path, command) in scripts:
            yield Finding(f"`{command}` runs the module that calls app.run()", path, line)
    if (
        project.apps
        and (project.requirements or "pyproject.toml" in project.files or project.setup_requires is not None)
        and not project.depends_on(*_SERVERS)
    ):
        where, at = app_site(ctx)
        yield Finding(
            "no production WSGI server (gunicorn, uwsgi, waitress) among the requirements", where, at
        )


@check(
    "PIT002",
    area="pitfalls",
    severity="low",
    title="No app factory",
    why="""A module-level `app = Flask(__name__)` is configured at import time: tests cannot build an app with
    other settings, extensions bind to one global app, and circular imports follow.""",
    fix="""Move the setup into `def create_app(test_config=None):` and point Gunicorn at
    `yourapp:create_app()` (deploy.yaml `app.wsgi`).""",
    references=("https://flask.palletsprojects.com/en/stable/patterns/appfactories/",),
)
def app_factory(ctx: Context) -> Iterator[Finding]:
    apps = ctx.project.apps
    if apps and all(not c.function for c in apps):
        yield Finding(
            "the Flask app is created at module level, not in a factory", apps[0].file, apps[0].line
        )


@check(
    "PIT003",
    area="pitfalls",
    severity="medium",
    title="Forms without Flask-WTF",
    why="""Hand-written forms read request.form directly: no CSRF token, no validation, no escaping
    helpers; every view re-invents them, and usually forgets one. A form counts as protected when it
    renders a token (`csrf_token()`, `hidden_tag()`, a hidden `_csrf`/`nonce` input, or a macro or
    include that renders one), or when a `before_request` handler checks every post.""",
    fix="""Add Flask-WTF (pinned) to the requirements, define forms as `FlaskForm` classes with validators,
    and render `{{ form.hidden_tag() }}` in every `<form method="post">`.""",
    layers=("source", "project"),
    references=(
        "https://flask-wtf.readthedocs.io/en/stable/",
        "https://flask.palletsprojects.com/en/stable/patterns/wtforms/",
    ),
)
def flask_wtf_missing(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    if project.uses("flask_wtf", "flask_seasurf") or project.depends_on("flask-wtf", "flask-seasurf"):
        return
    guard = csrf_enforcement(project)
    if guard is not None and guard[0].startswith("the before_request"):
        return  # a hand-written guard rejects cross-site posts for every form
    for form in project.html_forms:
        if not form.has_csrf_token:
            yield Finding("a POST form without Flask-WTF or a CSRF token", form.file, form.line)


_WORKERS_FLAG = re.compile(r"(?:-w|--workers)(?:\s+|=)(\d+)")


@check(
    "PIT004",
    area="pitfalls",
    severity="high",
    title="A single blocking worker",
    why="""One sync worker serves one request at a time: a slow client or a slow query makes every other
    visitor wait, and a crash takes the whole site down until the master respawns it.""",
    fix="""Use several workers: `gunicorn.workers: auto` in deploy.yaml ((2 x cores) + 1), or
    `worker_class: gthread` with threads if memory is tight.""",
    layers=("project",),
    references=("https://docs.gunicorn.org/en/stable/design.html",),
)
def single_worker(ctx: Context) -> Iterator[Finding]:
    if ctx.config is not None:
        g = ctx.config.gunicorn
        if g.workers == 1 and g.threads == 1 and g.worker_class == "sync":
            yield Finding("gunicorn.workers is 1 with sync workers and one thread", config_file(ctx))
    for path, line, command in commands(ctx):
        match = _WORKERS_FLAG.search(command)
        if "gunicorn" in command and match and match.group(1) == "1" and "--threads" not in command:
            yield Finding(f"`{command}` starts one sync worker", path, line)
    for module in ctx.project.python:
        if module.path.rsplit("/", 1)[-1].startswith("gunicorn") and module.path.endswith(".py"):
            for number, text in enumerate(module.lines, start=1):
                if re.match(r"^workers\s*=\s*1\s*(#.*)?$", text.strip()):
                    yield Finding("workers = 1 in the Gunicorn config", module.path, number)


_SQLITE = re.compile(r"^sqlite(\+\w+)?://", re.I)
#: The settings that name the app's database.
DATABASE_KEYS = ("SQLALCHEMY_DATABASE_URI", "DATABASE_URL", "DATABASE_URI", *SQLITE_FILE_KEYS)


def sqlite_settings(project: Project, keys: tuple[str, ...] = DATABASE_KEYS) -> Iterator[tuple[str, Setting]]:
    """(key, setting) of every database setting whose value, or default, is an SQLite URL (however it
    is assembled: `"sqlite:///" + basedir + "/app.db"`), or an SQLite file for `DATABASE`-style keys."""
    for key in keys:
        for s in project.setting(key):
            literal = s.value.literal if s.value.kind == "literal" else s.value.default
            if s.sqlite or (isinstance(literal, str) and _SQLITE.match(literal)):
                yield key, s


def sqlite_connects(project: Project) -> list[CallSite]:
    """`sqlite3.connect()` calls that open a database kept on disk (not `:memory:`, not a file in a
    `tempfile` folder)."""
    temporary = {
        (w.file, w.line)
        for w in project.writes
        if w.what == "sqlite3.connect()" and w.base == "absolute" and w.path.startswith("/tmp/")  # noqa: S108
    }
    return [
        c
        for c in project.calls_named("sqlite3.connect")
        if (c.file, c.line) not in temporary
        and not (c.args and c.args[0].kind == "literal" and c.args[0].literal == ":memory:")
        and not _read_only(project, c)
    ]


def _read_only(project: Project, call: CallSite) -> bool:
    """A read-only URI connection (`sqlite3.connect("file:...?mode=ro", uri=True)`): it reads someone
    else's database (a browser's bookmarks, a backup source) and writes nothing, so it is not where the
    app keeps its data."""
    if not call.keywords.get("uri") or not call.keywords["uri"].is_true:
        return False
    module = next((m for m in project.python if m.path == call.file), None)
    if module is None or not 0 < call.line <= len(module.lines):
        return False
    return bool(re.search(r"[?&]mode=ro\b", module.lines[call.line - 1]))


def given_env(ctx: Context) -> set[str]:
    """Environment variables deploy.yaml gives the app (app.env, app.secrets and the URLs of `services:`)
    with a value that is not an SQLite URL: a fallback in the code for one of them never applies."""
    if ctx.config is None:
        return set()
    app = ctx.config.app
    given = {k for k, v in app.env.items() if not _SQLITE.match(v.strip())} | set(app.secrets)
    return given | services_env(ctx)


@check(
    "PIT005",
    area="pitfalls",
    severity="low",
    title="SQLite in production",
    why="""SQLite allows one writer at a time ("database is locked" under concurrent requests), lives on one
    host's disk (no second server, no managed backups), and is easily lost when a release folder is
    replaced.""",
    fix="""Use PostgreSQL or MySQL for production (`SQLALCHEMY_DATABASE_URI=os.environ["DATABASE_URL"]`);
    if SQLite is a deliberate choice, keep it under a shared path, run one worker, and suppress this
    check with the reason.""",
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 3 of its 4 findings at medium severity
    were right (75%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.

    When deploy.yaml gives the variable an SQLite fallback belongs to
    (`os.environ.get("DATABASE_URL", "sqlite:///app.db")` with `DATABASE_URL` in `app.secrets` or `app.env`,
    or set by `services: postgres`), the fallback never applies and is not reported (here, in PIT006, XL003
    and XL006), also when the code reshapes the variable first
    (`os.environ.get("DATABASE_URL", "").replace("postgres://", "postgresql://") or "sqlite:///" + path`).""",
    references=("https://www.sqlite.org/whentouse.html",),
)
@in_served_code
def sqlite_in_production(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    # Without deploy.yaml, PIT006 (which knows app.shared) cannot say where the file goes: say it here.
    lost = (
        "; its file is lost on every release unless it lives in a shared folder (deploy.yaml app.shared)"
        if ctx.config is None
        else ""
    )
    seen: set[tuple[str, int]] = set()
    given = given_env(ctx)
    for key, s in sqlite_settings(project):
        seen.add((s.file, s.line))
        if s.value.kind == "env" and s.value.env_name in given:
            continue  # deploy.yaml gives the variable: the SQLite fallback never applies
        yield Finding(f"{key} points to SQLite{lost}", s.file, s.line)
    for w in project.writes:
        db_key = w.what in DATABASE_KEYS
        if w.production and db_key and (w.file, w.line) not in seen:
            seen.add((w.file, w.line))
            yield Finding(f"{w.what} points to SQLite ({w.path}){lost}", w.file, w.line)
    for call in sqlite_connects(project):
        yield Finding(f"sqlite3.connect() is the app's database{lost}", call.file, call.line)


#: Writable under the rendered unit besides the shared folder: PrivateTmp and the runtime folder.
_WRITABLE = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/")  # noqa: S108 - paths compared, never used


def _covered(path: str, base: str, shared: list[str]) -> bool:
    """Whether a relative path lands in one of app.shared (symlinks into shared/ in every release)."""
    path = path.strip("/")
    candidates = [path]
    if base == "instance":
        candidates = [f"instance/{path}"]
    for entry in (s.strip("/") for s in shared):
        for c in candidates:
            if c == entry or c.startswith(entry + "/"):
                return True
            # `basedir` is some folder of the project: match the folder's own name.
            if base == "project" and PurePosixPath(entry).name == c.split("/", 1)[0]:
                return True
    return False


@check(
    "PIT006",
    area="pitfalls",
    severity="high",
    title="The app writes inside the release",
    why="""deploy runs the app under a hardened systemd unit (ProtectSystem=strict): the whole file system
    is read-only except the app's shared folder and a private /tmp. A folder the app creates at start
    (`os.mkdir("logs")`), a log file, an SQLite file or an upload folder inside the release fails with
    "Read-only file system" and the workers do not boot; and even where writes succeed, every push
    starts a fresh release folder, so the data is gone after the next release.""",
    fix="""List the folder in deploy.yaml `app.shared` (for example `shared: [logs, uploads, instance]`): each
    entry is a symbolic link from every release into /srv/APP/shared, kept across releases and writable by
    the service. Log to stderr instead of files (journald keeps it); keep an SQLite file in a shared
    folder such as instance/, or list the file itself in `app.shared_files`.""",
    layers=("source", "config"),
    details="""
    What counts as a write: `os.mkdir()`, `os.makedirs()`, `Path(...).mkdir()`, logging file handlers,
    `sqlite3.connect()`, an SQLite `SQLALCHEMY_DATABASE_URI`/`DATABASE_URL` (also a fallback such as
    `os.environ.get("DATABASE_URL") or "sqlite:///" + os.path.join(basedir, "app.db")`), and config keys
    naming an upload, log, cache or search-index folder (`UPLOAD_FOLDER`, `*_UPLOAD_PATH`,
    `UPLOADED_*_DEST`, `LOG_DIR`, `LOG_FILE`, `CACHE_DIR`, `*_CACHE_DIRECTORY`, `WHOOSHEE_DIR`), also as
    module-level names of a `constants.py`; and `os.makedirs(app.instance_path)` (the folder `instance`
    beside the app's package, in the release).
    The path is resolved to the folder of the project the app really writes: `app.root_path` is the folder
    of the module that creates the app, `__file__`, `os.path.dirname()`, `abspath()`, `Path(...).parent`,
    `.resolve()`, `os.path.join()` and `/` are followed, also through names (`basedir =
    os.path.abspath(os.path.dirname(__file__))`); `os.getcwd()` and `Path.cwd()` are the release (the
    service's working directory), so `os.path.join(app.root_path, "uploads")` in
    `shop/__init__.py` is `shop/uploads` and only an `app.shared` entry `shop/uploads` (or `shop`) covers it.
    A relative path (resolved from the release, the service's working directory) is covered by an entry it
    lies in; a path joined to a folder that cannot be resolved, by an entry of the same name. Folders made
    with `tempfile` are fine (a private /tmp). deploy never advises sharing a folder that holds committed
    files (git's, or on disk without git): the shared folder would hide them in every release (a model, a
    data file), so the finding says to write the runtime files to a folder of their own instead. A single
    file written at the project root goes into `app.shared_files`. Absolute paths are fine under
    the shared folder (`/srv/APP/shared`), `/tmp` (a private one per service), `/run`, or a
    `ReadWritePaths` given in `systemd.overrides`. Config classes for development or tests are skipped.
    Without deploy.yaml this check is skipped and PIT005 says that an SQLite file is lost on every
    release.""",
    references=(
        "https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#ProtectSystem=",
        "https://flask.palletsprojects.com/en/stable/config/#instance-folders",
        "https://12factor.net/logs",
    ),
)
@in_served_code
def writes_in_release(ctx: Context) -> Iterator[Finding]:
    from deploy.layout import paths_for

    assert ctx.config is not None
    # A shared file (app.shared_files) is a link into shared/ in every release, as a shared folder is.
    shared = [*ctx.config.app.shared, *ctx.config.app.shared_files]
    overrides = ctx.config.systemd.overrides
    strict = overrides.get("ProtectSystem", "strict") == "strict"
    writable = [paths_for(ctx.config).shared.rstrip("/") + "/", *_WRITABLE]
    writable += [p.rstrip("/") + "/" for p in overrides.get("ReadWritePaths", "").split()]
    given = given_env(ctx)
    # Settings whose path is only the fallback of a variable deploy.yaml gives: never used.
    unused = {
        (s.file, s.line) for s in ctx.project.settings if s.value.kind == "env" and s.value.env_name in given
    }
    for w in ctx.project.writes:
        if not w.production or (w.file, w.line) in unused:
            continue
        if w.base == "absolute":
            if strict and not any((w.path.rstrip("/") + "/").startswith(p) for p in writable):
                yield Finding(
                    f"{w.what} writes {w.path}, read-only under ProtectSystem=strict "
                    f"(writable: {writable[0]}, /tmp)",
                    w.file,
                    w.line,
                )
            continue
        if _covered(w.path, w.base, shared):
            continue
        is_log = write_is_log(w)
        shown = f"instance/{w.path}" if w.base == "instance" else w.path
        folder = written_folder(w)
        committed = committed_files(ctx.root, folder) if folder else []
        if folder and committed:
            # Sharing it would put an empty shared folder over the committed files in every release.
            share = (
                f"do not share '{folder}': it holds committed files ({committed[0]}) that the shared "
                "folder would hide; write the runtime files to a folder of their own and list that in "
                "deploy.yaml app.shared"
            )
        elif folder:
            share = f"add '{folder}' to deploy.yaml app.shared"
        else:
            share = (
                "list it in deploy.yaml app.shared_files, or move it into a folder listed in app.shared "
                "(such as instance/)"
            )
        advice = f"log to stderr (journald keeps it), or {share}" if is_log else share
        ro = "read-only under ProtectSystem=strict and " if strict else ""
        yield Finding(
            f"{w.what} writes {shown} inside the release: {ro}lost on every push; {advice}",
            w.file,
            w.line,
        )
