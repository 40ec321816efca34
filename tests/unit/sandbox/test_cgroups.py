"""Removing a sandbox's cgroups at down: deepest first, never one with a process in it.

The trees are real folders shaped as cgroups (a cgroup's files cannot be removed, only the folder):
empty folders stand for empty cgroups, and a `cgroup.procs` file naming a process for a busy one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deploy.sandbox.processes import remove_cgroups

pytestmark = pytest.mark.unit


def test_empty_cgroups_go_deepest_first_and_a_busy_one_stays_at_once(tmp_path: Path) -> None:
    empty = tmp_path / "deploy-sandbox-aaaa"
    (empty / "sandbox-1" / "payload" / "init.scope").mkdir(parents=True)
    (empty / "sandbox-2" / "supervisor").mkdir(parents=True)
    busy = tmp_path / "deploy-sandbox-bbbb"
    (busy / "sandbox-1" / "payload").mkdir(parents=True)
    (busy / "sandbox-1" / "payload" / "cgroup.procs").write_text("4242\n")
    started = time.monotonic()
    assert remove_cgroups([empty, busy], timeout=30) == [busy]
    # A process is in it: no point in waiting for it to go.
    assert time.monotonic() - started < 5
    assert not empty.exists()
    assert (busy / "sandbox-1" / "payload" / "cgroup.procs").read_text() == "4242\n"


def test_a_cgroup_that_stays_without_a_process_is_tried_again_until_the_timeout(tmp_path: Path) -> None:
    # An empty cgroup the kernel still holds (an ended process not reaped yet) cannot be removed for
    # a moment; a file here keeps the folder from going in the same way, and no process is named.
    held = tmp_path / "deploy-sandbox-cccc"
    held.mkdir()
    (held / "cpu.stat").write_text("usage_usec 1\n")
    started = time.monotonic()
    assert remove_cgroups([held], timeout=0.5) == [held]
    assert time.monotonic() - started >= 0.5
