"""Run every benchmark in turn, then regenerate RESULTS.md from the raw JSON in benchmarks/results/.

Run as root: python benchmarks/run_all.py [--only serving push_compare ...] [--report-only]
The benchmarks are sequential on purpose: each one boots its own sandbox hosts, and two at once
would share the CPUs and spoil each other's numbers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "serving": ["bench_serving.py", "--rounds", "3", "--duration", "10"],
    "push_compare": ["bench_push_compare.py", "--runs", "3"],
    "push": ["bench_push.py", "--runs", "5"],
    "zero_downtime": ["bench_zero_downtime.py", "--runs", "3"],
    "check": ["bench_check.py", "--runs", "7"],
    "cli": ["bench_cli.py", "--runs", "20"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        for name in args.only:
            print(f"== {name}", flush=True)
            subprocess.run(
                [sys.executable, str(HERE / BENCHMARKS[name][0]), *BENCHMARKS[name][1:]], check=True
            )
    subprocess.run([sys.executable, str(HERE / "report.py")], check=True)


if __name__ == "__main__":
    main()
