"""An ASGI app (FastAPI, real packages from PyPI) with a WebSocket endpoint on a sandbox host.

It serves HTTP and WebSocket through Nginx under the maintained uvicorn-worker, then a push that moves
it to Gunicorn's own ASGI worker runs under continuous HTTP requests and WebSocket handshakes (each
one echoes a message): none of them may fail.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import ROOT_COMMIT_DATE, Project, git, private_sandbox

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


def websocket_echo(address: str, message: str, timeout: float = 10) -> str:
    """Open a WebSocket to ws://DOMAIN/ws through `address`, send one text message, return the reply."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((address, 80), timeout=timeout) as sock:
        sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {DOMAIN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        reader = sock.makefile("rb")
        status = reader.readline().decode("latin-1").strip()
        if " 101 " not in f"{status} ":
            raise OSError(f"handshake answered {status!r}")
        while reader.readline() not in (b"\r\n", b""):
            pass
        payload = message.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        head = reader.read(2)
        if len(head) < 2:
            raise OSError("the connection closed before the echo")
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", reader.read(2))
        reply = reader.read(length)
        if opcode != 1:
            raise OSError(f"frame opcode {opcode} instead of text: {reply!r}")
        sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))  # close (masked, empty)
        return reply.decode()


def _websocket_round(address: str, n: int) -> tuple[str, str]:
    reply = websocket_echo(address, f"m{n}")
    return ("ok" if reply.endswith(f" m{n}") else "wrong echo"), reply.split(" ", 1)[0]


def _http_round(address: str, n: int) -> tuple[str, str]:
    import json

    path = ("/health", "/")[n % 2]
    status, body = get_chat(address, path)
    version = str(json.loads(body).get("version", "")) if status == 200 and path == "/health" else ""
    return ("ok" if status == 200 else f"http {status}"), version


@dataclass
class Loop:
    """One kind of request (`round(address, n)` -> (outcome, version)) in a loop from a few threads."""

    address: str
    round: Callable[[str, int], tuple[str, str]]
    threads: int = 2
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                key, version = self.round(self.address, n)
            except OSError as exc:
                key, version = "error", ""
                with self._lock:
                    if len(self.errors) < 20:
                        self.errors.append(str(exc))
            with self._lock:
                self.counts[key] += 1
                if version:
                    self.versions[version] += 1

    def __enter__(self) -> Loop:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)
        deadline = time.monotonic() + 30
        while sum(self.counts.values()) < self.threads:
            assert time.monotonic() < deadline, "no request finished in 30 s"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=15)

    @property
    def failed(self) -> int:
        return sum(n for key, n in self.counts.items() if key != "ok")


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
