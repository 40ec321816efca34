"""Fixtures for tests on a real Docker engine: the daemon (started if needed) and the base image.

Not root (dockerd needs root), or root without docker.io or debootstrap: they skip with the reason,
except in CI (CI=true), where that is a failure, never a silent skip (tests/conftest.py's rule).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import unavailable
from tests.docker.engine import Unavailable, ensure_base_image, ensure_engine


def _unavailable(reason: str) -> None:
    unavailable(f"Docker tests cannot run: {reason}")


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """A Docker engine that answers `docker info`; dockerd is started in the background if needed
    and left running afterwards (log: /var/cache/deploy/docker-base/dockerd.log)."""
    if os.geteuid() != 0:
        unavailable("the Docker tests start dockerd and need root")
    try:
        return ensure_engine()
    except Unavailable as problem:
        _unavailable(str(problem))
        raise  # unreachable: _unavailable skips or fails


@pytest.fixture(scope="session")
def base_image(docker_engine: str) -> str:
    """The local stand-in for the python base image (no Docker Hub here), built once and cached."""
    try:
        return ensure_base_image()
    except Unavailable as problem:
        _unavailable(str(problem))
        raise
