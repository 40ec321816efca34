"""Zero downtime: failed requests and p99 latency under constant load during a push, a rollback and a renewal.

Run as root: python benchmarks/bench_zero_downtime.py [--runs 3]
Boots one sandbox host with the sandbox's ACME server (Debian's pebble), sets the example app up with
HTTPS (`deploy setup -e sandbox` obtains a real certificate with certbot), pushes it, then keeps wrk
(1 thread, 8 keep-alive connections, HTTPS with SNI flaskr.test, the dynamic page `/`) running while:
  baseline  nothing happens (the same window, to compare latencies with)
  push      `deploy push` of a one-line change (blue/green: new slot, health gate, socket switch)
  rollback  `deploy rollback`
  renewal   `certbot renew --force-renewal` on the host (the deploy hook checks and reloads Nginx)
wrk starts 1 s before the operation and stops 1 s after it. Writes benchmarks/results/zero_downtime.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit
from benchkit import Sandbox, SandboxHost, loadavg, on_host

TLS_YAML = """\
app:
  name: flaskr
  wsgi: "flaskr:create_app()"
  static: {url: /static, dir: flaskr/static}
  env: {LOG_LEVEL: info}
  secrets: [SECRET_KEY]
  shared: [instance]
  release: ["flask --app flaskr init-db"]
server:
  domains: [flaskr.test]
  hosts: [replaced-by-sandbox.invalid]
  user: flaskr
  tls: {email: ops@flaskr.test}
push: {health_timeout: 8}
"""


def loaded(address: str, hosts_file: Path, action: Any) -> dict[str, Any]:
    """Run `action()` while wrk loads https://flaskr.test/ (`address` by /etc/hosts, own namespace)."""
    script = (
        f"mount --bind {hosts_file} /etc/hosts && "
        f"exec wrk -t1 -c8 -d300s --timeout=5s -s {benchkit.WRK_SCRIPT} https://flaskr.test/"
    )
    wrk = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdout=subprocess.PIPE, text=True)
    load = loadavg()
    time.sleep(1.0)
    started = time.monotonic()
    action()
    seconds = time.monotonic() - started
    time.sleep(1.0)
    wrk.send_signal(signal.SIGINT)
    stdout, _ = wrk.communicate(timeout=30)
    raw = json.loads(next(x for x in reversed(stdout.splitlines()) if x.startswith("{")))
    errors = {
        k: raw[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    }
    return {
        "operation_seconds": round(seconds, 2),
        "requests": raw["requests"],
        "failed": sum(errors.values()),
        "errors": errors,
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "load_before": load,
        "load_after": loadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="zero_downtime")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "zero downtime under constant load (wrk, HTTPS, 8 keep-alive connections)",
        "machine": benchkit.machine(),
        "runs": args.runs,
        "load_average_before": loadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-zd-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        box = Sandbox(work / "sandbox", progress=lambda message: None)
        os.environ["DEPLOY_SANDBOX_DIR"] = str(box.state_dir)
        try:
            host: SandboxHost = box.up(1)[0]
            acme = box.acme()
            if acme is None:
                raise SystemExit("the sandbox has no ACME server: apt-get install pebble")
            acme.point("flaskr.test", host.address)
            project = benchkit.make_project(work / "project", [host])
            (project.path / "deploy.yaml").write_text(TLS_YAML)
            project.commit("https")
            project.deploy("setup", "-e", "sandbox", check=True, timeout=600)
            project.deploy("push", "-e", "sandbox", check=True)
            hosts_file = work / "hosts"
            hosts_file.write_text(f"127.0.0.1 localhost\n{host.address} flaskr.test\n")

            def push(index: int) -> None:
                project.set_version(f"zd-{index}")
                project.deploy("push", "-e", "sandbox", check=True)

            def rollback(index: int) -> None:
                project.deploy("rollback", "-e", "sandbox", check=True)

            def renewal(index: int) -> None:
                on_host(
                    box,
                    host,
                    "REQUESTS_CA_BUNDLE=/etc/flaskr/tls/acme-ca.pem certbot renew --force-renewal "
                    "--no-random-sleep-on-renew -q",
                    timeout=300,
                )

            def baseline(index: int) -> None:
                time.sleep(3.0)

            operations = {"baseline": baseline, "push": push, "rollback": rollback, "renewal": renewal}
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in operations}
            for index in range(args.runs):
                for name, operation in operations.items():
                    run = loaded(host.address, hosts_file, lambda op=operation, i=index: op(i))
                    runs[name].append(run)
                    print(
                        f"{name:9} {run['operation_seconds']:6.2f} s  {run['requests']:6} requests  "
                        f"{run['failed']} failed  p99 {run['p99_ms']:8.2f} ms  max {run['max_ms']:8.2f} ms  "
                        f"load {run['load_before'][0]}",
                        flush=True,
                    )
            result["results"] = {
                name: {
                    "requests": sum(r["requests"] for r in rs),
                    "failed": sum(r["failed"] for r in rs),
                    "p99_ms_median": round(statistics.median(r["p99_ms"] for r in rs), 2),
                    "max_ms_max": max(r["max_ms"] for r in rs),
                    "operation_seconds_median": round(
                        statistics.median(r["operation_seconds"] for r in rs), 2
                    ),
                    "runs": rs,
                }
                for name, rs in runs.items()
            }
        finally:
            box.down()
    result["load_average_after"] = loadavg()
    print(f"wrote {benchkit.save(args.out, result)}")


if __name__ == "__main__":
    main()
