"""Serving benchmark: the stack `deploy` renders vs `flask run`, Gunicorn defaults and a hand-written setup.

Run as root: python benchmarks/bench_serving.py [--rounds 3] [--duration 10]
Boots one sandbox host, pushes the example app (playbooks/flaskr) with `deploy setup` + `deploy push`
(tls: false), then starts the other three candidates on the same host, from the same release
directory and the same virtualenv:
  flask_run          `flask --app 'flaskr:create_app()' run --host 0.0.0.0 --port 5000` (no debug)
  gunicorn_defaults  `gunicorn -c <empty file> --bind 0.0.0.0:8000 'flaskr:create_app()'` (1 sync worker,
                     nothing else). The empty config file matters: without -c, Gunicorn reads
                     ./gunicorn.conf.py from its working directory, which in a release is deploy's.
  handwritten        benchmarks/handwritten/: Nginx on :8080 + Gunicorn on a unix socket, per their docs
  deploy             what `deploy` rendered: Nginx on :80 + the live slot's Gunicorn
Each round restarts every candidate (fresh processes, then a 2 s warm-up per endpoint) and runs wrk
against it, candidates in turn (each round starting with the next one), for the
dynamic page `/` (Jinja template, a CSRF token in a signed session cookie, a file read) and the static
file `/static/style.css`. Around every wrk run the CPU time of the candidate's systemd units (and
journald's) is read from their cgroups on the host: the host CPU each request cost. The medians over
the rounds go to benchmarks/results/serving.json with every raw run.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit
from benchkit import Sandbox, SandboxHost, loadavg, on_host, wrk

HANDWRITTEN = benchkit.HERE / "handwritten"
PORTS = {"flask_run": 5000, "gunicorn_defaults": 8000, "handwritten": 8080, "deploy": 80}
ENDPOINTS = {"page": "/", "static": "/static/style.css"}


def _unit(name: str, release: str, argv: list[str], *extra: str) -> str:
    """A transient systemd service running `argv` as the app's user, with the app's environment."""
    props = [
        f"--unit={name}",
        "--uid=flaskr",
        "--gid=flaskr",
        f"--property=WorkingDirectory={release}",
        "--property=EnvironmentFile=/etc/flaskr/env",
        "--setenv=LOG_LEVEL=info",
        "--setenv=SESSION_COOKIE_SECURE=false",
        *extra,
    ]
    return shlex.join(["systemd-run", "--quiet", *props, *argv])


def start_candidates(box: Sandbox, host: SandboxHost) -> dict[str, str]:
    """Start flask run, Gunicorn with defaults and the hand-written stack; return what ran."""
    release = on_host(box, host, "readlink -f /srv/flaskr/current").strip()
    venv = f"{release}/.venv/bin"
    app = "flaskr:create_app()"
    on_host(box, host, "mkdir -p /etc/handwritten /etc/gunicorn-defaults", check=True)
    # Gunicorn loads ./gunicorn.conf.py when no -c is given; the release has deploy's. An empty file
    # keeps every default.
    on_host(box, host, ": > /etc/gunicorn-defaults/empty.conf.py", check=True)
    for name in ("nginx.conf", "gunicorn.conf.py"):
        on_host(box, host, f"cat > /etc/handwritten/{name}", input=(HANDWRITTEN / name).read_text())
    on_host(
        box,
        host,
        f"mkdir -p /srv/handwritten/public && rm -rf /srv/handwritten/public/static && "
        f"cp -r {release}/flaskr/static /srv/handwritten/public/static",
    )
    commands = {
        "flask_run": _unit(
            "bench-flask-run",
            release,
            [f"{venv}/flask", "--app", app, "run", "--host", "0.0.0.0", "--port", "5000"],
        ),
        "gunicorn_defaults": _unit(
            "bench-gunicorn-defaults",
            release,
            [f"{venv}/gunicorn", "-c", "/etc/gunicorn-defaults/empty.conf.py", "--bind", "0.0.0.0:8000", app],
        ),
        "handwritten": _unit(
            "bench-handwritten-gunicorn",
            release,
            [f"{venv}/gunicorn", "-c", "/etc/handwritten/gunicorn.conf.py", app],
            "--property=RuntimeDirectory=handwritten",
        )
        + " && nginx -t -q -c /etc/handwritten/nginx.conf && "
        + shlex.join(
            [
                "systemd-run",
                "--quiet",
                "--unit=bench-handwritten-nginx",
                "nginx",
                "-c",
                "/etc/handwritten/nginx.conf",
                "-g",
                "daemon off;",
            ]
        ),
    }
    commands["deploy"] = "deploy setup + deploy push (already serving)"
    for candidate in commands:
        start(box, host, candidate, commands)
    return commands


#: The transient units each candidate runs in (deploy's own units are restarted instead).
TRANSIENT = {
    "flask_run": ["bench-flask-run"],
    "gunicorn_defaults": ["bench-gunicorn-defaults"],
    "handwritten": ["bench-handwritten-gunicorn", "bench-handwritten-nginx"],
}


def start(box: Sandbox, host: SandboxHost, candidate: str, commands: dict[str, str]) -> None:
    """(Re)start one candidate with fresh processes and wait until its page answers 200."""
    if candidate == "deploy":
        slot = '"$(basename "$(readlink /srv/flaskr/live.sock)" .sock)"'
        on_host(box, host, f"systemctl restart flaskr@{slot} nginx")
    else:
        units = " ".join(TRANSIENT[candidate])
        on_host(box, host, f"systemctl stop {units}; systemctl reset-failed {units}", check=False)
        on_host(box, host, commands[candidate])
    on_host(
        box,
        host,
        f"for i in $(seq 100); do [ \"$(curl -s -o /dev/null -w '%{{http_code}}' "
        f"-H 'Host: {benchkit.DOMAIN}' "
        f'http://127.0.0.1:{PORTS[candidate]}/)" = 200 ] && exit 0; sleep 0.2; done; exit 1',
    )


def describe(box: Sandbox, host: SandboxHost) -> dict[str, str]:
    """The processes and configuration that served, as a record."""
    return {
        "deploy_gunicorn_conf": on_host(box, host, "cat /srv/flaskr/current/gunicorn.conf.py"),
        "deploy_nginx_site": on_host(box, host, "cat /etc/nginx/sites-enabled/flaskr.conf"),
        "processes": on_host(box, host, "ps -eo user,args | grep -E 'gunicorn|flask|nginx' | grep -v grep"),
        "nginx_version": on_host(box, host, "nginx -v 2>&1").strip(),
        "gunicorn_version": on_host(box, host, "/srv/flaskr/current/.venv/bin/gunicorn --version").strip(),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps_median": round(statistics.median(r["rps"] for r in runs), 1),
        "p99_ms_median": round(statistics.median(r["p99_ms"] for r in runs), 2),
        "p50_ms_median": round(statistics.median(r["p50_ms"] for r in runs), 2),
        "rps_all": [r["rps"] for r in runs],
        "p99_ms_all": [r["p99_ms"] for r in runs],
        "cpu_us_per_request_median": round(statistics.median(r["cpu_us_per_request_total"] for r in runs), 1),
        "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
    }


def units(box: Sandbox, host: SandboxHost) -> dict[str, list[str]]:
    """The systemd units whose processes serve each candidate (their cgroups count its CPU time)."""
    slot = on_host(box, host, 'basename "$(readlink /srv/flaskr/live.sock)" .sock').strip()
    return {
        "flask_run": ["bench-flask-run.service"],
        "gunicorn_defaults": ["bench-gunicorn-defaults.service"],
        "handwritten": ["bench-handwritten-gunicorn.service", "bench-handwritten-nginx.service"],
        "deploy": [f"flaskr@{slot}.service", "nginx.service"],
        "logging": ["systemd-journald.service"],
    }


def cpu_usec(box: Sandbox, host: SandboxHost, names: list[str]) -> dict[str, int]:
    """CPU time (user + system, microseconds) each unit's cgroup has used so far."""
    # cgroup v2 is at /sys/fs/cgroup, or at /sys/fs/cgroup/unified on a host with the hybrid layout.
    script = "; ".join(
        f"cg=$(systemctl show -p ControlGroup --value {shlex.quote(n)}); "
        'cat "/sys/fs/cgroup$cg/cpu.stat" "/sys/fs/cgroup/unified$cg/cpu.stat" 2>/dev/null '
        "| awk '/^usage_usec/{u=$2} END{print u+0}'"
        for n in names
    )
    values = on_host(box, host, script).split()
    return {n: int(v) for n, v in zip(names, values, strict=True)}


def measure(
    box: Sandbox,
    host: SandboxHost,
    commands: dict[str, str],
    rounds: int,
    duration: int,
    threads: int,
    connections: int,
    only: list[str],
) -> dict[str, Any]:
    address = host.address
    served_by = units(box, host)
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {c: {e: [] for e in ENDPOINTS} for c in only}
    for index in range(rounds):
        # Each round starts with the next candidate, so none is always measured first or last.
        order = only[index % len(only) :] + only[: index % len(only)]
        for candidate in order:
            # Fresh processes for every candidate in every round: two identical Gunicorn processes
            # can differ by ~5% in CPU per request for as long as their workers live (measured, see
            # findings.md), so one process per candidate for the whole run would be one draw.
            start(box, host, candidate, commands)
            for path in ENDPOINTS.values():  # warm-up: every worker has imported the app
                url = f"http://{address}:{PORTS[candidate]}{path}"
                wrk(url, duration=2, threads=threads, connections=connections)
            names = served_by[candidate] + served_by["logging"]
            for endpoint, path in ENDPOINTS.items():
                before = cpu_usec(box, host, names)
                run = wrk(
                    f"http://{address}:{PORTS[candidate]}{path}",
                    duration=duration,
                    threads=threads,
                    connections=connections,
                )
                after = cpu_usec(box, host, names)
                requests = max(run["requests"], 1)
                run["cpu_us_per_request"] = {n: round((after[n] - before[n]) / requests, 1) for n in names}
                run["cpu_us_per_request_total"] = round(sum(run["cpu_us_per_request"].values()), 1)
                raw[candidate][endpoint].append(run)
                print(
                    f"round {index + 1} {candidate:18} {endpoint:6} {run['rps']:9.1f} req/s  "
                    f"p99 {run['p99_ms']:8.2f} ms  cpu {run['cpu_us_per_request_total']:7.1f} us/req  "
                    f"errors {run['non_2xx_3xx'] + run['socket_errors']}  load {run['load_before'][0]}",
                    flush=True,
                )
    return {
        c: {e: {"summary": summarize(runs), "runs": runs} for e, runs in by.items()} for c, by in raw.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", nargs="*", default=list(PORTS), choices=list(PORTS))
    parser.add_argument("--out", default="serving")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "serving: requests per second and p99 latency from wrk, same app, same sandbox host",
        "machine": benchkit.machine(),
        "method": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "threads": args.threads,
            "connections": args.connections,
            "endpoints": ENDPOINTS,
            "ports": PORTS,
            "note": "wrk runs on this machine against the sandbox host's veth address; the host shares "
            "this machine's cores, so wrk, Nginx and Gunicorn compete for the same CPUs.",
        },
        "load_average_before": loadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-serving-", dir="/var/tmp") as tmp:
        box = Sandbox(Path(tmp) / "sandbox", progress=lambda message: None)
        try:
            host = box.up(1)[0]
            project = benchkit.make_project(Path(tmp) / "project", [host])
            project.deploy("setup", check=True)
            project.deploy("push", check=True)
            result["candidates"] = commands = start_candidates(box, host)
            result["host"] = describe(box, host)
            result["results"] = measure(
                box, host, commands, args.rounds, args.duration, args.threads, args.connections, args.only
            )
        finally:
            box.down()
    result["load_average_after"] = loadavg()
    print(f"wrote {benchkit.save(args.out, result)}")


if __name__ == "__main__":
    main()
