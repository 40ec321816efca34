"""Gunicorn's worker classes deploy knows: what each one serves, and the package it needs installed.

One table, read by the config model (the choices), the renderer (preload, WebSocket proxying), the
checks (an ASGI app behind a WSGI worker, a worker whose package is not in the requirements) and
`deploy init` (the worker a framework needs).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Worker:
    """One `gunicorn.worker_class` choice."""

    #: What Gunicorn is given (`worker_class = ...`).
    name: str
    #: The interface of the app it serves: "wsgi" or "asgi".
    interface: str
    #: The distribution (PyPI name) the release's virtualenv must have for Gunicorn to load the worker;
    #: None for Gunicorn's own workers that need nothing more.
    package: str | None
    #: Holds many connections per process (a WebSocket does not occupy a whole worker).
    concurrent: bool
    #: Patches the standard library at start: the app must not be imported before the worker is forked.
    patches: bool = False
    #: The lowest Gunicorn (major, minor) that has it, when Gunicorn itself provides it.
    gunicorn_since: tuple[int, int] | None = None
    #: The highest Gunicorn major version that still has it.
    gunicorn_until: int | None = None
    #: Gunicorn's extra whose packages the worker imports (`gunicorn[gevent]`: gevent and packaging;
    #: packaging came with Gunicorn itself until 26.0, and is in the extra since 26.1).
    extra: str | None = None


WORKERS: dict[str, Worker] = {
    w.name: w
    for w in (
        Worker("sync", "wsgi", None, concurrent=False),
        Worker("gthread", "wsgi", None, concurrent=False),
        Worker("gevent", "wsgi", "gevent", concurrent=True, patches=True, extra="gevent"),
        # Removed from Gunicorn in 26.0 (deprecated before): Flask-SocketIO's eventlet setups.
        Worker("eventlet", "wsgi", "eventlet", concurrent=True, patches=True, gunicorn_until=25),
        # Flask-SocketIO's documented gevent worker with WebSocket support (gevent-websocket).
        Worker(
            "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
            "wsgi",
            "gevent-websocket",
            concurrent=True,
            patches=True,
            extra="gevent",
        ),
        # Gunicorn's own ASGI worker (gunicorn/workers/gasgi.py, registered as "asgi"; beta in 24.0).
        Worker("asgi", "asgi", None, concurrent=True, gunicorn_since=(24, 0)),
        # The maintained Uvicorn worker (PyPI uvicorn-worker; uvicorn.workers is deprecated).
        Worker("uvicorn_worker.UvicornWorker", "asgi", "uvicorn-worker", concurrent=True),
        Worker("uvicorn_worker.UvicornH11Worker", "asgi", "uvicorn-worker", concurrent=True),
    )
}

#: Worker classes deploy refuses, with what to write instead.
DEPRECATED: dict[str, str] = {
    "uvicorn.workers.UvicornWorker": "uvicorn.workers is deprecated and will be removed from uvicorn: "
    "use worker_class: uvicorn_worker.UvicornWorker (add uvicorn-worker to the requirements) or "
    "worker_class: asgi (Gunicorn 24+'s own ASGI worker)",
    "uvicorn.workers.UvicornH11Worker": "uvicorn.workers is deprecated and will be removed from uvicorn: "
    "use worker_class: uvicorn_worker.UvicornH11Worker (add uvicorn-worker to the requirements)",
}


#: What each of Gunicorn's extras installs that its workers import.
EXTRA_PACKAGES = {"gevent": ("gevent", "packaging")}


def worker(name: str) -> Worker:
    """The worker of a `gunicorn.worker_class` value (sync for an unknown one)."""
    return WORKERS.get(name, WORKERS["sync"])


def is_asgi(name: str) -> bool:
    return worker(name).interface == "asgi"
