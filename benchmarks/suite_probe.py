"""A pytest plugin that measures what the test suite spends on sandbox hosts (benchmarks/RESULTS.md,
section 6): every `Sandbox.up` (its size, seconds, the test that asked) and `down`, and each test
module's wall time, one line each, with the xdist worker, appended to $SUITE_PROBE_LOG.

    SUITE_PROBE_LOG=/tmp/probe.log python3 -m pytest -p benchmarks.suite_probe tests/hosts tests/faults

Not part of the suite: it only watches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from typing import Any

import pytest

from deploy.sandbox import machines

LOG = os.environ.get("SUITE_PROBE_LOG", "suite-probe.log")
_started: dict[str, float] = {}


def _log(line: str) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "-")
    with open(LOG, "a", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%H:%M:%S')} {worker} {line}\n")


_up, _down = machines.Sandbox.up, machines.Sandbox.down


def _timed_up(self: machines.Sandbox, count: int = 1, *args: Any, **kwargs: Any) -> Any:
    began = time.monotonic()
    try:
        return _up(self, count, *args, **kwargs)
    finally:
        test = os.environ.get("PYTEST_CURRENT_TEST", "")
        _log(f"UP n={count} {time.monotonic() - began:.1f}s {test}")


def _timed_down(self: machines.Sandbox, *args: Any, **kwargs: Any) -> None:
    began = time.monotonic()
    try:
        _down(self, *args, **kwargs)
    finally:
        _log(f"DOWN {time.monotonic() - began:.1f}s")


machines.Sandbox.up = _timed_up  # type: ignore[method-assign]
machines.Sandbox.down = _timed_down  # type: ignore[method-assign]


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _module(item) not in _started:
        _started[_module(item)] = time.monotonic()
        _log(f"MODULE-START {_module(item)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    yield
    module = _module(item)
    if nextitem is None or _module(nextitem) != module:
        _log(f"MODULE-END {module} {time.monotonic() - _started[module]:.1f}s")
