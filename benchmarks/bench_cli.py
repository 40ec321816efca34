"""CLI benchmark: `deploy --help` and `--version` start time, `deploy check` on the example app and on a
200-file app.

Run: python benchmarks/bench_cli.py [--runs 20]
Times whole commands (interpreter start to exit) with hyperfine (`apt-get install hyperfine`), after
warm-up runs so the page cache holds the files. The 200-file app is the one benchmarks/bench_check.py
generates. Writes benchmarks/results/cli.json. Python writes bytecode as a user's does
(PYTHONDONTWRITEBYTECODE is dropped: without .pyc files every run compiles deploy again).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit
from bench_check import make_app


def hyperfine(command: list[str], runs: int, cwd: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [
                "hyperfine",
                "--warmup",
                "3",
                "--runs",
                str(runs),
                "-N",
                "--ignore-failure",
                "--export-json",
                out.name,
                shlex.join(command),
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            env=benchkit.deploy_env(),
        )
        data = json.loads(Path(out.name).read_text())["results"][0]
    return {
        "command": shlex.join(command),
        "median_s": round(data["median"], 4),
        "mean_s": round(data["mean"], 4),
        "min_s": round(data["min"], 4),
        "max_s": round(data["max"], 4),
        "runs": runs,
        "exit_codes": sorted(set(data.get("exit_codes", []))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(benchkit.ROOT / "deploy", quiet=1)
    python = sys.executable
    result: dict[str, Any] = {
        "benchmark": "deploy CLI start and deploy check",
        "machine": benchkit.machine(),
        "load_average_before": benchkit.loadavg(),
    }
    rows = {}
    rows["help"] = hyperfine([python, "-m", "deploy", "--help"], args.runs, benchkit.ROOT)
    rows["version"] = hyperfine([python, "-m", "deploy", "--version"], args.runs, benchkit.ROOT)
    rows["python_baseline"] = hyperfine([python, "-c", "pass"], args.runs, benchkit.ROOT)
    rows["check_example"] = hyperfine(
        [python, "-m", "deploy", "check", "playbooks/flaskr"], args.runs, benchkit.ROOT
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "app200"
        rows["check_200_files"] = (
            hyperfine([python, "-m", "deploy", "check", str(root)], args.runs, benchkit.ROOT)
            if make_app(root, 200)
            else {}
        )
    result["results"] = rows
    result["load_average_after"] = benchkit.loadavg()
    for name, row in rows.items():
        print(f"{name:16} median {row['median_s']:.3f} s  (min {row['min_s']:.3f}, max {row['max_s']:.3f})")
    print(f"wrote {benchkit.save('cli', result)}")


if __name__ == "__main__":
    main()
