"""Sandbox hosts for host tests: one shared sandbox per test session, and throwaway ones on request.

Fixtures:
- `sandbox` (session): a `deploy.sandbox.machines.Sandbox` with $DEPLOY_TEST_SANDBOX_HOSTS hosts (default 3),
  booted once and shared by every test module of the session; torn down at the end. While it is up,
  $DEPLOY_SANDBOX_DIR points at its state, so `deploy ... -e sandbox` (in this process or in a
  subprocess) reaches its hosts. As for users, `up` also starts the sandbox's ACME server when pebble
  is installed (`sandbox.acme()`), so `tls: {email: ...}` gets real certificates under -e sandbox.
- `sandbox_hosts` (session): its hosts, a list of `SandboxHost` (name, address, user, port, key,
  known_hosts, environment_file, ssh_argv(cmd)). Use `sandbox.run(host, [...])` to run a command.
- `site`, `issued`, `app_deployed` (session): the HTTPS site of tests/hosts/https_site.py (two hosts,
  pebble certificates, the example app), shared by test_https.py and test_check_live.py.
- `make_sandbox` (function): `make_sandbox(n)` boots a separate sandbox of n hosts that only this
  test uses (for tests that break hosts); it is torn down when the test ends.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox, SandboxError, SandboxHost, check_prerequisites
from tests.hosts.https_site import app_deployed, issued, site  # noqa: F401 - session fixtures, shared

#: How many hosts the shared sandbox has.
SANDBOX_HOSTS = int(os.environ.get("DEPLOY_TEST_SANDBOX_HOSTS", "3"))


def _report(message: str) -> None:
    print(f"[sandbox] {message}", file=sys.__stderr__, flush=True)


def _require() -> None:
    try:
        check_prerequisites()
    except SandboxError as exc:
        pytest.fail(f"host tests need the sandbox: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The session's shared sandbox, up for the whole session."""
    _require()
    state = tmp_path_factory.mktemp("sandbox")
    patch = pytest.MonkeyPatch()
    patch.setenv("DEPLOY_SANDBOX_DIR", str(state))
    box = Sandbox(state, progress=_report)
    try:
        box.up(SANDBOX_HOSTS)
        yield box
    finally:
        try:
            box.down()
        finally:
            patch.undo()


@pytest.fixture(scope="session")
def sandbox_hosts(sandbox: Sandbox) -> list[SandboxHost]:
    """The shared sandbox's hosts, sandbox-1 first."""
    return sandbox.hosts()


@pytest.fixture
def make_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], Sandbox]]:
    """Boot private sandboxes for one test; each is torn down after the test."""
    _require()
    made: list[Sandbox] = []

    def make(count: int = 1) -> Sandbox:
        box = Sandbox(Path(tmp_path_factory.mktemp("own-sandbox")), progress=_report)
        made.append(box)
        box.up(count)
        return box

    yield make
    for box in made:
        box.down()
