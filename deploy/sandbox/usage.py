"""What each sandbox host costs this machine, read from its cgroup: CPU seconds and memory.

Every host runs in its own cgroup (`deploy-sandbox-<tag>/sandbox-N`), and its systemd makes one
sub-cgroup per unit under `payload/`, so the CPU of a host and of each of its units (a slot's
`flaskr@blue.service`) can be read from here even when the host's systemd has no CPU accounting.
Memory: `memory.current` where the memory controller is on the unified hierarchy; elsewhere (a
hybrid cgroup v1 machine) the proportional set size (PSS) of the host's processes, which shares the
pages of the common root filesystem fairly among the hosts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from deploy.sandbox.processes import cgroup_roots


@dataclass(frozen=True)
class HostUsage:
    """One host's cost: CPU seconds since it booted, memory now, and CPU seconds per unit."""

    cpu_seconds: float
    memory_bytes: int
    #: "memory.current" (the cgroup's own count) or "pss" (its processes' proportional set size).
    memory_source: str
    processes: int
    units: dict[str, float] = field(default_factory=dict)


def host_cgroup(cgroup_name: str, host_name: str) -> Path | None:
    """The host's cgroup on the unified (v2) hierarchy, or None if it has none (not running)."""
    for root in cgroup_roots():
        group = root / cgroup_name / host_name
        if (group / "cpu.stat").is_file():
            return group
    return None


def cpu_seconds(group: Path) -> float:
    """The CPU time of everything that ran in `group` and below (cpu.stat usage_usec); 0 if gone."""
    try:
        text = (group / "cpu.stat").read_text(encoding="utf-8")
    except OSError:
        return 0.0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    return 0.0


def unit_cpu(group: Path) -> dict[str, float]:
    """CPU seconds of each unit the host's systemd runs (`nginx.service`, `flaskr@blue.service`...)."""
    units: dict[str, float] = {}
    payload = group / "payload"
    for parent, dirs, _files in os.walk(payload, onerror=lambda _error: None):
        for name in dirs:
            if name.endswith((".service", ".scope")):
                units[name] = cpu_seconds(Path(parent) / name)
    return units


def processes(group: Path) -> list[int]:
    """Every process in `group` and its sub-cgroups."""
    pids: list[int] = []
    for parent, _dirs, files in os.walk(group, onerror=lambda _error: None):
        if "cgroup.procs" in files:
            try:
                text = (Path(parent) / "cgroup.procs").read_text(encoding="utf-8")
            except OSError:
                continue
            pids.extend(int(pid) for pid in text.split())
    return pids


def pss_bytes(pid: int) -> int:
    """The proportional set size of a process (0 if it has ended or hides it)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="utf-8")
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def usage(group: Path) -> HostUsage:
    """The host whose cgroup is `group`: its CPU, its memory and its units' CPU."""
    pids = processes(group)
    current = group / "memory.current"
    if current.is_file():
        memory, source = int(current.read_text(encoding="utf-8")), "memory.current"
    else:
        memory, source = sum(pss_bytes(pid) for pid in pids), "pss"
    return HostUsage(cpu_seconds(group), memory, source, len(pids), unit_cpu(group))
