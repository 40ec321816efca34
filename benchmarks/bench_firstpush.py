"""Cold and warm first pushes of the two heavy apps, pip vs uv (push.installer), issue #19.

Run as root: python benchmarks/bench_firstpush.py [--runs 3] [--apps datascience,dtale]. Boots its own
sandbox of one host. The apps are the example app (playbooks/flaskr) with, added to its 14 pins:
- datascience: numpy, scipy, scikit-learn (about 60 MB of wheels), imported by create_app;
- dtale: the 63 other distributions dtale 3.22.0 resolves to on Python 3.11 (DTALE below, 77 in all,
  pandas, matplotlib, dash, statsmodels...), pandas and dash imported by create_app.
The wheelhouse here is filled once per app before the timed runs (building it is not timed: it is
the `wheelhouse` work of #19). Each run, per app and installer, in rounds:
- cold: the app removed from the host (/srv/<app>, its units; no wheels, no venv, no uv cache), then
  `deploy setup` (not timed) and the timed `deploy push --json`: every wheel uploaded, a new venv;
- warm: once the cold push's background bytecode compile is done, a comment added to requirements.txt
  (a new venv of the same wheels: nothing uploaded, uv's cache holds them), the timed push.
Per push: wall time (process start to exit), its --json step times, this machine's CPU seconds
(the deploy process and children) and the host's (the sandbox cgroup's cpu.stat), the load average
(1 min) at the start; after the cold push, the seconds until the venv's bytecode is compiled.
Writes benchmarks/results/firstpush.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import RESULTS, ROOT, Project, Sandbox, loadavg, machine, make_project

from deploy.remote.bytecode import COMPILED

HEAVY = "numpy==2.2.6\nscipy==1.15.3\nscikit-learn==1.6.1\n"
#: dtale==3.22.0 resolved by pip for CPython 3.11 (tests/hosts/dtale-requirements.txt, shared).
DTALE = (ROOT / "tests" / "hosts" / "dtale-requirements.txt").read_text(encoding="utf-8")

APPS = {
    "datascience": (HEAVY, "    import numpy, scipy.stats, sklearn.linear_model  # noqa\n"),
    "dtale": (
        "".join(f"{line}\n" for line in DTALE.splitlines() if not line.startswith("#")),
        "    import pandas, dash  # noqa\n",
    ),
}
INSTALLERS = ("pip", "uv")
WIPE = (
    "systemctl stop 'flaskr@*' 'flaskr-*' 2>/dev/null; systemctl reset-failed 'flaskr*' 2>/dev/null; "
    "rm -rf /srv/flaskr"
)


def host_cpu(box: Sandbox) -> float:
    """CPU seconds of every process of the sandbox's hosts so far."""
    total = 0
    for group in box._cgroups():
        stat = group / "cpu.stat"
        if stat.is_file():
            total += int(stat.read_text().split("usage_usec ", 1)[1].split()[0])
    return total / 1e6


def timed_push(project: Project, box: Sandbox) -> dict[str, Any]:
    load = loadavg()[0]
    cpu_host = host_cpu(box)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "deploy", "push", "--json"],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SECRET_KEY": "test-secret-key-0123456789abcdef"},
    )
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"push failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    steps: dict[str, float] = {}
    for line in result.stdout.splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("status") == "ok" and event.get("seconds") is not None:
            steps[event["step"]] = round(steps.get(event["step"], 0) + event["seconds"], 3)
    return {
        "wall": round(wall, 3),
        "load": load,
        "cpu_here": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "cpu_host": round(host_cpu(box) - cpu_host, 2),
        "steps": steps,
    }


def compiled_after(box: Sandbox, started: float, timeout: float = 600) -> float:
    """Seconds from `started` until the current venv's bytecode is compiled (deploy.remote.bytecode)."""
    host = box.hosts()[0]
    marker = f"/srv/flaskr/current/.venv/{COMPILED}"
    while time.monotonic() - started < timeout:
        if box.run(host, ["test", "-e", marker]).returncode == 0:
            return round(time.monotonic() - started, 2)
        time.sleep(0.5)
    raise RuntimeError("the venv's bytecode was not compiled in time")


def one_case(box: Sandbox, project: Project, app: str, installer: str, tag: str) -> dict[str, Any]:
    host = box.hosts()[0]
    box.run(host, ["sh", "-c", WIPE], timeout=900)  # a 77-distribution venv, on a busy machine
    requirements, imports = APPS[app]
    base = (ROOT / "playbooks" / "flaskr" / "requirements.txt").read_text()
    (project.path / "requirements.txt").write_text(base + requirements)
    project.write_config(push=f"installer: {installer}")
    config = project.path / "deploy.yaml"  # imports without bytecode on a busy machine: more than 8 s
    config.write_text(config.read_text().replace("health_timeout: 8", "health_timeout: 120"))
    project.set_version(f"{app}-{installer}-{tag}", extra=imports)
    project.deploy("setup", check=True, timeout=600)
    cold = timed_push(project, box)
    cold["compiled_after_push"] = compiled_after(box, time.monotonic())
    (project.path / "requirements.txt").write_text(base + requirements + f"# warm {tag}\n")
    project.commit(f"warm {tag}")
    warm = timed_push(project, box)
    print(f"{app} {installer} {tag}: cold {cold['wall']} s, warm {warm['wall']} s", flush=True)
    return {"cold": cold, "warm": warm}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--apps", default=",".join(APPS))
    args = parser.parse_args()
    apps = args.apps.split(",")
    info = {**machine(), "load_before": loadavg()}
    runs: dict[str, list[dict[str, Any]]] = {f"{a}/{i}": [] for a in apps for i in INSTALLERS}
    with tempfile.TemporaryDirectory() as scratch:
        box = Sandbox(Path(scratch) / "sandbox", progress=lambda m: None)
        try:
            box.up(1)
            project = make_project(Path(scratch), box.hosts())
            for app in apps:  # fill the wheelhouse here (not timed)
                one_case(box, project, app, "pip", "prime")
            for index in range(args.runs):
                for app in apps:
                    for installer in INSTALLERS:
                        runs[f"{app}/{installer}"].append(one_case(box, project, app, installer, str(index)))
        finally:
            box.down()
    median = {
        key: {
            kind: {
                "wall": statistics.median(r[kind]["wall"] for r in rows),
                "cpu_host": statistics.median(r[kind]["cpu_host"] for r in rows),
            }
            for kind in ("cold", "warm")
        }
        for key, rows in runs.items()
    }
    result = {"machine": {**info, "load_after": loadavg()}, "runs": runs, "median": median}
    (RESULTS / "firstpush.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(median, indent=1))


if __name__ == "__main__":
    main()
