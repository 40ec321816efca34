"""What a sandbox host costs, read from its cgroup: CPU of the host and of each unit, memory, processes.

The cgroup trees here are real folders shaped as the kernel lays them out (cpu.stat, cgroup.procs,
memory.current); the PSS case reads this test's own process from /proc.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli.sandbox import sandbox_group
from deploy.sandbox.usage import cpu_seconds, processes, pss_bytes, unit_cpu, usage

pytestmark = pytest.mark.unit


def cgroup(path: Path, usec: int, pids: tuple[int, ...] = ()) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cpu.stat").write_text(f"usage_usec {usec}\nuser_usec {usec // 2}\nsystem_usec {usec // 2}\n")
    (path / "cgroup.procs").write_text("".join(f"{pid}\n" for pid in pids))
    return path


def host_tree(root: Path) -> Path:
    host = cgroup(root / "sandbox-1", 2_500_000)
    cgroup(host / "payload", 2_400_000)
    cgroup(host / "payload" / "init.scope", 100_000, (os.getpid(),))
    cgroup(host / "payload" / "system.slice", 2_000_000)
    cgroup(host / "payload" / "system.slice" / "ssh.service", 1_250_000)
    slots = cgroup(host / "payload" / "system.slice" / "system-flaskr.slice", 700_000)
    cgroup(slots / "flaskr@blue.service", 450_000)
    cgroup(slots / "flaskr@green.service", 250_000)
    return host


def test_cpu_of_the_host_and_of_each_unit(tmp_path: Path) -> None:
    host = host_tree(tmp_path)
    assert cpu_seconds(host) == 2.5
    units = unit_cpu(host)
    assert units == {
        "init.scope": 0.1,
        "ssh.service": 1.25,
        "flaskr@blue.service": 0.45,
        "flaskr@green.service": 0.25,
    }
    # A unit that stopped between the walk and the read counts as nothing, not as an error.
    assert cpu_seconds(host / "payload" / "system.slice" / "gone.service") == 0.0


def test_memory_current_is_used_where_the_memory_controller_is(tmp_path: Path) -> None:
    host = host_tree(tmp_path)
    (host / "memory.current").write_text("14680064\n")
    cost = usage(host)
    assert (cost.memory_bytes, cost.memory_source) == (14680064, "memory.current")
    assert cost.processes == 1
    assert cost.cpu_seconds == 2.5
    assert cost.units["flaskr@blue.service"] == 0.45


def test_else_the_pss_of_the_hosts_processes(tmp_path: Path) -> None:
    host = host_tree(tmp_path)
    cost = usage(host)
    assert cost.memory_source == "pss"
    assert cost.memory_bytes == pytest.approx(pss_bytes(os.getpid()), rel=0.5)
    assert cost.memory_bytes > 1_000_000
    assert processes(host) == [os.getpid()]
    assert pss_bytes(2**22 + 12345) == 0  # no such process


def test_sandbox_list_offers_usage() -> None:
    runner = CliRunner()
    result = runner.invoke(sandbox_group, ["list", "--help"])
    assert result.exit_code == 0
    assert "--usage" in result.output
    assert "CPU seconds" in result.output
