"""Time the venv step on one sandbox host: pip vs uv (push.installer), issue #19.

Run as root: python benchmarks/bench_installer.py [--runs 3]. Boots its own sandbox of one host,
pushes the example app plus numpy, scipy and scikit-learn once with each installer (so the host has
the wheels and uv), then times on the host, with the very commands a push runs (deploy.remote),
making and filling a new venv of those requirements: pip; uv with its cache emptied first (cold);
uv with the cache a previous venv filled (warm); and, to show where the warm time goes, the warm uv
run without --compile-bytecode (which a push does not run: both installers compile bytecode). The
load average is recorded beside each run (the machine is shared). Writes
benchmarks/results/installer.json.
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

from deploy.config.loader import load_text  # noqa: E402
from deploy.layout import layout_for  # noqa: E402
from deploy.plan import Command  # noqa: E402
from deploy.push.uvtool import UV_VERSION  # noqa: E402
from deploy.remote import commands as cmd  # noqa: E402
from deploy.remote import uv_commands as uvcmd  # noqa: E402
from deploy.sandbox.machines import Sandbox, SandboxHost  # noqa: E402
from tests.hosts.pushkit import make_project  # noqa: E402

HEAVY = "numpy==2.2.6\nscipy==1.15.3\nscikit-learn==1.6.1\n"
#: Times the command on the host (nanoseconds), as root.
TIMED = 's=$(date +%s%N); "$@" >/dev/null || exit 1; e=$(date +%s%N); echo $((e - s))'


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def on_host(box: Sandbox, host: SandboxHost, command: Command) -> float:
    done = box.run(host, ["sudo", "sh", "-c", TIMED, "timed", *command.argv], timeout=900, check=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory() as scratch:
        box = Sandbox(Path(scratch) / "sandbox", progress=lambda m: None)
        os.environ["DEPLOY_SANDBOX_DIR"] = str(Path(scratch) / "sandbox")
        try:
            box.up(1)
            (host,) = box.hosts()
            project = make_project(Path(scratch), [host])
            requirements = project.path / "requirements.txt"
            requirements.write_text(requirements.read_text() + HEAVY)
            project.deploy("setup", check=True)
            for installer in ("pip", "uv"):
                project.write_config(push=f"installer: {installer}")
                project.set_version(installer)
                project.deploy("push", check=True, timeout=900)
            layout = layout_for(load_text((project.path / "deploy.yaml").read_text()))
            reqs = f"{layout.paths.base}/current/requirements.txt"
            pip_wheel = box.run(host, ["sh", "-c", "ls /usr/share/python-wheels/pip-*.whl"]).stdout.split()[
                -1
            ]
            runs: dict[str, list[dict[str, float]]] = {
                "pip": [],
                "uv_cold": [],
                "uv_warm": [],
                "uv_warm_no_bytecode": [],
            }
            for index in range(args.runs):
                venv = f"{layout.venvs}/bench-{index}"
                for kind in runs:
                    before = load_average()
                    if kind == "pip":
                        steps = [cmd.new_venv(venv), cmd.pip_install(venv, pip_wheel, layout.wheels, reqs)]
                    else:
                        steps = [
                            uvcmd.uv_venv(layout, UV_VERSION, venv),
                            uvcmd.uv_install(layout, UV_VERSION, venv, reqs),
                        ]
                        if kind == "uv_warm_no_bytecode":
                            # Not what a push runs: where the time of the warm uv venv goes.
                            fill = steps[1]
                            argv = tuple(a for a in fill.argv if a != "--compile-bytecode")
                            steps[1] = Command(argv, fill.description, sudo=True)
                        if kind == "uv_cold":
                            steps.insert(
                                0, Command(("rm", "-rf", "--", uvcmd.uv_cache(layout)), "", sudo=True)
                            )
                    seconds = sum(on_host(box, host, step) for step in steps)
                    runs[kind].append({"seconds": round(seconds, 3), "load": before})
                    box.run(host, ["sudo", "rm", "-rf", "--", venv], check=True)
        finally:
            box.down()
    result = {
        "machine": {
            "name": platform.node(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "started": started,
        },
        "uv": UV_VERSION,
        "requirements": "the example app's 14 pins + " + ", ".join(HEAVY.split()),
        "runs": runs,
        "median": {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()},
    }
    out = ROOT / "benchmarks" / "results" / "installer.json"
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result["median"]))


if __name__ == "__main__":
    main()
