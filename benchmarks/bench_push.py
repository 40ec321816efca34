"""Time `deploy push` on sandbox hosts: first, unchanged, one-line change, new requirements, 1 vs 3 hosts,
and a code-only push of a 1,000-file app (#19).

Run as root: python benchmarks/bench_push.py [--runs 3] [--large-only]. Boots its own sandbox of three
hosts (one with --large-only: only the nothing-changed and 1,000-file rows, about 2 minutes), times the
whole `deploy push` command (process start to exit, as a user waits for it) with the load average (1
min) at its start and the CPU seconds of the deploy process, and writes the medians to
benchmarks/results/push.json (push_large.json with --large-only). Python writes bytecode as a user's
does (PYTHONDONTWRITEBYTECODE is dropped: without .pyc files every run compiles deploy again).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
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

from deploy.sandbox.machines import Sandbox, SandboxHost  # noqa: E402
from tests.hosts.pushkit import DOMAIN, Project, make_project  # noqa: E402

#: A push stops the slot it replaced DRAIN_SECONDS (1 s) after its switch. Each timed push starts
#: once that happened, as a user's next push does; `*_back_to_back` runs start at once instead, so
#: their new slot must first be stopped (it still runs the release before last).
SETTLE_SECONDS = 2.0


#: Files added to the example app for the large-app rows (the size of a real ~70-dependency app, #19).
LARGE_FILES = 1000


def timed(
    project: Project, *args: str, settle: bool = True, runs: list[dict[str, float]] | None = None
) -> float:
    """Seconds of one whole `deploy` command; with `runs`, also its load average and CPU seconds."""
    if settle:
        time.sleep(SETTLE_SECONDS)
    load = os.getloadavg()[0]
    cpu = _children_cpu()
    started = time.monotonic()
    project.deploy(*args, check=True)
    seconds = time.monotonic() - started
    if runs is not None:
        runs.append({"seconds": round(seconds, 3), "load": load, "cpu": round(_children_cpu() - cpu, 3)})
    return seconds


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def large_app(root: Path, hosts: list[SandboxHost]) -> Project:
    """The example app with LARGE_FILES more modules (20 packages of 50 files, 2 KB each), its own name."""
    project = make_project(root, hosts)
    config = project.path / "deploy.yaml"
    config.write_text(config.read_text().replace("name: flaskr", "name: large").replace(DOMAIN, "large.test"))
    for index in range(LARGE_FILES):
        folder = project.path / "flaskr" / "extra" / f"pkg{index // 50}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{index}.py").write_text(
            f'"""Module {index}."""\n\nVALUE = {index}\n' + "# line\n" * 250
        )
    project.commit(f"{LARGE_FILES} more files")
    return project


def large_rows(tmp: Path, hosts: list[SandboxHost], runs: int, results: dict[str, object]) -> None:
    """Nothing changed on the example app, and code-only pushes of the 1,000-file app (one file changed)."""
    one = make_project(tmp / "nothing", hosts[:1])
    one.deploy("setup", check=True)
    one.deploy("push", check=True)
    nothing: list[dict[str, float]] = []
    for _ in range(runs):
        timed(one, "push", runs=nothing)
    large = large_app(tmp / "large", hosts[:1])
    large.deploy("setup", check=True)
    results["large_first_push"] = timed(large, "push")
    code: list[dict[str, float]] = []
    for index in range(runs):
        large.set_version(f"large-{index}")
        timed(large, "push", runs=code)
    for name, rows in (("no_change_push_1_host", nothing), (f"code_push_{LARGE_FILES}_files", code)):
        results[name] = statistics.median(r["seconds"] for r in rows)
        results[f"{name}_cpu"] = statistics.median(r["cpu"] for r in rows)
        results[f"{name}_runs"] = rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large-only", action="store_true", help="only the nothing-changed and large rows")
    options = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(ROOT / "deploy", quiet=1)
    if options.large_only:
        large_main(options.runs)
        return
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


#: A real ~1,600-file app of the corpus (python -m tests.corpus.fetch): its packing is timed here.
CORPUS_APP = Path.home() / ".cache" / "deploy-corpus" / "dtale-3.22.0" / "dtale-3.22.0"


def pack_rows(tmp: Path, runs: int, results: dict[str, object]) -> None:
    """Seconds to pack the corpus app's committed HEAD (list, hash, read what is needed): cold and warm."""
    if not CORPUS_APP.is_dir():
        return
    from deploy.push.artifact import pack

    copy = tmp / "corpus-app"
    shutil.copytree(CORPUS_APP, copy)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "corpus app"]):
        subprocess.run(
            ["git", "-c", "user.email=b@example.com", "-c", "user.name=b", *args], cwd=copy, check=True
        )
    seconds = []
    for _ in range(runs + 1):
        started = time.monotonic()
        artifact = pack(copy, "requirements.txt")
        seconds.append(round(time.monotonic() - started, 3))
    results["corpus_pack"] = {
        "app": CORPUS_APP.name,
        "files": len(artifact.files),
        "bytes": sum(len(entry.data) for entry in artifact.files.values()),
        "cold_s": seconds[0],
        "warm_s": statistics.median(seconds[1:]),
        "runs": seconds,
    }


def large_main(runs: int) -> None:
    results: dict[str, object] = {
        "machine": platform.node(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "runs": runs,
        "load_average_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DEPLOY_HASH_CACHE"] = str(Path(tmp) / "blob-sha256")
        pack_rows(Path(tmp), runs, results)
        box = Sandbox(Path(tmp) / "sandbox", progress=lambda m: None)
        try:
            large_rows(Path(tmp), box.up(1), runs, results)
        finally:
            box.down()
    results["load_average_after"] = os.getloadavg()[0]
    out = ROOT / "benchmarks" / "results" / "push_large.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
