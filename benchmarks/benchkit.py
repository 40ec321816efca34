"""Shared helpers of the benchmarks: sandbox hosts, the example app, wrk runs, load averages, byte counts."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
RESULTS = HERE / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.sandbox.machines import Sandbox, SandboxHost  # noqa: E402
from tests.hosts.pushkit import DOMAIN, Project, make_project  # noqa: E402

__all__ = ["DOMAIN", "Project", "Sandbox", "SandboxHost", "make_project"]

WRK_SCRIPT = HERE / "wrk_report.lua"
SECRET_KEY = "test-secret-key-0123456789abcdef"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "node": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def on_host(
    box: Sandbox,
    host: SandboxHost,
    script: str,
    *,
    check: bool = True,
    timeout: float = 120,
    input: str | None = None,
) -> str:
    """Run a shell script on a sandbox host as root; return its stdout."""
    result = box.run(host, ["sh", "-c", script], timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"on {host.name}: {script!r} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def wrk(
    url: str,
    *,
    duration: int = 10,
    threads: int = 2,
    connections: int = 64,
    host_header: str | None = DOMAIN,
    timeout: int = 5,
    wrapper: list[str] | None = None,
) -> dict[str, Any]:
    """One wrk run; returns its counts, requests per second and latency percentiles (ms)."""
    argv = [
        *(wrapper or []),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={timeout}s",
        "-s",
        str(WRK_SCRIPT),
    ]
    if host_header:
        argv += ["-H", f"Host: {host_header}"]
    argv.append(url)
    before = loadavg()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    line = next(x for x in reversed(out.splitlines()) if x.startswith("{"))
    raw = json.loads(line)
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    return {
        "url": url,
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "non_2xx_3xx": raw["status_errors"],
        "socket_errors": errors,
        "raw": raw,
        "load_before": before,
        "load_after": loadavg(),
        "command": shlex.join(argv),
    }


def veth_bytes(host: SandboxHost) -> tuple[int, int]:
    """(bytes this machine sent to the host, bytes it received from it) on the host's veth pair so far."""
    base = Path("/sys/class/net") / host.veth / "statistics"
    return int((base / "tx_bytes").read_text()), int((base / "rx_bytes").read_text())


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def deploy_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["SECRET_KEY"] = SECRET_KEY
    return env
