"""Time `deploy push` on sandbox hosts: first, unchanged, one-line change, new requirements, 1 vs 3 hosts.

Run as root: python benchmarks/bench_push.py [--runs 3]. Boots its own sandbox of three hosts, times
the whole `deploy push` command (process start to exit, as a user waits for it), and writes the
medians to benchmarks/results/push.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.sandbox.machines import Sandbox  # noqa: E402
from tests.hosts.pushkit import Project, make_project  # noqa: E402

#: A push stops the slot it replaced DRAIN_SECONDS (1 s) after its switch. Each timed push starts
#: once that happened, as a user's next push does; `*_back_to_back` runs start at once instead, so
#: their new slot must first be stopped (it still runs the release before last).
SETTLE_SECONDS = 2.0


def timed(project: Project, *args: str, settle: bool = True) -> float:
    if settle:
        time.sleep(SETTLE_SECONDS)
    started = time.monotonic()
    project.deploy(*args, check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    results: dict[str, object] = {
        "machine": platform.node(),
        "python": platform.python_version(),
        "runs": options.runs,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "load_average_before": os.getloadavg()[0],
        "settle_seconds": SETTLE_SECONDS,
    }
    with tempfile.TemporaryDirectory() as tmp:
        box = Sandbox(Path(tmp) / "sandbox", progress=lambda m: None)
        try:
            hosts = box.up(3)
            one = make_project(Path(tmp) / "one", hosts[:1])
            one.deploy("setup", check=True)
            results["first_push_1_host"] = timed(one, "push")
            nothing = [timed(one, "push") for _ in range(options.runs)]
            results["no_change_push_1_host"] = statistics.median(nothing)
            code = []
            for i in range(options.runs):
                one.set_version(f"code-{i}")
                code.append(timed(one, "push"))
            results["code_change_push_1_host"] = statistics.median(code)
            back = []
            for i in range(options.runs):
                one.set_version(f"back-{i}")
                back.append(timed(one, "push", settle=False))
            results["code_change_push_1_host_back_to_back"] = statistics.median(back)
            requirements = one.path / "requirements.txt"
            requirements.write_text(requirements.read_text().replace("packaging==26.3", "packaging==25.0"))
            one.commit("requirements change")
            results["requirements_change_push_1_host"] = timed(one, "push")

            three = make_project(Path(tmp) / "three", hosts)
            three.deploy("setup", check=True)
            three.deploy("push", check=True)
            code3 = []
            for i in range(options.runs):
                three.set_version(f"code3-{i}")
                code3.append(timed(three, "push"))
            results["code_change_push_3_hosts"] = statistics.median(code3)
            ratio = statistics.median(code3) / statistics.median(code)
            results["three_over_one"] = round(ratio, 2)
            back3 = []
            for i in range(options.runs):
                three.set_version(f"back3-{i}")
                back3.append(timed(three, "push", settle=False))
            results["code_change_push_3_hosts_back_to_back"] = statistics.median(back3)
        finally:
            box.down()
            results["raw"] = {
                "no_change_push_1_host": nothing,
                "code_change_push_1_host": code,
                "code_change_push_1_host_back_to_back": back,
                "code_change_push_3_hosts": code3,
                "code_change_push_3_hosts_back_to_back": back3,
            }
    results["load_average_after"] = os.getloadavg()[0]
    for key, value in results.items():
        if isinstance(value, float):
            results[key] = round(value, 3)
        elif key == "raw" and isinstance(value, dict):
            results[key] = {name: [round(v, 3) for v in runs] for name, runs in value.items()}
    out = ROOT / "benchmarks" / "results" / "push.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
