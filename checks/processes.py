"""The processes and jobs beside web: stop timeouts against job timeouts, schedulers that run twice, jobs
that outlive their period."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterator
from itertools import pairwise

from deploy.checker import Context, Finding, check
from deploy.config.model import Config, Process

from ._helpers import config_file, in_served_code
from .crosslayer import _host_counts

#: RQ's job timeout when neither the job nor its queue sets one (rq.defaults.DEFAULT_JOB_TIMEOUT).
RQ_DEFAULT_JOB_TIMEOUT = 180


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _option(words: list[str], *names: str) -> str | None:
    """The value of `--name N` or `--name=N` among `words`."""
    for i, word in enumerate(words):
        for name in names:
            if word == name and i + 1 < len(words):
                return words[i + 1]
            if name.startswith("--") and word.startswith(f"{name}="):
                return word.partition("=")[2]
    return None


def _program(words: list[str]) -> tuple[str, str] | None:
    """(framework, sub-command) the command runs: ("rq", "worker"), ("celery", "beat"), ... or None."""
    names = [w.rsplit("/", 1)[-1] for w in words]
    if "rqworker" in names:
        return "rq", "worker"
    if "rqscheduler" in names or "rq-scheduler" in names:
        return "rq", "scheduler"
    for framework in ("rq", "celery"):
        if framework in names:
            rest = names[names.index(framework) + 1 :]
            for sub in ("worker", "beat"):
                if sub in rest:
                    return framework, sub
    return None


def _line(ctx: Context, *path: str | int) -> int | None:
    from deploy.config.loader import line_of

    line, _ = line_of(ctx.root / config_file(ctx), ctx.environment, path)
    return line


#: Stop signals that end an RQ or Celery worker without its warm shutdown (RQ and Celery finish the job
#: in hand on SIGTERM and SIGINT; Celery's SIGQUIT is its cold shutdown, and RQ handles neither).
_NOT_WARM = ("SIGQUIT", "SIGHUP")


def job_timeout(process: Process) -> tuple[int, str] | None:
    """The longest a job of this worker may run, and where that comes from: deploy.yaml's `job_timeout`,
    else Celery's `--time-limit` in the command, else RQ's default (180 s)."""
    if process.job_timeout is not None:
        return process.job_timeout, "its job_timeout"
    words = _words(process.command)
    program = _program(words)
    if program == ("celery", "worker"):
        limit = _option(words, "--time-limit")
        if limit is not None and limit.replace(".", "", 1).isdigit():
            return int(float(limit)), f"its command's --time-limit {limit}"
    if program == ("rq", "worker"):
        return RQ_DEFAULT_JOB_TIMEOUT, f"RQ's default job timeout ({RQ_DEFAULT_JOB_TIMEOUT} s)"
    return None


@check(
    "XL030",
    area="deployment",
    severity="high",
    title="A worker killed before its job ends",
    why="""A push, a rollback and a `systemctl stop` ask a worker for its warm shutdown: it finishes the
    job in hand and takes no new one. systemd waits `stop_timeout` seconds for that, then kills the
    worker: a job longer than that dies half done (RQ moves it to its failed or abandoned jobs, Celery
    loses it unless `acks_late` is set), on every push. RQ gives each job up to 180 seconds unless the
    job or its queue says otherwise; deploy's default stop timeout is 60 seconds. The stop signal must
    be the warm shutdown too: SIGTERM or SIGINT for both; SIGQUIT is Celery's cold shutdown and RQ
    handles neither SIGQUIT nor SIGHUP.""",
    fix="""Set the process's `stop_timeout` to at least its longest job: `job_timeout` in deploy.yaml if
    you declared it, else Celery's `--time-limit`, else RQ's 180 s (or give RQ jobs a shorter
    `job_timeout=` and declare it as the process's `job_timeout`). Keep `stop_signal: SIGTERM` (the
    default) for RQ and Celery workers.""",
    layers=("config",),
    details="""The longest job is, in this order: the process's `job_timeout`; the `--time-limit` of a
    `celery ... worker` command; 180 s for an `rq worker` (or `rqworker`) command, RQ's default job
    timeout. A Celery worker without a time limit and without `job_timeout` is not reported: nothing
    says how long its jobs run.""",
    references=(
        "https://python-rq.org/docs/jobs/#job-timeout",
        "https://docs.celeryq.dev/en/stable/userguide/workers.html#time-limits",
        "https://docs.celeryq.dev/en/stable/userguide/workers.html#stopping-the-worker",
        "https://python-rq.org/docs/workers/#taking-down-workers",
        "https://www.freedesktop.org/software/systemd/man/latest/systemd.service.html#TimeoutStopSec=",
    ),
)
def stop_before_job_ends(ctx: Context) -> Iterator[Finding]:
    if ctx.config is None:
        return
    for name, process in ctx.config.processes.items():
        program = _program(_words(process.command))
        if program in (("rq", "worker"), ("celery", "worker")) and process.stop_signal in _NOT_WARM:
            yield Finding(
                f"processes.{name}: stop_signal {process.stop_signal} is no warm shutdown for "
                f"{program[0]}: the job in hand is lost on every push",
                config_file(ctx),
                _line(ctx, "processes", name, "stop_signal") or _line(ctx, "processes", name),
            )
        found = job_timeout(process)
        if found is None or process.stop_timeout >= found[0]:
            continue
        longest, source = found
        yield Finding(
            f"processes.{name}: stop_timeout {process.stop_timeout} s is shorter than its jobs may run "
            f"({longest} s, {source}): a push kills the job in hand",
            config_file(ctx),
            _line(ctx, "processes", name, "stop_timeout") or _line(ctx, "processes", name),
        )


def _scheduler(command: str) -> str | None:
    """What makes `command` a scheduler that must run once: `celery beat`, or a Celery worker with beat
    embedded (-B/--beat). None for RQ's schedulers (they hold a lock in Redis: several are safe)."""
    words = _words(command)
    program = _program(words)
    if program == ("celery", "beat"):
        return "celery beat"
    if program == ("celery", "worker") and ({"-B", "--beat"} & set(words)):
        return "a Celery worker with beat embedded (-B)"
    return None


def _where(config: Config, name: str) -> str:
    process = config.processes[name]
    hosts = config.process_hosts(name)
    parts = []
    if len(hosts) > 1:
        parts.append(f"on {len(hosts)} hosts")
    if process.instances > 1:
        parts.append(f"{process.instances} instances per host")
    parts.append("old and new at once during each push")
    return ", ".join(parts)


@check(
    "XL031",
    area="deployment",
    severity="high",
    title="A scheduler that runs twice",
    why="""Celery's docs: only one `celery beat` may run for a schedule at a time, else every periodic
    task is sent twice. A scheduler process on several hosts, with several instances, or started beside
    the old one during a push sends each task once per copy. A Celery worker with `-B` embeds beat in
    every worker process that has it.""",
    fix="""Mark the scheduler `singleton: true` (exactly one instance on one host; a push stops the old
    before the new starts) and run beat as its own process, not inside workers (`-B`).""",
    layers=("config",),
    details="""A scheduler is a `celery ... beat` command, or a `celery ... worker` with `-B`/`--beat`.
    RQ's own schedulers are left alone: `rq worker --with-scheduler` and rq-scheduler's `rqscheduler`
    take a lock in Redis, so several of them schedule each job once.""",
    references=(
        "https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html#introduction",
        "https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html#starting-the-scheduler",
        "https://python-rq.org/docs/scheduling/",
        "https://github.com/rq/rq-scheduler#running-multiple-schedulers",
    ),
)
def scheduler_twice(ctx: Context) -> Iterator[Finding]:
    if ctx.config is None:
        return
    config = ctx.config
    for name, process in config.processes.items():
        what = _scheduler(process.command)
        if what is None:
            continue
        if what.startswith("a Celery worker"):
            if process.singleton:
                continue
            yield Finding(
                f"processes.{name} runs {what}: beat runs in every copy of it ({_where(config, name)})",
                config_file(ctx),
                _line(ctx, "processes", name, "command") or _line(ctx, "processes", name),
            )
        elif not process.singleton:
            yield Finding(
                f"processes.{name} runs {what} without singleton: true ({_where(config, name)}): each "
                "periodic task is sent once per copy",
                config_file(ctx),
                _line(ctx, "processes", name, "command") or _line(ctx, "processes", name),
            )


#: APScheduler's schedulers (and Flask-APScheduler's) that run jobs in the process that starts them.
_IN_PROCESS_SCHEDULERS = (
    "BackgroundScheduler",
    "AsyncIOScheduler",
    "GeventScheduler",
    "TornadoScheduler",
    "TwistedScheduler",
    "QtScheduler",
    "AsyncScheduler",
    "APScheduler",
)


def _web_copies(ctx: Context) -> str | None:
    """Why the web app runs in several processes: Gunicorn workers per slot, web hosts; None for one."""
    assert ctx.config is not None
    config = ctx.config
    reasons = []
    workers = config.gunicorn.workers
    if workers != 1:
        reasons.append("2 x cores + 1 Gunicorn workers (auto)" if workers == "auto" else f"{workers} workers")
    web_hosts = sum(1 for host in config.server.hosts if config.runs_web(host.name))
    counts = [n for _, n in _host_counts(ctx)[1:]]
    hosts = max([web_hosts, *counts])
    if hosts > 1:
        reasons.append(f"{hosts} hosts")
    return " on ".join(reasons) if reasons else None


@check(
    "XL032",
    area="deployment",
    severity="high",
    title="APScheduler started inside the web app",
    why="""An APScheduler `BackgroundScheduler` (or Flask-APScheduler's `APScheduler`) started in the
    web app runs in every process that imports the app: each Gunicorn worker, on each host, and both
    slots while a push overlaps them. Every scheduled job then runs once per process, at the same time.
    APScheduler's FAQ says to run one scheduler in a dedicated process instead.""",
    fix="""Start the scheduler in a process of its own, marked `singleton: true` in deploy.yaml's
    `processes:` (e.g. `command: python -m app.scheduler` with a `BlockingScheduler`), or make each job
    a `jobs:` entry (a systemd timer on one host).""",
    layers=("source", "config"),
    details="""Reported at the scheduler's creation in code the served app imports, when the project
    calls `.start()` somewhere and the web app runs in more than one process (Gunicorn workers other
    than 1, or more than one web host in deploy.yaml or one of its environments). A scheduler created
    in a function that also takes a lock (binds a socket to a fixed port, `fcntl.flock`/`lockf`) is
    left alone: the app chose how many run.""",
    references=(
        "https://apscheduler.readthedocs.io/en/3.x/faq.html#how-do-i-use-apscheduler-in-a-web-application",
        "https://apscheduler.readthedocs.io/en/3.x/faq.html#how-do-i-share-a-single-job-store-among-one-or-more-worker-processes",
        "https://viniciuschiele.github.io/flask-apscheduler/",
    ),
)
@in_served_code
def scheduler_in_web(ctx: Context) -> Iterator[Finding]:
    if ctx.config is None:
        return
    project = ctx.project
    if not project.uses("apscheduler", "flask_apscheduler"):
        return
    if not project.calls_named("start"):
        return
    copies = _web_copies(ctx)
    if copies is None:
        return
    # A start guarded by a lock (a socket bound to a fixed port, flock) is the app's own answer: left alone.
    locked = {(c.file, c.function) for c in project.calls_named("bind", "flock", "lockf")}
    for call in project.calls_named(*_IN_PROCESS_SCHEDULERS):
        if (call.file, call.function) in locked:
            continue
        yield Finding(
            f"{call.leaf}() in the web app runs its jobs once per process ({copies})", call.file, call.line
        )


#: The shortest time between two runs of the schedule words (systemd's normalised expressions).
_WORD_PERIODS = {
    "minutely": 60,
    "hourly": 3600,
    "daily": 86400,
    "weekly": 7 * 86400,
    "monthly": 28 * 86400,
    "quarterly": 90 * 86400,
    "semiannually": 181 * 86400,
    "yearly": 365 * 86400,
    "annually": 365 * 86400,
}
_TIME = re.compile(r"^(?P<h>[0-9*,/.]+):(?P<m>[0-9*,/.]+)(?::(?P<s>[0-9*,/.]+))?$")


def _gap(field: str, size: int) -> int | None:
    """The shortest step between two values a calendar field takes in a cycle of `size` (None: one
    value)."""
    if field == "*":
        return 1
    values: set[int] = set()
    for part in field.split(","):
        start, _, step = part.partition("/")
        if ".." in start:
            low, _, high = start.partition("..")
            if not (low.isdigit() and high.isdigit()):
                return None
            values.update(range(int(low), int(high) + 1, int(step) if step.isdigit() else 1))
        elif start == "*" and step.isdigit():
            values.update(range(0, size, int(step)))
        elif start.isdigit():
            values.update(range(int(start), size, int(step)) if step.isdigit() else [int(start)])
        else:
            return None
    ordered = sorted(v for v in values if 0 <= v < size)
    if len(ordered) < 2:
        return None
    gaps = [b - a for a, b in pairwise(ordered)]
    return min([*gaps, ordered[0] + size - ordered[-1]])


def period(schedule: str) -> int | None:
    """The shortest time in seconds between two runs of a schedule, when simple to tell; None else."""
    words = [w for w in schedule.lower().split() if w != "utc"]
    if len(words) == 1 and words[0] in _WORD_PERIODS:
        return _WORD_PERIODS[words[0]]
    time = next((w for w in words if ":" in w), None)
    match = _TIME.match(time) if time else None
    if match is None:
        return None
    seconds = match["s"] or "0"
    for field, size, unit in ((seconds, 60, 1), (match["m"], 60, 60), (match["h"], 24, 3600)):
        gap = _gap(field, size)
        if gap is not None:
            return gap * unit
        if field.strip("0123456789") != "":
            return None
    # Once a day at most; a date or weekday part makes it rarer (left alone).
    return 86400 if all(w in (time, "*-*-*") for w in words) else None


@check(
    "XL033",
    area="deployment",
    severity="medium",
    title="A job that can run longer than its period",
    why="""systemd never starts a job while its previous run is still going: a run that takes longer than
    the time to the next one makes the next run skipped, silently. Every job has a timeout (3600 s
    unless `timeout:` says otherwise); one longer than the schedule's period lets a hung run swallow
    every period until the timeout stops it (a `minutely` job with the default timeout can miss an
    hour of runs).""",
    fix="""Give the job a `timeout:` shorter than its period (the longest a run should take, with
    margin), or schedule it less often.""",
    layers=("config",),
    details="""The period is the shortest time between two runs: the words (`minutely`: 60 s, `hourly`,
    `daily`, `weekly`, `monthly`: 28 days, ...), and calendar expressions whose time has steps or
    lists (`*:0/15` every 15 minutes, `*-*-* 08,20:00` every 12 hours); other expressions are left
    alone.""",
    references=(
        "https://www.freedesktop.org/software/systemd/man/latest/systemd.timer.html",
        "https://www.freedesktop.org/software/systemd/man/latest/systemd.time.html#Calendar%20Events",
    ),
)
def job_outlives_period(ctx: Context) -> Iterator[Finding]:
    if ctx.config is None:
        return
    for name, job in ctx.config.jobs.items():
        every = period(job.schedule)
        if every is None or job.timeout <= every:
            continue
        given = "timeout" in job.model_fields_set
        yield Finding(
            f"jobs.{name} runs every {every} s ({job.schedule}) but a run may take {job.timeout} s "
            f"({'its timeout' if given else 'the default timeout'}): a slow run skips the runs after it",
            config_file(ctx),
            _line(ctx, "jobs", name, "timeout" if given else "schedule") or _line(ctx, "jobs", name),
        )


#: Where Celery beat keeps its schedule: beat's `-s`/`--schedule`, an embedding worker's
#: `-s`/`--schedule-filename`; Celery's default is `celerybeat-schedule` in the working directory.
_SCHEDULE_OPTIONS = ("-s", "--schedule", "--schedule-filename")
_DEFAULT_SCHEDULERS = ("celery.beat:PersistentScheduler", "celery.beat.PersistentScheduler")
#: The app's own config may name the file instead (Celery's setting, new and old name).
_SCHEDULE_SETTINGS = ("beat_schedule_filename", "CELERYBEAT_SCHEDULE_FILENAME", "schedule_filename")


def _writable_roots(config: Config) -> list[str] | None:
    """The folders the process unit may write (ProtectSystem=strict: ReadWritePaths, else the app.shared
    folders, the app's own: the shared folder itself is root's; and the private /tmp); None when
    systemd.overrides changes ProtectSystem (then the check cannot tell)."""
    from deploy.layout import paths_for

    overrides = config.systemd.overrides
    if overrides.get("ProtectSystem", "strict") != "strict":
        return None
    given = overrides.get("ReadWritePaths")
    shared = paths_for(config).shared
    roots = (
        [p.lstrip("-+") for p in given.split()]
        if given is not None
        else [f"{shared}/{folder}" for folder in config.app.shared]
    )
    private = ["/tmp", "/var/tmp"]  # noqa: S108 (folders compared with, not files made: PrivateTmp's)
    return [r.rstrip("/") for r in roots if r.startswith("/")] + private


def _unwritable_schedule(config: Config, command: str) -> str | None:
    """Where a Celery beat (or a worker with -B) started by `command` keeps its schedule, when the unit
    cannot write there; None when it can, when it is no such command, or when deploy cannot tell."""
    words = _words(command)
    if _scheduler(command) is None:
        return None
    scheduler = _option(words, "-S", "--scheduler")
    if scheduler is not None and scheduler not in _DEFAULT_SCHEDULERS:
        return None  # django-celery-beat, RedBeat, ...: no schedule file
    path = _option(words, *_SCHEDULE_OPTIONS)
    if path is None:
        return "celerybeat-schedule, Celery's default in the working directory: the release"
    if "$" in path or path.startswith("~"):
        return None
    folder = posixpath.dirname(posixpath.normpath(path))
    if not path.startswith("/"):
        # The working directory is the release; an app.shared folder in it is a link to the shared one.
        if any(folder == s or folder.startswith(f"{s}/") for s in config.app.shared):
            return None
        return f"{path}, in the release (no app.shared folder)"
    roots = _writable_roots(config)
    if roots is None or any(folder == r or folder.startswith(f"{r}/") for r in roots):
        return None
    return f"{path}, outside the folders the unit may write ({', '.join(roots)})"


@check(
    "XL035",
    area="deployment",
    severity="high",
    title="Celery beat without a writable schedule file",
    why="""Celery beat records when each periodic task last ran in its schedule file, and opens it for
    writing at start. By default that is `celerybeat-schedule` in the working directory: for a process
    deploy runs, the release, which is read-only to the app (`ProtectSystem=strict`; only the app's
    shared folder is writable). Beat then fails at start with a read-only file system error, systemd
    restarts it, and every push fails its processes step; a path elsewhere outside the app's shared
    folders fails the same way (the shared folder itself, `/srv/<app>/shared`, is root's: only the
    `app.shared` folders in it are the app's).""",
    fix="""Give beat a schedule file in an `app.shared` folder: `app.shared: [celerybeat]` and `celery -A
    app.celery beat -s celerybeat/celerybeat-schedule` (the release links each shared folder), or
    `-s /srv/<app>/shared/celerybeat/celerybeat-schedule`. It then also outlives the release.""",
    layers=("config",),
    details="""Read from a `celery ... beat` command, or a `celery ... worker -B`, among the processes:
    its `-s`/`--schedule` (a worker's `-s`/`--schedule-filename`), else Celery's default. Writable are
    the `app.shared` folders (`/srv/<app>/shared/<folder>`, or relative `<folder>/...`; the
    `ReadWritePaths` of `systemd.overrides` instead when it sets them), and the unit's private `/tmp`
    and `/var/tmp`. Left alone: a
    scheduler other than Celery's default (`-S django_celery_beat...`, RedBeat: no file), a path with a
    `$VARIABLE` or `~`, a project whose code sets `beat_schedule_filename`, and units whose
    `ProtectSystem` is overridden.""",
    references=(
        "https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html#starting-the-scheduler",
        "https://docs.celeryq.dev/en/stable/userguide/configuration.html#beat-schedule-filename",
        "https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#ProtectSystem=",
    ),
)
def beat_schedule_unwritable(ctx: Context) -> Iterator[Finding]:
    if ctx.config is None:
        return
    if any(s in module.text for module in ctx.project.python for s in _SCHEDULE_SETTINGS):
        return
    for name, process in ctx.config.processes.items():
        where = _unwritable_schedule(ctx.config, process.command)
        if where is None:
            continue
        yield Finding(
            f"processes.{name}: celery beat keeps its schedule in {where}, which the unit cannot write: "
            "beat fails at start",
            config_file(ctx),
            _line(ctx, "processes", name, "command") or _line(ctx, "processes", name),
        )
