"""Pebble in host tests: the sandbox's own ACME server (`deploy.sandbox.acme`), started by `Sandbox.up`.

Pebble listens on the machine side of the first sandbox host's veth (every other host has a route to
it), and pebble-challtestsrv answers every name with the first host's address unless a test points a
name elsewhere (`AcmeServer.point`). Challenges are really validated on the hosts' port 80: never
PEBBLE_VA_ALWAYS_VALID. Because each sandbox's pebble binds to its own gateway address, the session's
sandbox and a test's private one run their ACME servers side by side without sharing a port.
"""

from __future__ import annotations

from deploy.sandbox.acme import TOOLS, AcmeServer
from deploy.sandbox.machines import Sandbox
from tests.conftest import require_tools

__all__ = ["AcmeServer", "require_pebble", "sandbox_pebble"]


def require_pebble() -> None:
    """Skip with the install line when pebble is missing; fail under CI=true (see tests/conftest.py)."""
    require_tools(*TOOLS)


def sandbox_pebble(box: Sandbox) -> AcmeServer:
    """The ACME server `box.up()` started; skip when pebble is not installed."""
    require_pebble()
    server = box.acme()
    assert server is not None, f"the sandbox in {box.state_dir} is up without its ACME server"
    return server
