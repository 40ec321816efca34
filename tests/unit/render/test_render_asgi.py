"""ASGI and WebSocket workers: the Gunicorn config they get, and Nginx passing WebSocket upgrades."""

from __future__ import annotations

import textwrap

import pytest

from deploy.config.loader import ConfigError, load_text
from deploy.config.model import Config
from deploy.config.workers import WORKERS
from deploy.render.render import render

pytestmark = pytest.mark.unit

CHAT = """\
app:
  name: chat-room
  wsgi: "chat:app"
  secrets: [SECRET_KEY]
server:
  domains: [chat.example.com]
  tls: {email: ops@example.com}
"""


def config(extra: str = "") -> Config:
    return load_text(CHAT + textwrap.dedent(extra), "deploy.yaml", None)


def files(extra: str = "") -> dict[str, str]:
    return render(config(extra))


@pytest.mark.parametrize("worker", sorted(WORKERS))
def test_each_worker_class_reaches_gunicorn_and_patching_workers_are_not_preloaded(worker: str) -> None:
    conf = files(f"gunicorn: {{worker_class: {worker}}}\n")["gunicorn.conf.py"]
    assert f'\nworker_class = "{worker}"\n' in conf
    patches = worker in ("gevent", "eventlet", "geventwebsocket.gunicorn.workers.GeventWebSocketWorker")
    assert ("\npreload_app = False\n" in conf) is patches
    assert ("\npreload_app = True\n" in conf) is not patches


@pytest.mark.parametrize("old", ["uvicorn.workers.UvicornWorker", "uvicorn.workers.UvicornH11Worker"])
def test_the_deprecated_uvicorn_worker_is_refused_with_the_fix(old: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(f"gunicorn: {{worker_class: {old}}}\n")
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith("deploy.yaml:8: gunicorn.worker_class: uvicorn.workers is deprecated")
    assert "uvicorn_worker.Uvicorn" in problem and "uvicorn-worker" in problem


def test_sync_workers_get_no_websocket_upgrades() -> None:
    out = files()
    proxy = out["nginx/snippets/chat-room-proxy.conf"]
    assert 'proxy_set_header Connection "";' in proxy
    assert "Upgrade" not in proxy
    assert "map $http_upgrade" not in out["nginx/chat-room.conf"]


@pytest.mark.parametrize(
    ("extra", "upgrades"),
    [
        ("gunicorn: {worker_class: asgi}", True),
        ("gunicorn: {worker_class: uvicorn_worker.UvicornWorker}", True),
        ("gunicorn: {worker_class: geventwebsocket.gunicorn.workers.GeventWebSocketWorker}", True),
        ("gunicorn: {worker_class: gthread, threads: 8}", False),
        ("gunicorn: {worker_class: gthread, threads: 8}\nnginx: {websockets: true}", True),
        ("gunicorn: {worker_class: asgi}\nnginx: {websockets: false}", False),
    ],
)
def test_websocket_upgrades_follow_the_worker_or_the_setting(extra: str, upgrades: bool) -> None:
    out = files(extra + "\n")
    proxy = out["nginx/snippets/chat-room-proxy.conf"]
    site = out["nginx/chat-room.conf"]
    assert ("proxy_set_header Upgrade $http_upgrade;" in proxy) is upgrades
    assert ("proxy_set_header Connection $chat_room_connection_upgrade;" in proxy) is upgrades
    assert ('proxy_set_header Connection "";' in proxy) is not upgrades
    # The map: an upgrade request sends "Connection: upgrade", any other request an empty header,
    # which keeps upstream keep-alive as it is without WebSockets. Its variable is this app's own.
    the_map = 'map $http_upgrade $chat_room_connection_upgrade {\n    default upgrade;\n    "" "";\n}'
    assert (the_map in site) is upgrades
    assert "proxy_http_version 1.1;" in proxy


def _forwarded_allow_ips(conf: str, argv: list[str], environ: dict[str, str]) -> object:
    """What the rendered gunicorn.conf.py sets forwarded_allow_ips to, run with this argv and environment."""
    import os
    import sys
    from unittest import mock

    import gunicorn.util  # type: ignore[import-untyped]

    namespace: dict[str, object] = {}
    with (
        mock.patch.object(sys, "argv", argv),
        mock.patch.dict(os.environ, environ, clear=True),
        # The config wraps Gunicorn's import_app when it runs: put Gunicorn's own back afterwards.
        mock.patch.object(gunicorn.util, "import_app", gunicorn.util.import_app),
    ):
        exec(compile(conf, "gunicorn.conf.py", "exec"), namespace)
    return namespace["forwarded_allow_ips"]


def test_uvicorn_workers_trust_nginx_on_the_unix_socket_only() -> None:
    pytest.importorskip("gunicorn")
    conf = files("gunicorn: {worker_class: uvicorn_worker.UvicornWorker}\n")["gunicorn.conf.py"]
    unix = ["gunicorn", "-c", "gunicorn.conf.py", "--bind", "unix:/run/chat/blue.sock", "chat:app"]
    tcp = ["gunicorn", "--config", "/app/gunicorn.conf.py", "--bind", "0.0.0.0:8000", "chat:app"]
    assert _forwarded_allow_ips(conf, unix, {}) == "*"
    assert _forwarded_allow_ips(conf, tcp, {}) == ""
    assert _forwarded_allow_ips(conf, tcp, {"FORWARDED_ALLOW_IPS": "172.18.0.2"}) == "172.18.0.2"
    # Gunicorn's own workers trust unix-socket peers themselves: nothing added for them.
    sync = files()["gunicorn.conf.py"]
    assert _forwarded_allow_ips(sync, unix, {}) == ""
