"""Fixtures of the fault tests: one private sandbox of two hosts for the whole run, with the example app live.

The hosts come from the same `deploy.sandbox.machines` API and helpers as tests/hosts (prerequisite check,
progress lines) and the app from tests/hosts/pushkit.py. The sandbox is private, not the session's
shared `sandbox` fixture: these tests reboot a host, fill its disk, cut its link and rewrite its
known_hosts entry, which the shared sandbox's own tests must never see.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from deploy.sandbox.machines import Sandbox
from tests.faults.faultkit import configure, write_note
from tests.hosts.conftest import _report, _require
from tests.hosts.pushkit import Project, make_project

#: Two hosts: enough to see one host fail while the other must go back, cheap on two cores.
FAULT_HOSTS = 2


@contextmanager
def booted(tmp_path_factory: pytest.TempPathFactory, name: str, count: int) -> Iterator[Sandbox]:
    """A private sandbox of `count` hosts, taken down when the block ends."""
    _require()
    box = Sandbox(tmp_path_factory.mktemp(name), progress=_report)
    try:
        box.up(count)
        yield box
    finally:
        box.down()


def live_app(box: Sandbox, tmp_path_factory: pytest.TempPathFactory, name: str) -> Project:
    """The example app set up and pushed (version v1) on every host of `box`, with a note in its
    shared data."""
    project = make_project(tmp_path_factory.mktemp(name), box.hosts())
    with (project.path / ".gitignore").open("a", encoding="utf-8") as handle:
        handle.write("faults-*.yaml\n")
    project.commit("ignore the fault tests' own configs")
    configure(project)
    project.deploy("setup", check=True)
    project.deploy("push", check=True)
    for host in project.hosts:
        write_note(box, host)
    return project


@pytest.fixture(scope="session")
def fault_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with booted(tmp_path_factory, "faults-sandbox", FAULT_HOSTS) as box:
        yield box


@pytest.fixture(scope="session")
def live_project(fault_box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The example app set up and pushed (version v1) on every host, with a note in its shared data."""
    return live_app(fault_box, tmp_path_factory, "faults-project")
