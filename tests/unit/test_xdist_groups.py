"""On pytest-xdist workers (`-n 2 --dist loadgroup`) a test module is one unit of work, so its
module fixtures (a private sandbox, an app set up and pushed) are made once, on one worker; the fault
modules sharing tests/faults/conftest.py's live app are one unit together (tests/conftest.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GRAB = """
import sys, pytest
class Grab:
    def pytest_collection_finish(self, session):
        for item in session.items:
            marks = [m.args[0] for m in item.iter_markers("xdist_group")]
            print("GROUP", item.nodeid.split("::")[0], "|".join(marks))
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-n", "0", *sys.argv[1:]],
                     plugins=[Grab()]))
"""


def _groups(*paths: str) -> dict[str, set[str]]:
    argv = [sys.executable, "-c", GRAB, *paths]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    groups: dict[str, set[str]] = defaultdict(set)
    for line in out.stdout.splitlines():
        if line.startswith("GROUP "):
            _, module, marks = line.split(" ", 2)
            groups[module].add(marks)
    return groups


@pytest.mark.unit
def test_each_module_is_one_group_and_the_fault_modules_on_the_live_app_share_one() -> None:
    groups = _groups(
        "tests/faults",
        "tests/hosts/test_push.py",
        "tests/hosts/test_jobs.py",
        "tests/hosts/test_https.py",
        "tests/hosts/test_check_live.py",
    )
    assert groups, "nothing collected"
    for module, marks in groups.items():
        assert len(marks) == 1, f"{module}: its tests are in several groups {marks}"
        assert "|" not in next(iter(marks)), f"{module}: a test in two groups {marks}"
    one = {module: next(iter(marks)) for module, marks in groups.items()}
    assert one["tests/hosts/test_push.py"] == "tests/hosts/test_push.py"
    assert one["tests/hosts/test_jobs.py"] == "tests/hosts/test_jobs.py"
    # The modules whose tests use `fault_box` (and `live_project` on it) share one worker and one app.
    for module in ("test_hooks", "test_host_faults", "test_kill", "test_lock_release", "test_switch_faults"):
        assert one[f"tests/faults/{module}.py"] == "faults-live-app", module
    # The HTTPS site (two hosts, pebble certificates, the app pushed) is one, for both of its modules.
    assert one["tests/hosts/test_https.py"] == one["tests/hosts/test_check_live.py"] == "https-site"
    # Modules with their own sandbox are groups of their own.
    assert one["tests/faults/test_signals.py"] == "tests/faults/test_signals.py"
    assert one["tests/faults/test_config_fuzz.py"] == "tests/faults/test_config_fuzz.py"


@pytest.mark.slow  # two xdist workers start: tens of seconds on a busy machine
def test_under_loadgroup_a_module_runs_on_one_worker() -> None:
    """The groups reach xdist's scheduler (the hook runs before xdist reads the marks): every test of a
    module is reported by the same worker, and both workers get work."""
    modules = ["tests/unit/config/test_redact.py", "tests/unit/config/test_csp.py"]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup", "-v",
         *modules],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    workers: dict[str, set[str]] = defaultdict(set)
    for worker, nodeid in re.findall(r"^\[(gw\d+)\] \[ *\d+%\] PASSED (\S+)", out.stdout, re.M):
        workers[nodeid.split("::")[0]].add(worker)
    assert set(workers) == set(modules), out.stdout
    for module, seen in workers.items():
        assert len(seen) == 1, f"{module} ran on {seen}"
    assert len(set().union(*workers.values())) == 2, workers
