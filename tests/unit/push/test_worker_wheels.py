"""A push stops before any host changes when the wheels cannot give Gunicorn its worker class."""

from __future__ import annotations

import pytest

from deploy.push.wheels import worker_problem

pytestmark = pytest.mark.unit

BASE = [
    "gunicorn-27.0.1-py3-none-any.whl",
    "packaging-26.3-py3-none-any.whl",
    "fastapi-0.165.0-py3-none-any.whl",
]


@pytest.mark.parametrize(
    ("worker_class", "extra", "expected"),
    [
        ("sync", [], None),
        ("asgi", [], None),
        ("uvicorn_worker.UvicornWorker", ["uvicorn_worker-0.4.0-py3-none-any.whl"], None),
        (
            "uvicorn_worker.UvicornWorker",
            [],
            "gunicorn.worker_class uvicorn_worker.UvicornWorker needs uvicorn-worker, which requirements.txt "
            "does not install: add it there, or choose another gunicorn.worker_class",
        ),
        ("gevent", ["gevent-25.9.1-cp311-cp311-manylinux_2_28_x86_64.whl"], None),
        ("gevent", [], "gunicorn.worker_class gevent needs gevent, which requirements.txt does not install"),
        (
            "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
            [
                "gevent_websocket-0.10.1-py3-none-any.whl",
                "gevent-26.9.0-cp311-cp311-manylinux_2_28_x86_64.whl",
            ],
            None,
        ),
        (
            "eventlet",
            ["eventlet-0.41.3-py3-none-any.whl"],
            "gunicorn.worker_class eventlet was removed in gunicorn 26; requirements.txt installs 27.0.1",
        ),
    ],
)
def test_the_worker_must_come_with_the_wheels(
    worker_class: str, extra: list[str], expected: str | None
) -> None:
    problem = worker_problem(worker_class, [*BASE, *extra], "requirements.txt")
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(expected), problem


def test_gunicorns_asgi_worker_needs_gunicorn_24() -> None:
    wheels = ["gunicorn-23.0.0-py3-none-any.whl"]
    assert worker_problem("asgi", wheels, "requirements.txt") == (
        "gunicorn.worker_class asgi needs gunicorn>=24.0; requirements.txt installs 23.0.0"
    )
    assert worker_problem("asgi", ["gunicorn-24.0.0-py3-none-any.whl"], "requirements.txt") is None


def test_gevent_workers_need_gunicorns_gevent_extra() -> None:
    """Gunicorn 27's gevent worker imports packaging, which only gunicorn[gevent] installs (a real push
    of Flask-SocketIO failed on it: tests/hosts/test_socketio.py)."""
    wheels = ["gunicorn-27.0.1-py3-none-any.whl", "gevent-26.9.0-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert worker_problem("gevent", wheels, "requirements.txt") == (
        "gunicorn.worker_class gevent imports packaging, which requirements.txt does not install (Gunicorn "
        "27.0.1 brings it with its gevent extra): require gunicorn[gevent]==27.0.1"
    )
    assert worker_problem("gevent", [*wheels, "packaging-26.3-py3-none-any.whl"], "requirements.txt") is None


def test_gunicorn_itself_must_come_with_the_wheels() -> None:
    """fastapi-ml-skeleton's Poetry dependencies name uvicorn, not gunicorn: the push uploaded the release
    and every slot then failed with 'Failed to locate executable .../.venv/bin/gunicorn'."""
    wheels = ["fastapi-0.109.1-py3-none-any.whl", "uvicorn-0.25.0-py3-none-any.whl"]
    assert worker_problem("asgi", wheels, "pyproject.toml") == (
        "gunicorn is not among what pyproject.toml installs: add gunicorn (pinned) there"
    )
    assert worker_problem("sync", wheels, "pyproject.toml") is not None
