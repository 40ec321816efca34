"""XL030-XL035: processes and jobs against their timeouts, schedulers that run twice, beat's schedule file."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.processes import period
from tests.unit.checks.support import check, found, project

pytestmark = pytest.mark.unit

CONFIG = """\
app: {name: demo, wsgi: "app:app"}
server: {domains: [demo.example.com], tls: {email: ops@example.com}, hosts: [HOSTS]}
gunicorn: {workers: WORKERS}
"""
FLASK = "from flask import Flask\n\napp = Flask(__name__)\n"


def run(
    tmp_path: Path,
    ids: list[str],
    extra: str,
    files: dict[str, str] | None = None,
    hosts: str = "10.0.0.1",
    workers: str = "1",
) -> list[str]:
    root = project(tmp_path, {"app.py": FLASK, **(files or {})}, base=False)
    config = CONFIG.replace("HOSTS", hosts).replace("WORKERS", workers) + extra
    return [m for messages in found(check(root, ids, config=config)).values() for m in messages]


@pytest.mark.parametrize(
    ("process", "expected"),
    [
        ("{command: rq worker high default}", "stop_timeout 60 s is shorter than its jobs may run (180 s"),
        ("{command: /srv/demo/.venv/bin/rqworker, stop_timeout: 179}", "(180 s, RQ's default job timeout"),
        ("{command: rq worker, stop_timeout: 180}", None),
        ("{command: rq worker, job_timeout: 30}", None),
        ("{command: rq worker, job_timeout: 600, stop_timeout: 300}", "(600 s, its job_timeout)"),
        (
            "{command: 'celery -A app.celery worker --time-limit=900'}",
            "(900 s, its command's --time-limit 900)",
        ),
        ("{command: 'celery -A app.celery worker --time-limit 30'}", None),
        ("{command: celery -A app.celery worker}", None),
        ("{command: python loop.py, job_timeout: 120}", "(120 s, its job_timeout)"),
        (
            "{command: celery -A app.celery worker, stop_signal: SIGQUIT}",
            "stop_signal SIGQUIT is no warm shutdown for celery",
        ),
        ("{command: rq worker, stop_signal: SIGHUP, stop_timeout: 200}", "SIGHUP is no warm shutdown for rq"),
        ("{command: rq worker, stop_signal: SIGINT, stop_timeout: 200}", None),
        ("{command: python loop.py, stop_signal: SIGQUIT}", None),
    ],
)
def test_xl030_stop_timeout_against_the_longest_job(
    tmp_path: Path, process: str, expected: str | None
) -> None:
    messages = run(tmp_path, ["XL030"], f"processes:\n  worker: {process}\n")
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0], messages


@pytest.mark.parametrize(
    ("process", "hosts", "expected"),
    [
        ("{command: celery -A app.celery beat}", "10.0.0.1", "(old and new at once during each push)"),
        (
            "{command: celery -A app.celery beat, instances: 2}",
            "10.0.0.1, 10.0.0.2",
            "(on 2 hosts, 2 instances per host, old and new at once during each push)",
        ),
        ("{command: celery -A app.celery beat, singleton: true}", "10.0.0.1, 10.0.0.2", None),
        ("{command: celery -A app.celery worker -B}", "10.0.0.1", "a Celery worker with beat embedded"),
        ("{command: celery -A app.celery worker --beat, singleton: true}", "10.0.0.1", None),
        ("{command: rq worker --with-scheduler, instances: 3}", "10.0.0.1, 10.0.0.2", None),
        ("{command: rqscheduler --url $REDIS_URL}", "10.0.0.1, 10.0.0.2", None),
    ],
)
def test_xl031_a_scheduler_that_runs_twice(
    tmp_path: Path, process: str, hosts: str, expected: str | None
) -> None:
    messages = run(tmp_path, ["XL031"], f"processes:\n  sched: {process}\n", hosts=hosts)
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0], messages


APS = FLASK + (
    "from apscheduler.schedulers.background import BackgroundScheduler\n\n"
    "scheduler = BackgroundScheduler()\nscheduler.start()\n"
)


@pytest.mark.parametrize(
    ("hosts", "workers", "expected"),
    [
        ("10.0.0.1", "1", None),
        (
            "10.0.0.1",
            "4",
            "app.py:6 BackgroundScheduler() in the web app runs its jobs once per process (4 workers)",
        ),
        ("10.0.0.1, 10.0.0.2", "1", "(2 hosts)"),
        # The second host runs no web process: one copy of the app.
        ("10.0.0.1, {address: 10.0.0.2, roles: [worker]}", "1", None),
    ],
)
def test_xl032_apscheduler_in_the_web_app(
    tmp_path: Path, hosts: str, workers: str, expected: str | None
) -> None:
    messages = run(tmp_path, ["XL032"], "", {"app.py": APS}, hosts=hosts, workers=workers)
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0], messages


def test_xl032_a_scheduler_started_under_a_lock_is_left_alone(tmp_path: Path) -> None:
    """Puppetboard's way: a socket bound to a fixed port lets one process per host start it."""
    code = FLASK + (
        "import socket\nfrom flask_apscheduler import APScheduler\n\n\ndef get_scheduler():\n"
        "    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "    sock.bind(('127.0.0.1', 47200))\n"
        "    scheduler = APScheduler()\n    scheduler.start()\n    return scheduler\n"
    )
    assert run(tmp_path, ["XL032"], "", {"app.py": code}, workers="3") == []
    unlocked = code.replace("    sock.bind(('127.0.0.1', 47200))\n", "")
    assert run(tmp_path / "b", ["XL032"], "", {"app.py": unlocked}, workers="3")


def test_xl032_flask_apscheduler_counts(tmp_path: Path) -> None:
    code = (
        FLASK + "from flask_apscheduler import APScheduler\n\nscheduler = APScheduler()\nscheduler.start()\n"
    )
    messages = run(tmp_path, ["XL032"], "", {"app.py": code}, workers="3")
    assert messages and "APScheduler() in the web app" in messages[0]


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("minutely", 60),
        ("hourly", 3600),
        ("daily UTC", 86400),
        ("*:0/15", 900),
        ("*:*:0/10", 10),
        ("*:05", 3600),
        ("*-*-* 08,20:00", 12 * 3600),
        ("*-*-* 03:30:00", 86400),
        ("Mon..Fri 09:00", None),
        ("Mon *-*-* 09:00", None),
    ],
)
def test_the_period_of_a_schedule(schedule: str, seconds: int | None) -> None:
    assert period(schedule) == seconds


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ("{command: flask x, schedule: minutely}", "runs every 60 s (minutely) but a run may take 3600 s"),
        ("{command: flask x, schedule: '*:0/15', timeout: 901}", "901 s (its timeout)"),
        ("{command: flask x, schedule: '*:0/15', timeout: 900}", None),
        ("{command: flask x, schedule: hourly}", None),
        ("{command: flask x, schedule: 'Mon 03:00', timeout: 90000}", None),
    ],
)
def test_xl033_a_job_longer_than_its_period(tmp_path: Path, job: str, expected: str | None) -> None:
    messages = run(tmp_path, ["XL033"], f"jobs:\n  sync: {job}\n")
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0], messages


BEAT = "celery -A app.celery beat"


@pytest.mark.parametrize(
    ("process", "extra", "expected"),
    [
        (f"{BEAT}", "", "celerybeat-schedule, Celery's default in the working directory: the release"),
        (f"{BEAT} -s celerybeat-schedule", "", "celerybeat-schedule, in the release (no app.shared folder)"),
        (f"{BEAT} --schedule=var/beat", "", "var/beat, in the release"),
        (f"{BEAT} -s /srv/demo/current/beat", "", "outside the folders the unit may write (/tmp, /var/tmp)"),
        (f"{BEAT} -s /var/lib/celery/beat", "", "/var/lib/celery/beat, outside the folders"),
        ("celery -A app.celery worker -B", "", "Celery's default in the working directory"),
        ("celery -A app.celery worker -B --schedule-filename /srv/x/beat", "", "/srv/x/beat, outside"),
        # The shared folder itself is root's (0750): only its app.shared folders are the app's.
        (
            f"{BEAT} -s /srv/demo/shared/celerybeat-schedule",
            "",
            "/srv/demo/shared/celerybeat-schedule, outside",
        ),
        (f"{BEAT} -s /srv/demo/shared/instance/beat", "", "/srv/demo/shared/instance/beat, outside"),
        (f"{BEAT} -s /tmp/beat", "", None),
        (
            f"{BEAT} -s /var/lib/celery/beat",
            "systemd: {overrides: {ReadWritePaths: /var/lib/celery}}\n",
            None,
        ),
        (f"{BEAT} -s /var/lib/celery/beat", "systemd: {overrides: {ProtectSystem: full}}\n", None),
        (f"{BEAT} -s $STATE_DIRECTORY/beat", "", None),
        (f"{BEAT} -S django_celery_beat.schedulers:DatabaseScheduler", "", None),
        (f"{BEAT} -S celery.beat:PersistentScheduler", "", "Celery's default in the working directory"),
        ("celery -A app.celery worker", "", None),
        ("rq worker --with-scheduler", "", None),
    ],
)
def test_xl035_beat_without_a_writable_schedule_file(
    tmp_path: Path, process: str, extra: str, expected: str | None
) -> None:
    config = f"processes:\n  beat: {{command: {process!r}, singleton: true}}\n"
    messages = run(tmp_path, ["XL035"], config + extra)
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0], messages
        assert "processes.beat: celery beat keeps its schedule in " in messages[0]


def test_xl035_a_relative_path_inside_an_app_shared_folder_is_writable(tmp_path: Path) -> None:
    """The release's `instance` is a link to the shared folder when `app.shared` names it."""
    extra = "processes:\n  beat: {command: 'celery -A app.celery beat -s instance/beat', singleton: true}\n"
    root = project(tmp_path, {"app.py": FLASK, "instance/.keep": ""}, base=False)
    config = CONFIG.replace("HOSTS", "10.0.0.1").replace("WORKERS", "1") + extra
    assert found(check(root, ["XL035"], config=config)).get("XL035")
    shared = config.replace('wsgi: "app:app"}', 'wsgi: "app:app", shared: [instance]}')
    assert "XL035" not in found(check(root, ["XL035"], config=shared))
    absolute = shared.replace("-s instance/beat", "-s /srv/demo/shared/instance/beat")
    assert "XL035" not in found(check(root, ["XL035"], config=absolute))


def test_xl035_leaves_alone_an_app_whose_code_names_its_schedule_file(tmp_path: Path) -> None:
    extra = f"processes:\n  beat: {{command: {BEAT}, singleton: true}}\n"
    assert run(tmp_path, ["XL035"], extra) != []
    code = FLASK + 'celery_config = {"beat_schedule_filename": "/srv/demo/shared/beat"}\n'
    assert run(tmp_path / "named", ["XL035"], extra, {"app.py": code}) == []
