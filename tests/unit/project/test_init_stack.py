"""`deploy init` on ASGI, Flask-SocketIO, Celery, RQ and APScheduler projects: the worker and processes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from deploy.config.loader import load_text
from deploy.config.model import Config
from deploy.project.init import inspect_project, write_deploy_yaml

pytestmark = pytest.mark.unit

#: The processes model comes from another branch of this session (SCHEMA.md); until it is merged,
#: the written processes are tested as YAML text only.
HAS_PROCESSES = "processes" in Config.model_fields


def written(root: Path, files: dict[str, str]) -> tuple[str, dict[str, object]]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    text = write_deploy_yaml(inspect_project(root), hosts=["10.0.0.5"])
    if HAS_PROCESSES:
        return text, yaml.safe_load(text)
    # Before the processes model is merged, init writes the section commented out (and the file loads).
    loads(text)
    head, _, section = text.partition("# processes beside web: this deploy cannot run them yet\n")
    assert "\nprocesses:" not in head
    uncommented = "\n".join(line.removeprefix("# ") for line in section.splitlines())
    return text, yaml.safe_load(head + uncommented)


def loads(text: str) -> Config:
    return load_text(text, "deploy.yaml", None)


FASTAPI = """\
    from fastapi import FastAPI

    app = FastAPI()


    @app.get("/health")
    async def health():
        return {"ok": True}
"""


def test_fastapi_app_is_the_entry_and_gets_gunicorns_asgi_worker(tmp_path: Path) -> None:
    text, data = written(
        tmp_path,
        {
            "api/main.py": FASTAPI,
            "api/__init__.py": "",
            "requirements.txt": "fastapi==0.115.0\ngunicorn==24.1.1\n",
        },
    )
    assert data["gunicorn"] == {"workers": "auto", "worker_class": "asgi", "timeout": 30}
    assert "FastAPI is ASGI" in text
    config = loads(text)
    assert config.app.wsgi == "api.main:app"
    assert "processes" not in data


def test_quart_with_uvicorn_worker_in_the_requirements_gets_that_worker(tmp_path: Path) -> None:
    app = "from quart import Quart\n\napp = Quart(__name__)\n"
    text, _data = written(
        tmp_path, {"app.py": app, "requirements.txt": "quart==0.20.0\nuvicorn-worker==0.3.0\n"}
    )
    assert loads(text).gunicorn.worker_class == "uvicorn_worker.UvicornWorker"
    assert loads(text).app.wsgi == "app:app"


def test_a_plain_flask_app_keeps_the_sync_worker(tmp_path: Path) -> None:
    app = "from flask import Flask\n\napp = Flask(__name__)\n"
    _text, data = written(tmp_path, {"app.py": app, "requirements.txt": "flask==3.1.0\n"})
    assert data["gunicorn"] == {"workers": "auto", "worker_class": "sync", "timeout": 30}
    assert "processes" not in data


@pytest.mark.parametrize(
    ("requirements", "worker_class", "extra"),
    [
        (
            "gevent-websocket==0.10.1\ngevent==24.2.1\n",
            "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
            {},
        ),
        ("eventlet==0.36.1\n", "eventlet", {}),
        ("simple-websocket==1.0.0\n", "gthread", {"threads": 100}),
    ],
)
def test_flask_socketio_gets_its_async_worker_and_one_worker_per_slot(
    tmp_path: Path, requirements: str, worker_class: str, extra: dict[str, int]
) -> None:
    app = (
        "from flask import Flask\nfrom flask_socketio import SocketIO\n\n"
        "app = Flask(__name__)\nsocketio = SocketIO(app)\n"
    )
    text, data = written(
        tmp_path, {"app.py": app, "requirements.txt": "flask==3.1.0\nflask-socketio==5.4.1\n" + requirements}
    )
    assert data["gunicorn"] == {"workers": 1, "worker_class": worker_class, "timeout": 30, **extra}
    assert loads(text).gunicorn.workers == 1
    notes = "\n".join(inspect_project(tmp_path).notes)
    assert ("require gunicorn[gevent]" in notes) is worker_class.startswith("geventwebsocket")


RQ_APP = """\
from flask import Flask
from redis import Redis
from rq import Queue

app = Flask(__name__)
queue = Queue(connection=Redis())


@app.post("/reports")
def report():
    queue.enqueue("reports.build")
    return "", 202
"""

CELERY = """\
    from celery import Celery

    celery_app = Celery("shop", broker="redis://localhost:6379/0")
"""


def test_celery_gets_a_worker_and_beat_as_a_singleton(tmp_path: Path) -> None:
    app = "from flask import Flask\n\napp = Flask(__name__)\n"
    text, data = written(
        tmp_path,
        {"app.py": app, "shop/tasks.py": CELERY, "shop/__init__.py": "", "requirements.txt": "celery==5.4\n"},
    )
    assert data["processes"] == {
        "worker": {
            "command": "celery -A shop.tasks worker --loglevel=INFO",
            "stop_timeout": 600,
            "ready": {"kind": "celery"},
        },
        "beat": {
            "command": "celery -A shop.tasks beat --loglevel=INFO -s celerybeat/celerybeat-schedule",
            "singleton": True,
        },
    }
    assert "Celery beat: exactly one" in text
    assert data["app"]["shared"] == ["celerybeat"]  # type: ignore[index]
    if HAS_PROCESSES:
        loads(text)


def test_rq_gets_a_worker_and_rqscheduler_as_a_singleton(tmp_path: Path) -> None:
    text, data = written(
        tmp_path, {"app.py": RQ_APP, "requirements.txt": "flask\nrq==1.16\nrq-scheduler==0.13\n"}
    )
    processes = data["processes"]
    assert isinstance(processes, dict)
    assert processes["worker"] == {
        "command": "rq worker --url $REDIS_URL default",
        "stop_timeout": 600,
        "ready": {"kind": "rq"},
    }
    assert processes["rqscheduler"] == {"command": "rqscheduler --url $REDIS_URL", "singleton": True}
    if HAS_PROCESSES:
        loads(text)


def test_rq_without_rq_scheduler_has_no_scheduler(tmp_path: Path) -> None:
    _text, data = written(tmp_path, {"app.py": RQ_APP, "requirements.txt": "flask\nrq==1.16\n"})
    assert list(data["processes"]) == ["worker"]  # type: ignore[call-overload]


def test_a_project_that_only_reads_rq_queues_runs_no_worker(tmp_path: Path) -> None:
    """A dashboard lists queues and jobs; it enqueues nothing, so nothing would feed a worker of its own."""
    app = "from flask import Flask\nfrom rq import Queue\n\napp = Flask(__name__)\nqueues = Queue.all()\n"
    _text, data = written(tmp_path, {"app.py": app, "requirements.txt": "flask\nrq==1.16\n"})
    assert "processes" not in data


def test_apscheduler_in_a_script_is_a_singleton_process(tmp_path: Path) -> None:
    app = "from flask import Flask\n\napp = Flask(__name__)\n"
    script = """\
        from apscheduler.schedulers.blocking import BlockingScheduler

        scheduler = BlockingScheduler()

        if __name__ == "__main__":
            scheduler.start()
    """
    text, data = written(tmp_path, {"app.py": app, "clock.py": script, "requirements.txt": "apscheduler\n"})
    assert data["processes"] == {"scheduler": {"command": "python clock.py", "singleton": True}}
    if HAS_PROCESSES:
        loads(text)


def test_apscheduler_inside_the_app_is_a_note_not_a_process(tmp_path: Path) -> None:
    app = """\
        from apscheduler.schedulers.background import BackgroundScheduler
        from flask import Flask

        app = Flask(__name__)
        BackgroundScheduler().start()
    """
    _text, data = written(tmp_path, {"app.py": app, "requirements.txt": "apscheduler\n"})
    assert "processes" not in data
    assert "APScheduler starts inside the app" in "\n".join(inspect_project(tmp_path).notes)


def test_no_gevent_extra_note_when_the_requirements_have_it(tmp_path: Path) -> None:
    app = "from flask import Flask\nfrom flask_socketio import SocketIO\n\napp = Flask(__name__)\n"
    app += "socketio = SocketIO(app)\n"
    requirements = "flask-socketio==5.7.0\ngevent-websocket==0.10.1\ngunicorn[gevent]==27.0.1\n"
    written(tmp_path, {"app.py": app, "requirements.txt": requirements})
    assert "gunicorn[gevent]" not in "\n".join(inspect_project(tmp_path).notes)


@pytest.mark.parametrize("gevent", [True, False])
def test_server_sent_events_get_one_gevent_worker_when_the_project_has_gevent(
    tmp_path: Path, gevent: bool
) -> None:
    """A text/event-stream view holds a sync worker per open page (check PERF005): with gevent in the
    requirements, init writes one gevent worker (not preloaded, so several would each run the factory
    at once); without it, the sync default stays and the check keeps saying why."""
    app = (
        "from flask import Flask, Response\n\napp = Flask(__name__)\n\n\n@app.get('/events')\n"
        "def events():\n    return Response(iter(()), mimetype='text/event-stream')\n"
    )
    requirements = "flask==3.1.0\n" + ("gevent==25.5.1\n" if gevent else "")
    text, data = written(tmp_path, {"app.py": app, "requirements.txt": requirements})
    expected = (
        {"workers": 1, "worker_class": "gevent"} if gevent else {"workers": "auto", "worker_class": "sync"}
    )
    assert data["gunicorn"] == {**expected, "timeout": 30}
    assert loads(text).gunicorn.worker_class == expected["worker_class"]
