"""Time the wheelhouse built here for a host: pip download (the old path) vs uv (the new), issue #19.

Run: python benchmarks/bench_wheelhouse.py [--runs 3]. No sandbox: it builds the wheels a Debian 12 host
(Python 3.11.2, x86_64, glibc 2.36) gets, for two apps: the data-science API (the example app's pins +
numpy==2.2.6, scipy==1.15.3, scikit-learn==1.6.1) and dtale 3.22.0 (about 75 wheels, unpinned; from
the corpus cache, `python -m tests.corpus.fetch`). Each run is a fresh process, as a push is:
- cold: empty pip and uv caches and an empty wheel cache (only the uv program, unpacked, is kept: it
  is deploy's tool, fetched once per machine, and timed once on its own as `uv_fetch`);
- warm: the caches that cold run filled, and requirements changed by one comment line (a new
  wheelhouse: what a push after a requirements change pays);
- hit: the same requirements again (the wheelhouse is kept: what every later push pays).
The paths run interleaved in rounds (their order alternates), with the load average (1 min) at the
start of each run and the CPU seconds of the run (getrusage of the child). Every run's wheel files
(names and sha256) are compared between the two paths of the same round. Writes
benchmarks/results/wheelhouse.json and prints the table of benchmarks/RESULTS.md section 2c.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.push.uvtool import UV_VERSION  # noqa: E402
from deploy.push.uvwheelhouse import local_uv  # noqa: E402

HEAVY = "numpy==2.2.6\nscipy==1.15.3\nscikit-learn==1.6.1\n"
DTALE = Path.home() / ".cache" / "deploy-corpus" / "dtale-3.22.0" / "dtale-3.22.0" / "requirements.txt"
TOOLS = ("pip", "uv")

CHILD = """
import hashlib, json, sys, time
from pathlib import Path
from deploy.project.requirements import resolve
from deploy.push.artifact import Platform
from deploy.push.wheelhouse import wheelhouse
project, cache = Path(sys.argv[1]), Path(sys.argv[2])
found = resolve("requirements.txt", lambda p: (project / p).read_bytes() if (project / p).exists() else None)
said = []
started = time.monotonic()
wheels = wheelhouse(found, Platform("3.11.2", "x86_64", "glibc", "2.36"), cache, said.append)
seconds = time.monotonic() - started
sums = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in wheels.items()}
print(json.dumps({"seconds": seconds, "sums": sums, "said": said}))
"""


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def apps(scratch: Path) -> dict[str, Path]:
    """{app: its project folder (a requirements.txt)}."""
    out = {}
    science = scratch / "apps" / "data-science"
    science.mkdir(parents=True)
    pins = (ROOT / "playbooks" / "flaskr" / "requirements.txt").read_text()
    (science / "requirements.txt").write_text(pins + HEAVY)
    out["data-science"] = science
    if DTALE.is_file():
        dtale = scratch / "apps" / "dtale"
        dtale.mkdir()
        shutil.copyfile(DTALE, dtale / "requirements.txt")
        out["dtale (70 deps)"] = dtale
    else:
        print(f"dtale left out: {DTALE} is missing (python -m tests.corpus.fetch)", file=sys.stderr)
    return out


def run(tool: str, project: Path, caches: Path) -> dict[str, object]:
    """One wheelhouse build in a fresh process with `caches` as every cache; its figures."""
    env = {
        **os.environ,
        "DEPLOY_WHEELHOUSE": tool,
        "DEPLOY_WHEEL_CACHE": str(caches / "deploy"),
        "PIP_CACHE_DIR": str(caches / "pip"),
        "UV_CACHE_DIR": str(caches / "uv"),
        "PYTHONPATH": str(ROOT),
    }
    load = load_average()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(project), str(caches / "deploy" / "houses")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{tool} failed for {project}:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    fell_back = [line for line in result["said"] if "wheels with pip download" in line]
    return {
        "wall": round(wall, 3),
        "wheelhouse": round(result["seconds"], 3),
        "cpu": round(cpu, 2),
        "load": load,
        "wheels": len(result["sums"]),
        "sums": result["sums"],
        "fell_back_to_pip": fell_back,
    }


def fresh_caches(root: Path, uv_dir: Path) -> Path:
    """Empty caches, but for the unpacked uv program (deploy's own tool, kept per machine)."""
    if root.exists():
        shutil.rmtree(root)
    (root / "deploy").mkdir(parents=True)
    shutil.copytree(uv_dir, root / "deploy" / "uv")
    return root


def one_round(index: int, projects: dict[str, Path], scratch: Path, uv_dir: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    order = TOOLS if index % 2 == 0 else tuple(reversed(TOOLS))
    for app, project in projects.items():
        sums: dict[tuple[str, str], object] = {}
        for tool in order:
            caches = fresh_caches(scratch / "caches" / tool, uv_dir)
            for scenario in ("cold", "warm", "hit"):
                if scenario == "warm":
                    with open(project / "requirements.txt", "a") as extra:
                        extra.write(f"# changed {tool} round {index}\n")
                figures = run(tool, project, caches)
                sums[(tool, scenario)] = figures.pop("sums")
                out.append({"round": index, "app": app, "tool": tool, "scenario": scenario, **figures})
                print(json.dumps(out[-1]), flush=True)
        same = all(sums[("pip", s)] == sums[("uv", s)] for s in ("cold", "warm", "hit"))
        for row in out:
            if row["round"] == index and row["app"] == app:
                row["same_wheels_as_other_path"] = same
    return out


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| app | scenario | pip median, s | uv median, s | pip / uv | wheels | same files |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    keys = dict.fromkeys((str(r["app"]), str(r["scenario"])) for r in rows)
    for app, scenario in keys:

        def pick(tool: str, app: str = app, scenario: str = scenario) -> list[dict[str, object]]:
            return [r for r in rows if (r["app"], r["scenario"], r["tool"]) == (app, scenario, tool)]

        pip, uv = pick("pip"), pick("uv")
        pm = statistics.median(float(str(r["wall"])) for r in pip)
        um = statistics.median(float(str(r["wall"])) for r in uv)
        same = all(r.get("same_wheels_as_other_path") for r in pip + uv)
        lines.append(
            f"| {app} | {scenario} | {pm:.2f} | {um:.2f} | {pm / um:.1f}x | {pip[0]['wheels']} | "
            f"{'yes' if same else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="bench-wheelhouse-") as scratch_name:
        scratch = Path(scratch_name)
        t = time.monotonic()
        program = local_uv(scratch / "uv-once")
        uv_fetch = time.monotonic() - t
        uv_dir = program.parent
        projects = apps(scratch)
        rows: list[dict[str, object]] = []
        for index in range(args.runs):
            rows += one_round(index, projects, scratch, uv_dir)
    report = {
        "started": started,
        "uv": UV_VERSION,
        "uv_fetch_seconds": round(uv_fetch, 2),
        "cores": os.cpu_count(),
        "host": "Python 3.11.2, x86_64, glibc 2.36",
        "rows": rows,
    }
    out = ROOT / "benchmarks" / "results" / "wheelhouse.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(rows))
    print(f"uv {UV_VERSION} fetched and unpacked once in {uv_fetch:.2f}s; rows in {out}")


if __name__ == "__main__":
    main()
