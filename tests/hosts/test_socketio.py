"""Flask-SocketIO's documented production setup on a sandbox host: Gunicorn's gevent-websocket worker,
one worker per slot, Socket.IO over HTTP long-polling and over a WebSocket through Nginx, and a push
under Socket.IO handshakes that fails none of them."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import ROOT_COMMIT_DATE, Project, git, private_sandbox
from tests.hosts.wskit import Loop, websocket_frames

pytestmark = pytest.mark.hosts

DOMAIN = "sockets.test"

APP = """\
from flask import Flask
from flask_socketio import SocketIO, emit

VERSION = "{version}"
app = Flask(__name__)
socketio = SocketIO(app)


@app.get("/health")
def health():
    return {{"status": "ok", "version": VERSION, "async_mode": socketio.async_mode}}


@socketio.on("ping")
def ping(data):
    emit("pong", {{"version": VERSION, "data": data}})
"""

REQUIREMENTS = """\
Flask==3.1.3
Flask-SocketIO==5.7.0
gevent==26.9.0
gevent-websocket==0.10.1
gunicorn[gevent]==27.0.1
"""

DEPLOY_YAML = """\
app:
  name: sockets
  wsgi: "app:app"
  secrets: []
server:
  domains: [{domain}]
  hosts: [{host}]
  user: sockets
  tls: false
  ssh: {{key: {key}, known_hosts: {known_hosts}}}
gunicorn: {{workers: 1, worker_class: geventwebsocket.gunicorn.workers.GeventWebSocketWorker}}
push: {{health_timeout: 30}}
"""


def request(address: str, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, 80, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": DOMAIN})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def socketio_round(address: str, n: int) -> tuple[str, str]:
    """A Socket.IO session over a WebSocket: open, connect, emit `ping`, read `pong`, close."""
    path = "/socket.io/?EIO=4&transport=websocket"
    frames = websocket_frames(address, DOMAIN, path, ["40", f'42["ping",{n}]'], greeting=True)
    opened, connected, pong = frames
    if not opened.startswith("0{") or not connected.startswith("40"):
        return f"unexpected {opened[:20]!r} {connected[:20]!r}", ""
    event = json.loads(pong[2:])
    if event[0] != "pong" or event[1]["data"] != n:
        return f"unexpected {pong[:40]!r}", ""
    return "ok", str(event[1]["version"])


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "socketio-sandbox", 1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    path: Path = tmp_path_factory.mktemp("socketio-project") / "sockets"
    path.mkdir()
    (path / "app.py").write_text(APP.format(version="v1"), encoding="utf-8")
    (path / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    (path / ".gitignore").write_text("__pycache__/\n", encoding="utf-8")
    host = box.hosts()[0]
    (path / "deploy.yaml").write_text(
        DEPLOY_YAML.format(domain=DOMAIN, host=host.address, key=host.key, known_hosts=host.known_hosts),
        encoding="utf-8",
    )
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "a Flask-SocketIO app", env=ROOT_COMMIT_DATE)
    return Project(path, box.hosts())


def test_flask_socketio_serves_polling_and_websocket_through_nginx(project: Project) -> None:
    project.deploy("setup", check=True, timeout=300)
    # Gunicorn 27's gevent worker imports packaging, which only gunicorn[gevent] installs: without the
    # extra the push stops before any host changes (the slot would die importing the worker).
    (project.path / "requirements.txt").write_text(
        REQUIREMENTS.replace("gunicorn[gevent]==", "gunicorn=="), encoding="utf-8"
    )
    git(project.path, "commit", "-q", "-am", "without gunicorn's gevent extra")
    refused = project.deploy("push", timeout=600)
    assert refused.returncode == 1
    assert (
        "nothing was changed: gunicorn.worker_class geventwebsocket.gunicorn.workers.GeventWebSocketWorker "
        "imports packaging, which requirements.txt does not install" in refused.stderr
    )
    (project.path / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    git(project.path, "commit", "-q", "-am", "gunicorn[gevent]")
    project.deploy("push", check=True, timeout=600)
    address = project.hosts[0].address
    status, body = request(address, "/health")
    assert status == 200 and json.loads(body)["async_mode"] == "gevent", body
    # Engine.IO's HTTP long-polling handshake (the transport a client starts with, or falls back to).
    status, body = request(address, "/socket.io/?EIO=4&transport=polling")
    assert status == 200 and body.startswith("0{") and '"sid"' in body, body
    assert "websocket" in json.loads(body[1:])["upgrades"]
    assert socketio_round(address, 7) == ("ok", "v1")


def test_a_push_under_socketio_sessions_fails_none(project: Project) -> None:
    (project.path / "app.py").write_text(APP.format(version="v2"), encoding="utf-8")
    git(project.path, "add", "-A")
    git(project.path, "commit", "-q", "-m", "v2")
    address = project.hosts[0].address
    with Loop(address, socketio_round) as load:
        project.deploy("push", check=True, timeout=600)
        time.sleep(1)
    print(f"Socket.IO sessions: {dict(load.counts)} by version {dict(load.versions)} errors {load.errors}")
    assert load.counts["ok"] > 20 and load.failed == 0, load.errors
    assert set(load.versions) == {"v1", "v2"}
    assert socketio_round(address, 8) == ("ok", "v2")
