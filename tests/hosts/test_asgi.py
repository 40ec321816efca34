"""An ASGI app (FastAPI, real packages from PyPI) with a WebSocket endpoint on a sandbox host.

It serves HTTP and WebSocket through Nginx under the maintained uvicorn-worker, then a push that moves
it to Gunicorn's own ASGI worker runs under continuous HTTP requests and WebSocket handshakes (each
one echoes a message): none of them may fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import ROOT_COMMIT_DATE, Project, git, private_sandbox
from tests.hosts.wskit import Loop, websocket_frames

pytestmark = pytest.mark.hosts

DOMAIN = "chat.test"

MAIN = """\
import os

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

VERSION = "{version}"
app = FastAPI()


@app.get("/health")
async def health():
    return {{"status": "ok", "version": VERSION, "pid": os.getpid()}}


@app.get("/")
async def index():
    return {{"hello": "world"}}


@app.get("/scheme")
async def scheme(request: Request):
    return {{"scheme": request.url.scheme}}


@app.websocket("/ws")
async def echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"{{VERSION}} {{text}}")
    except WebSocketDisconnect:
        pass
"""

REQUIREMENTS = """\
fastapi==0.165.0
gunicorn==27.0.1
uvicorn-worker==0.4.0
uvicorn==0.55.0
websockets==17.4
"""

DEPLOY_YAML = """\
app:
  name: chat
  wsgi: "main:app"
  secrets: []
server:
  domains: [{domain}]
  hosts: [{host}]
  user: chat
  tls: false
  ssh: {{key: {key}, known_hosts: {known_hosts}}}
gunicorn: {{workers: 2, worker_class: {worker_class}}}
push: {{health_timeout: 30}}
"""


def websocket_echo(address: str, message: str) -> str:
    """Send one message to the app's /ws echo endpoint; return the reply."""
    (reply,) = websocket_frames(address, DOMAIN, "/ws", [message])
    return reply


def _websocket_round(address: str, n: int) -> tuple[str, str]:
    reply = websocket_echo(address, f"m{n}")
    return ("ok" if reply.endswith(f" m{n}") else "wrong echo"), reply.split(" ", 1)[0]


def _http_round(address: str, n: int) -> tuple[str, str]:
    import json

    path = ("/health", "/")[n % 2]
    status, body = get_chat(address, path)
    version = str(json.loads(body).get("version", "")) if status == 200 and path == "/health" else ""
    return ("ok" if status == 200 else f"http {status}"), version


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "asgi-sandbox", 1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    path: Path = tmp_path_factory.mktemp("asgi-project") / "chat"
    path.mkdir()
    (path / "main.py").write_text(MAIN.format(version="v1"), encoding="utf-8")
    (path / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    (path / ".gitignore").write_text("__pycache__/\n", encoding="utf-8")
    project = Project(path, box.hosts())
    write_config(project, "uvicorn_worker.UvicornWorker")
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "a FastAPI app", env=ROOT_COMMIT_DATE)
    return project


def write_config(project: Project, worker_class: str) -> None:
    host = project.hosts[0]
    (project.path / "deploy.yaml").write_text(
        DEPLOY_YAML.format(
            domain=DOMAIN,
            host=host.address,
            key=host.key,
            known_hosts=host.known_hosts,
            worker_class=worker_class,
        ),
        encoding="utf-8",
    )


def served_version(address: str) -> str:
    import json

    status, body = get_chat(address, "/health")
    assert status == 200, body
    return str(json.loads(body)["version"])


def get_chat(address: str, path: str) -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection(address, 80, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": DOMAIN})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_an_asgi_app_serves_http_and_websocket_through_nginx(box: Sandbox, project: Project) -> None:
    project.deploy("setup", check=True, timeout=300)
    project.deploy("push", check=True, timeout=600)
    address = project.hosts[0].address
    assert served_version(address) == "v1"
    assert get_chat(address, "/") == (200, '{"hello":"world"}')
    assert websocket_echo(address, "hello") == "v1 hello"
    # Through Nginx, with the headers the rendered site sets: Upgrade passed, Connection mapped.
    site = box.run(project.hosts[0], ["cat", "/etc/nginx/sites-enabled/chat.conf"], check=True).stdout
    assert "map $http_upgrade $chat_connection_upgrade" in site
    # Nginx's X-Forwarded-Proto reaches the app through uvicorn on the unix socket (an HTTPS site's
    # requests must not look like plain HTTP to it); asked over the socket as Nginx would.
    assert get_chat(address, "/scheme") == (200, '{"scheme":"http"}')
    script = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/srv/chat/live.sock'); "
        "s.sendall(b'GET /scheme HTTP/1.1\\r\\nHost: chat.test\\r\\nX-Forwarded-Proto: https\\r\\n"
        "Connection: close\\r\\n\\r\\n'); print(s.makefile('rb').read().decode())"
    )
    answer = box.run(project.hosts[0], ["python3", "-c", script], check=True).stdout
    assert answer.startswith("HTTP/1.1 200") and answer.endswith('{"scheme":"https"}\n'), answer
    # A plain request still works on a keep-alive connection: two requests, one connection.
    import http.client

    conn = http.client.HTTPConnection(address, 80, timeout=10)
    try:
        for _ in range(2):
            conn.request("GET", "/health", headers={"Host": DOMAIN})
            response = conn.getresponse()
            assert response.status == 200
            response.read()
    finally:
        conn.close()


def test_a_push_under_http_and_websocket_load_fails_nothing(project: Project) -> None:
    """v2 also moves the app from uvicorn-worker to Gunicorn's own ASGI worker."""
    (project.path / "main.py").write_text(MAIN.format(version="v2"), encoding="utf-8")
    write_config(project, "asgi")
    git(project.path, "add", "-A")
    git(project.path, "commit", "-q", "-m", "v2 on Gunicorn's ASGI worker")
    address = project.hosts[0].address
    with Loop(address, _http_round, threads=3) as http_load, Loop(address, _websocket_round) as ws_load:
        project.deploy("push", check=True, timeout=600)
        time.sleep(1)
    print(
        f"HTTP: {dict(http_load.counts)} errors {http_load.errors}; WebSocket: {dict(ws_load.counts)} "
        f"by version {dict(ws_load.versions)} errors {ws_load.errors}"
    )
    assert ws_load.counts["ok"] > 20 and http_load.counts["ok"] > 50
    assert ws_load.failed == 0, ws_load.errors
    assert http_load.failed == 0, http_load.errors
    assert served_version(address) == "v2"
    assert websocket_echo(address, "after") == "v2 after"
    # Both releases answered during the push: the load ran across the switch.
    assert set(ws_load.versions) == {"v1", "v2"} and set(http_load.versions) == {"v1", "v2"}


def test_a_worker_whose_package_is_not_installed_stops_the_push_before_any_change(project: Project) -> None:
    (project.path / "requirements.txt").write_text(
        REQUIREMENTS.replace("uvicorn-worker==0.4.0\n", ""), encoding="utf-8"
    )
    write_config(project, "uvicorn_worker.UvicornWorker")
    git(project.path, "add", "-A")
    git(project.path, "commit", "-q", "-m", "uvicorn-worker forgotten")
    result = project.deploy("push", timeout=600)
    assert result.returncode == 1
    assert (
        "nothing was changed: gunicorn.worker_class uvicorn_worker.UvicornWorker needs uvicorn-worker, "
        "which requirements.txt does not install" in result.stderr + result.stdout
    )
    assert "Traceback" not in result.stderr
    address = project.hosts[0].address
    assert served_version(address) == "v2"
    assert websocket_echo(address, "still") == "v2 still"
