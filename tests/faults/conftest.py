"""Fixtures of the fault tests: one private sandbox of two hosts for the whole run, with the example app live.

The hosts come from the same `deploy.sandbox` API and helpers as tests/hosts (prerequisite check,
progress lines) and the app from tests/hosts/pushkit.py. The sandbox is private, not the session's
shared `sandbox` fixture: these tests reboot a host, fill its disk, cut its link and rewrite its
known_hosts entry, which the shared sandbox's own tests must never see.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.sandbox import Sandbox
from tests.faults.faultkit import configure, write_note
from tests.hosts.conftest import _report, _require
from tests.hosts.pushkit import Project, make_project

#: Two hosts: enough to see one host fail while the other must go back, cheap on two cores.
FAULT_HOSTS = 2


@pytest.fixture(scope="session")
def fault_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    _require()
    box = Sandbox(tmp_path_factory.mktemp("faults-sandbox"), progress=_report)
    try:
        box.up(FAULT_HOSTS)
        yield box
    finally:
        box.down()


@pytest.fixture(scope="session")
def live_project(fault_box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The example app set up and pushed (version v1) on every host, with a note in its shared data."""
    project = make_project(tmp_path_factory.mktemp("faults-project"), fault_box.hosts())
    with (project.path / ".gitignore").open("a", encoding="utf-8") as handle:
        handle.write("faults-*.yaml\n")
    project.commit("ignore the fault tests' own configs")
    configure(project)
    project.deploy("setup", check=True)
    project.deploy("push", check=True)
    for host in project.hosts:
        write_note(fault_box, host)
    return project
