"""XL020, XL021, DEP020: the Gunicorn worker against the app it serves and the requirements."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.checks.support import check, found, project

pytestmark = pytest.mark.unit

CONFIG = """\
app: {name: demo, wsgi: "app:app"}
server: {domains: [demo.example.com], tls: {email: ops@example.com}, hosts: [HOSTS]}
gunicorn: GUNICORN
"""

FLASK = "from flask import Flask\n\napp = Flask(__name__)\n"
QUART = "from quart import Quart\n\napp = Quart(__name__)\n"
ASYNC_VIEW = FLASK + '\n\n@app.route("/slow")\nasync def slow():\n    return "ok"\n'
SOCKETIO = FLASK + "from flask_socketio import SocketIO\n\nsocketio = SocketIO(app{queue})\n"


def run(
    tmp_path: Path, files: dict[str, str], gunicorn: str, ids: list[str], hosts: str = "10.0.0.1"
) -> list[str]:
    root = project(tmp_path, dict(files), base=False)
    config = CONFIG.replace("GUNICORN", gunicorn).replace("HOSTS", hosts)
    return [m for messages in found(check(root, ids, config=config)).values() for m in messages]


@pytest.mark.parametrize(
    ("files", "gunicorn", "expected"),
    [
        (
            {"app.py": QUART},
            "{worker_class: gthread}",
            "app.py:3 Quart is an ASGI app, but gunicorn.worker_class gthread",
        ),
        ({"app.py": QUART}, "{worker_class: asgi}", None),
        (
            {"app.py": FLASK},
            "{worker_class: uvicorn_worker.UvicornWorker}",
            "app.py:3 a Flask (WSGI) app behind the ASGI",
        ),
        ({"app.py": FLASK}, "{worker_class: gevent}", None),
        (
            {"app.py": ASYNC_VIEW, "requirements.txt": "flask==3.1\n"},
            "{}",
            "app.py:7 async view slow() without asgiref",
        ),
        ({"app.py": ASYNC_VIEW, "requirements.txt": "flask[async]==3.1\n"}, "{}", None),
    ],
)
def test_xl020_an_app_behind_the_wrong_worker(
    tmp_path: Path, files: dict[str, str], gunicorn: str, expected: str | None
) -> None:
    messages = run(tmp_path, files, gunicorn, ["XL020"])
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and messages[0].startswith(expected), messages


@pytest.mark.parametrize(
    ("queue", "gunicorn", "hosts", "expected"),
    [
        (
            "",
            "{workers: auto, worker_class: gevent}",
            "10.0.0.1",
            ["with 2 x cores + 1 (auto) Gunicorn workers"],
        ),
        ("", "{workers: 1, worker_class: gevent}", "10.0.0.1", []),
        (
            "",
            "{workers: 1, worker_class: gevent}",
            "10.0.0.1, 10.0.0.2",
            ["on 2 hosts (deploy.yaml) without a message_queue"],
        ),
        (
            ', message_queue="redis://10.0.0.9"',
            "{workers: 1, worker_class: gevent}",
            "10.0.0.1, 10.0.0.2",
            [],
        ),
    ],
)
def test_xl021_flask_socketio_in_several_processes(
    tmp_path: Path, queue: str, gunicorn: str, hosts: str, expected: list[str]
) -> None:
    messages = run(tmp_path, {"app.py": SOCKETIO.format(queue=queue)}, gunicorn, ["XL021"], hosts)
    assert len(messages) == len(expected)
    for message, part in zip(messages, expected, strict=True):
        assert message.startswith("app.py:6 ") and part in message


@pytest.mark.parametrize(
    ("requirements", "gunicorn", "expected"),
    [
        ("gunicorn==27.0.1\n", "{worker_class: asgi}", None),
        (
            "gunicorn==23.0.0\n",
            "{worker_class: asgi}",
            "requirements.txt:1 worker_class asgi needs gunicorn>=24.0",
        ),
        (
            "gunicorn>=22\neventlet==0.36\n",
            "{worker_class: eventlet}",
            "requirements.txt:1 worker_class eventlet was removed in gunicorn 26",
        ),
        ("gunicorn<26\neventlet==0.36\n", "{worker_class: eventlet}", None),
        (
            "gunicorn<26\n",
            "{worker_class: gevent}",
            "deploy.yaml:None gunicorn.worker_class gevent needs gevent",
        ),
        ("gunicorn[gevent]\n", "{worker_class: gevent}", None),
        ("gunicorn==23.0.0\ngevent\n", "{worker_class: gevent}", None),
        (
            "gunicorn==27.0.1\ngevent\n",
            "{worker_class: gevent}",
            "requirements.txt:1 worker_class gevent imports packaging, which gunicorn (==27.0.1) installs",
        ),
        ("gunicorn[gevent]==27.0.1\ngevent\n", "{worker_class: gevent}", None),
        ("gunicorn==27.0.1\ngevent\npackaging\n", "{worker_class: gevent}", None),
        ("gunicorn\n", "{worker_class: sync}", None),
    ],
)
def test_dep020_the_worker_must_be_installable(
    tmp_path: Path, requirements: str, gunicorn: str, expected: str | None
) -> None:
    messages = run(tmp_path, {"app.py": FLASK, "requirements.txt": requirements}, gunicorn, ["DEP020"])
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and messages[0].startswith(expected), messages


@pytest.mark.parametrize(
    ("code", "hosts", "expected"),
    [
        (
            'from celery import Celery\n\ncelery_app = Celery("shop", broker="redis://localhost:6379/0")\n',
            "10.0.0.1, 10.0.0.2",
            "app.py:3 Celery() at redis://localhost:6379/0",
        ),
        (
            'from celery import Celery\n\ncelery_app = Celery("shop", broker="redis://localhost:6379/0")\n',
            "10.0.0.1",
            None,
        ),
        (
            "from redis import Redis\nfrom rq import Queue\n\nqueue = Queue(connection=Redis())\n",
            "10.0.0.1, 10.0.0.2",
            "app.py:4 Redis() connects to localhost",
        ),
        (
            'import os\nfrom redis import Redis\n\nr = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1"))\n',
            "10.0.0.1, 10.0.0.2",
            "app.py:4 Redis.from_url() at redis://127.0.0.1",
        ),
        (
            'from flask import Flask\n\napp = Flask(__name__)\napp.config["CELERY_BROKER_URL"] = "amqp://guest@localhost//"\n',
            "10.0.0.1, 10.0.0.2",
            "app.py:4 CELERY_BROKER_URL is amqp://guest@localhost//",
        ),
        (
            'from celery import Celery\n\ncelery_app = Celery("shop", broker="redis://10.0.0.1:6379/0")\n',
            "10.0.0.1, 10.0.0.2",
            None,
        ),
    ],
)
def test_xl022_a_job_queue_on_localhost_with_several_hosts(
    tmp_path: Path, code: str, hosts: str, expected: str | None
) -> None:
    messages = run(tmp_path, {"app.py": code}, "{}", ["XL022"], hosts)
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and messages[0].startswith(expected), messages


def test_xl022_the_fallback_of_a_variable_deploy_yaml_sets_never_applies(tmp_path: Path) -> None:
    code = 'import os\nfrom redis import Redis\n\nr = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1"))\n'
    root = project(tmp_path, {"app.py": code}, base=False)
    config = CONFIG.replace("GUNICORN", "{}").replace("HOSTS", "10.0.0.1, 10.0.0.2")
    given = config.replace('wsgi: "app:app"}', 'wsgi: "app:app", env: {REDIS_URL: "redis://10.0.0.1"}}')
    assert found(check(root, ["XL022"], config=given)) == {}
    local = config.replace('wsgi: "app:app"}', 'wsgi: "app:app", env: {REDIS_URL: "redis://localhost"}}')
    (message,) = found(check(root, ["XL022"], config=local))["XL022"]
    assert message == (
        "deploy.yaml:None app.env REDIS_URL is redis://localhost, "
        "a different server on each of 2 hosts (deploy.yaml)"
    )


def test_xl022_leaves_config_defaults_alone_when_the_environment_replaces_them(tmp_path: Path) -> None:
    code = (
        'from flask import Flask\n\napp = Flask(__name__)\napp.config["CELERY_BROKER_URL"] = "redis://localhost"\n'
        'app.config.from_envvar("SHOP_SETTINGS")\n'
    )
    assert run(tmp_path, {"app.py": code}, "{}", ["XL022"], "10.0.0.1, 10.0.0.2") == []


FASTAPI = "from fastapi import FastAPI\n\napp = FastAPI()\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # fastapi-ml-skeleton: its Poetry dependencies name uvicorn, not gunicorn; the push uploaded the
        # release and then failed: 'Failed to locate executable .../.venv/bin/gunicorn'.
        (
            {"app.py": FASTAPI, "requirements.txt": "fastapi==0.109.1\nuvicorn==0.25.0\n"},
            "deploy.yaml:None gunicorn is not among the requirements: the systemd unit deploy renders runs "
            "gunicorn>=24.0 (worker_class asgi) from the release's virtualenv",
        ),
        ({"app.py": FASTAPI, "requirements.txt": "fastapi==0.109.1\ngunicorn==27.0.1\n"}, None),
        # A Flask app with no server at all: PIT001 says it, DEP020 does not repeat it.
        ({"app.py": FLASK, "requirements.txt": "Flask==3.1.3\n"}, None),
    ],
)
def test_dep020_gunicorn_itself_must_be_installed(
    tmp_path: Path, files: dict[str, str], expected: str | None
) -> None:
    messages = run(tmp_path, files, "{worker_class: asgi}", ["DEP020"])
    assert messages == ([expected] if expected else []), messages
