"""The host-count curve (#19): a code-only push of the example app to 1, 3, 10 and 20 sandbox hosts.

Run as root: python benchmarks/bench_hosts.py [--counts 1,3,10,20] [--runs 3]. Boots its own sandbox
of max(counts) hosts (and records what each costs: boot time, CPU of its boot, memory), sets up one
project of the example app per host count (the first N hosts), then in rounds pushes a one-line code
change with each host count in turn, the counts interleaved, and records for every push:
- the wall time of the whole `deploy push --json` command and its phase times (first start to last end
  of each step over the hosts);
- the deploy process's CPU seconds and peak RSS (os.wait4 of that very process);
- the CPU the hosts spent on the push (their cgroups' cpu.stat), and of it the app's slots (the unit
  that booted: `system-<app>.slice`), per host;
- bytes sent to the hosts (their veth pairs) and the load average at the start.
Writes benchmarks/results/hosts.json and prints the medians as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import (
    RESULTS,
    Project,
    Sandbox,
    SandboxHost,
    deploy_env,
    loadavg,
    machine,
    make_project,
    veth_bytes,
)

#: A push stops the slot it replaced 1 s after its switch; each timed push starts once that happened.
SETTLE_SECONDS = 2.0
#: Seconds a slot gets to answer /health (push.health_timeout).
HEALTH_TIMEOUT = 60


def host_cpu(box: Sandbox, hosts: list[SandboxHost]) -> dict[tuple[str, str], float]:
    """CPU seconds so far of each host (unit "host") and of each of its units."""
    cpu: dict[tuple[str, str], float] = {}
    for host in hosts:
        cost = box.usage(host)
        if cost is None:
            raise RuntimeError(f"{host.name} is not running")
        cpu[host.name, "host"] = cost.cpu_seconds
        cpu.update({(host.name, unit): seconds for unit, seconds in cost.units.items()})
    return cpu


def spent(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict[str, float]:
    """CPU seconds each unit used between the two readings, summed over the hosts.

    A unit's cgroup goes when it stops and comes back empty when it starts again: a unit that
    counts less than before was restarted (its whole count is new), one that is gone is left out
    (the host's own count keeps what it used). The app's slots count as one, "slots": a push boots one.
    """
    totals: dict[str, float] = {}
    for (host, unit), now in after.items():
        was = before.get((host, unit), 0.0)
        name = "slots" if unit.startswith("flaskr@") else unit
        totals[name] = totals.get(name, 0.0) + (now - was if now >= was else now)
    return totals


def phases(output: str) -> dict[str, float]:
    """Each step's span over the hosts (first start to last end), from `deploy push --json`."""
    spans: dict[str, list[float]] = {}
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "step":
            span = spans.setdefault(event["step"], [float("inf"), 0.0])
            if event["status"] == "start":
                span[0] = min(span[0], event["elapsed"])
            else:
                span[1] = max(span[1], event["elapsed"])
        elif event.get("event") == "result":
            spans["push (deploy's own timer)"] = [0.0, event["seconds"]]
    return {name: round(end - start, 3) for name, (start, end) in spans.items()}


def example(root: Path, hosts: list[SandboxHost]) -> Project:
    """The example app for `hosts`, with a health gate long enough for a slot that boots on a machine
    whose cores twenty hosts share (the host tests' 8 s is for three)."""
    made = make_project(root, hosts)
    config = made.path / "deploy.yaml"
    config.write_text(config.read_text().replace("health_timeout: 8", f"health_timeout: {HEALTH_TIMEOUT}"))
    made.commit("health gate for many hosts")
    return made


def one_push(box: Sandbox, project: Project, tag: str) -> dict[str, Any]:
    project.set_version(tag)
    time.sleep(SETTLE_SECONDS)
    hosts = project.hosts
    cpu_before = host_cpu(box, hosts)
    sent_before = sum(veth_bytes(h)[0] for h in hosts)
    load = os.getloadavg()[0]
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy", "push", "--json"],
            cwd=project.path,
            env=deploy_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _pid, status, rusage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        out.seek(0)
        output = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"deploy push to {len(hosts)} host(s) failed:\n{output[-3000:]}")
    used = {unit: cpu / len(hosts) for unit, cpu in spent(cpu_before, host_cpu(box, hosts)).items()}
    return {
        "wall": round(wall, 3),
        "load": round(load, 2),
        "phases": phases(output),
        "deploy_cpu": round(rusage.ru_utime + rusage.ru_stime, 3),
        "deploy_peak_rss_mb": round(rusage.ru_maxrss / 1024, 1),
        "host_cpu_per_host": round(used["host"], 3),
        "slot_cpu_per_host": round(used.get("slots", 0.0), 3),
        # Where the rest goes: each unit's CPU per host (ssh.service runs the push's commands).
        "units_per_host": {k: round(v, 3) for k, v in sorted(used.items()) if k != "host" and v >= 0.005},
        "bytes_sent": sum(veth_bytes(h)[0] for h in hosts) - sent_before,
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return round(float(statistics.median(r[key] for r in runs)), 3)

    names = sorted({name for r in runs for name in r["phases"]})
    units = sorted({name for r in runs for name in r["units_per_host"]})
    return {
        **{key: median(key) for key in runs[0] if key not in ("phases", "load", "units_per_host")},
        "phases": {n: round(statistics.median(r["phases"].get(n, 0.0) for r in runs), 3) for n in names},
        "units_per_host": {
            u: round(statistics.median(r["units_per_host"].get(u, 0.0) for r in runs), 3) for u in units
        },
    }


def boot_costs(box: Sandbox, hosts: list[SandboxHost]) -> dict[str, Any]:
    """What each idle, just-booted host costs: CPU of its boot and memory."""
    costs = [box.usage(h) for h in hosts]
    cpu = [c.cpu_seconds for c in costs if c is not None]
    memory = [c.memory_bytes / 2**20 for c in costs if c is not None]
    source = next((c.memory_source for c in costs if c is not None), "")
    return {
        "boot_cpu_per_host_median": round(statistics.median(cpu), 3),
        "memory_per_host_mib_median": round(statistics.median(memory), 1),
        "memory_per_host_mib_max": round(max(memory), 1),
        "memory_source": source,
    }


def table(results: dict[str, Any]) -> str:
    curve = results["curve"]
    one = curve[str(min(int(n) for n in curve))]["wall"]
    rows = [
        "| hosts | wall | x 1 host | deploy CPU | deploy peak RSS | host CPU per host | "
        "slot CPU per host | floor (N x host CPU / cores) | bytes sent |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cores = results["machine"]["cores"]
    for n, row in curve.items():
        floor = int(n) * row["host_cpu_per_host"] / cores
        rows.append(
            f"| {n} | {row['wall']:.2f} s | {row['wall'] / one:.2f}x | {row['deploy_cpu']:.2f} s | "
            f"{row['deploy_peak_rss_mb']:.1f} MB | {row['host_cpu_per_host']:.3f} s | "
            f"{row['slot_cpu_per_host']:.3f} s | {floor:.2f} s | {int(row['bytes_sent']):,} |"
        )
    return (
        "\n".join(rows)
        + "\n\n"
        + breakdown(curve, "phases", "s")
        + "\n\n"
        + breakdown(curve, "units_per_host", "s")
    )


def breakdown(curve: dict[str, Any], key: str, unit: str) -> str:
    """One row per host count, one column per phase (or per unit): their medians."""
    names = sorted({name for row in curve.values() for name in row[key]})
    lines = [f"| hosts | {' | '.join(names)} |", "|---:|" + "---:|" * len(names)]
    for n, row in curve.items():
        lines.append(
            f"| {n} | " + " | ".join(f"{row[key].get(name, 0.0):.3f} {unit}" for name in names) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,3,10,20", help="Host counts, comma-separated.")
    parser.add_argument("--runs", type=int, default=3, help="Rounds (one push per host count each).")
    options = parser.parse_args()
    counts = [int(n) for n in options.counts.split(",")]
    results: dict[str, Any] = {"machine": machine(), "load_before": loadavg(), "runs": options.runs}
    raw: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory() as tmp:
        box = Sandbox(Path(tmp) / "sandbox", progress=lambda m: None)
        try:
            started = time.monotonic()
            hosts = box.up(max(counts), acme=False)
            results["sandbox_up_seconds"] = round(time.monotonic() - started, 2)
            results["hosts_booted"] = len(hosts)
            results["boot"] = boot_costs(box, hosts)
            projects = {n: example(Path(tmp) / f"n{n}", hosts[:n]) for n in counts}
            for made in projects.values():
                made.deploy("setup", check=True, timeout=600)
                made.deploy("push", check=True, timeout=600)
            for run in range(options.runs):
                for n in counts:
                    raw[n].append(one_push(box, projects[n], f"r{run}-n{n}"))
                    print(json.dumps({"hosts": n, **raw[n][-1]}), file=sys.stderr)
        finally:
            box.down()
    results["load_after"] = loadavg()
    results["curve"] = {str(n): summary(raw[n]) for n in counts}
    results["raw"] = {str(n): raw[n] for n in counts}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hosts.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
