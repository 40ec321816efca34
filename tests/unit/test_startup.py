"""`deploy --help` stays under 0.3 s: the CLI imports only click and its own light modules at startup;
each command imports what it needs when it runs (a lazy import in its body, with a comment saying so).

Wall time flakes on a busy machine, so this measures what startup does: which modules it loads, and the
CPU time a run takes (the median of a few runs)."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys

import pytest

HEAVY = ("pydantic", "yaml", "jinja2", "fabric", "paramiko", "rich", "cryptography", "packaging")


@pytest.mark.unit
def test_the_cli_loads_no_heavy_library_at_startup() -> None:
    code = "import sys, deploy.cli; print(' '.join(m for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(out.stdout.split())
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == []


def _cpu_seconds(argv: list[str]) -> float:
    """The CPU time (user + system) one run of `argv` takes: unlike wall time, it barely moves when
    other processes share the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, capture_output=True, timeout=60, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@pytest.mark.unit
def test_deploy_help_takes_under_0_3_seconds() -> None:
    runs = [_cpu_seconds([sys.executable, "-m", "deploy", "--help"]) for _ in range(5)]
    assert statistics.median(runs) < 0.3, runs


@pytest.mark.unit
def test_deploy_help_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "push" in out.stdout and "check" in out.stdout
