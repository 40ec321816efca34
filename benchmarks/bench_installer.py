"""Time the venv step on one sandbox host: pip vs uv (push.installer), issue #19.

Run as root: python benchmarks/bench_installer.py [--runs 3]. Boots its own sandbox of one host,
pushes the example app plus numpy, scipy and scikit-learn once with each installer (so the host has
the wheels and uv), then times on the host, with the very commands a push runs (deploy.remote),
making and filling a new venv of those requirements (no bytecode: a push compiles it after the
switch, deploy.remote.bytecode): pip; uv with its cache emptied first (cold); uv with the cache a
previous venv filled and compiled (warm). Then, for the pip venv: the background compile the push
leaves behind (its CPU-bound work, not waited for), and what starting the app costs without and with
that bytecode (`import sklearn.linear_model` as the app user, as a slot importing it at start would).
The load average is recorded beside each run (the machine is shared). Writes
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
from deploy.layout import Layout, layout_for  # noqa: E402
from deploy.plan import Command  # noqa: E402
from deploy.push.uvtool import UV_VERSION  # noqa: E402
from deploy.remote import bytecode  # noqa: E402
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


KINDS = ("pip", "uv_cold", "uv_warm", "compile_after", "start_without_pyc", "start_with_pyc")
#: What a slot that imports the heavy packages at start does first.
IMPORT = ("runuser", "-u", "flaskr", "--", "{venv}/bin/python", "-c", "import sklearn.linear_model")


def one_round(
    box: Sandbox, host: SandboxHost, layout: Layout, reqs: str, pip_wheel: str, index: int
) -> dict[str, float]:
    """One run of each kind, in turn (the uv venvs made and removed first; the pip venv then compiled)."""
    venv = f"{layout.venvs}/bench-{index}"
    out: dict[str, float] = {}
    for kind in ("uv_cold", "uv_warm"):
        steps = [uvcmd.uv_venv(layout, UV_VERSION, venv), uvcmd.uv_install(layout, UV_VERSION, venv, reqs)]
        if kind == "uv_cold":
            steps.insert(0, Command(("rm", "-rf", "--", uvcmd.uv_cache(layout)), "", sudo=True))
        out[kind] = sum(on_host(box, host, step) for step in steps)
        # What the push leaves behind: the cache compiled, for the next (warm) venv.
        later = bytecode.compile_later(layout, "x", uvcmd.uv_cache(layout)).argv
        on_host(box, host, Command(_now(later, venv)))
        box.run(host, ["sudo", "rm", "-rf", "--", venv], check=True)
    steps = [cmd.new_venv(venv), cmd.pip_install(venv, pip_wheel, layout.wheels, reqs)]
    out["pip"] = sum(on_host(box, host, step) for step in steps)
    start = tuple(a.format(venv=venv) for a in IMPORT)
    out["start_without_pyc"] = on_host(box, host, Command(start))
    later = bytecode.compile_later(layout, "x").argv
    out["compile_after"] = on_host(box, host, Command(_now(later, venv)))
    out["start_with_pyc"] = on_host(box, host, Command(start))
    box.run(host, ["sudo", "rm", "-rf", "--", venv], check=True)
    return out


def _now(unit_argv: tuple[str, ...], venv: str | None = None) -> tuple[str, ...]:
    """The program of the compile unit, run at once (not in a timer), for `venv` when given."""
    argv = unit_argv[next(i for i, a in enumerate(unit_argv) if a.endswith("/bin/python")) :]
    if venv is None:
        return argv
    return (f"{venv}/bin/python", *argv[1:-3], venv, argv[-2], f"{venv}/{bytecode.COMPILED}")


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
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
            for index in range(args.runs):
                load = load_average()  # at the start of the round
                for kind, seconds in one_round(box, host, layout, reqs, pip_wheel, index).items():
                    runs[kind].append({"seconds": round(seconds, 3), "load": load})
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
