"""Time `deploy sandbox up` (and `down`) for 1 and 3 hosts, with a cold and a warm root filesystem cache.

Run as root: python benchmarks/bench_sandbox.py [--warm-runs N] [--skip-cold]
Cold: an empty cache directory, so `up` runs debootstrap (downloading from the Debian mirror) first.
Warm: the cache is there; `up` only makes overlays, namespaces and boots. Writes
benchmarks/results/sandbox.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from deploy.sandbox.machines import Sandbox
from deploy.sandbox.rootfs import PACKAGES, cache_dir, debian_mirror

HERE = Path(__file__).resolve().parent


def timed_up_down(count: int, cache: Path, work: Path) -> tuple[float, float]:
    state = Path(tempfile.mkdtemp(prefix="state-", dir=work))
    box = Sandbox(state, cache=cache)
    started = time.monotonic()
    try:
        hosts = box.up(count)
        up = time.monotonic() - started
        assert len(hosts) == count
        for host in hosts:  # the hosts really answer before the clock stops counting `down`
            box.run(host, ["systemctl", "is-system-running"], check=True)
    finally:
        started = time.monotonic()
        box.down()
    return up, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3, help="warm runs per host count (median reported)")
    parser.add_argument("--skip-cold", action="store_true", help="only warm runs (no debootstrap)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sandbox.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="deploy-bench-sandbox-", dir="/var/tmp"))
    rows = []
    try:
        for count in (1, 3):
            if not args.skip_cold:
                cold_cache = work / f"cache-{count}"
                up, down = timed_up_down(count, cold_cache, work)
                size = subprocess.run(
                    ["du", "-sm", str(cold_cache)], capture_output=True, text=True, check=True
                )
                rows.append(
                    {
                        "hosts": count,
                        "cache": "cold",
                        "up_s": round(up, 2),
                        "down_s": round(down, 2),
                        "runs": 1,
                        "rootfs_mb": int(size.stdout.split()[0]),
                    }
                )
                shutil.rmtree(cold_cache)
                print(f"{count} host(s), cold: up {up:.1f}s, down {down:.1f}s", flush=True)
            ups, downs = [], []
            for _ in range(args.warm_runs):
                up, down = timed_up_down(count, cache_dir(), work)
                ups.append(up)
                downs.append(down)
            rows.append(
                {
                    "hosts": count,
                    "cache": "warm",
                    "up_s": round(statistics.median(ups), 2),
                    "down_s": round(statistics.median(downs), 2),
                    "runs": args.warm_runs,
                    "up_all_s": [round(u, 2) for u in ups],
                }
            )
            print(
                f"{count} host(s), warm: up {statistics.median(ups):.2f}s (median of {args.warm_runs}), "
                f"down {statistics.median(downs):.2f}s",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "benchmark": "deploy sandbox up/down",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "mirror": debian_mirror(),
        "packages": list(PACKAGES),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}\n")
    print("| hosts | cache | `up` | `down` |")
    print("|---:|---|---:|---:|")
    for row in rows:
        runs = f" (median of {row['runs']})" if row["runs"] > 1 else ""
        print(f"| {row['hosts']} | {row['cache']} | {row['up_s']:.2f} s{runs} | {row['down_s']:.2f} s |")


if __name__ == "__main__":
    main()
