"""Push benchmark: `deploy push` against an Ansible playbook and a pyinfra deploy doing the same release.

Run as root: python benchmarks/bench_push_compare.py [--runs 3]
Needs ansible-core and pyinfra in a separate virtualenv (default /var/cache/deploy/bench-venv:
`python3 -m venv /var/cache/deploy/bench-venv &&
/var/cache/deploy/bench-venv/bin/pip install ansible-core pyinfra`).
Boots three sandbox hosts. On the first one, all three tools release the same commits of the example
app (each into its own /srv/<name>, served by Nginx under its own name): a first push, a push with no
change, a one-line code change, a requirements change (packaging 26.3 -> 25.0). Wall time is the whole
command, process start to exit; bytes are read from the host's veth pair (sent = this machine to the
host). Then the one-line change on three hosts, and the one-line change again under wrk load, counting
the requests that failed while each tool released. Writes benchmarks/results/push_compare.json.
"""

from __future__ import annotations

import argparse
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
from benchkit import Sandbox, SandboxHost, loadavg, veth_bytes

ALTERNATIVES = benchkit.HERE / "alternatives"
TOOLS = ("deploy", "ansible", "pyinfra")
SERVER_NAMES = {"deploy": "flaskr.test", "ansible": "ansible.flaskr.test", "pyinfra": "pyinfra.flaskr.test"}


class Runner:
    """Runs one tool's release of the project's HEAD against a list of hosts."""

    def __init__(
        self, venv: Path, project: benchkit.Project, hosts: list[SandboxHost], wheelhouse: Path, work: Path
    ):
        self.venv = venv
        self.project = project
        self.hosts = hosts
        self.wheelhouse = wheelhouse
        self.inventory = work / f"inventory-{len(hosts)}.ini"
        first = hosts[0]
        lines = ["[web]"]
        for host in hosts:
            lines.append(
                f"{host.address} ansible_user=root ansible_ssh_private_key_file={first.key} "
                f"ansible_python_interpreter=/usr/bin/python3 "
                f"ansible_ssh_common_args='-o UserKnownHostsFile={first.known_hosts} "
                "-o StrictHostKeyChecking=yes'"
            )
        self.inventory.write_text("\n".join(lines) + "\n")

    def head(self) -> str:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=self.project.path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def argv(self, tool: str) -> tuple[list[str], Path, dict[str, str]]:
        env = benchkit.deploy_env()
        if tool == "deploy":
            return [sys.executable, "-m", "deploy", "push"], self.project.path, env
        env["PATH"] = f"{self.venv}/bin:{env['PATH']}"
        if tool == "ansible":
            return (
                [
                    f"{self.venv}/bin/ansible-playbook",
                    "-i",
                    str(self.inventory),
                    "deploy.yml",
                    "-e",
                    f"release={self.head()}",
                    "-e",
                    f"project={self.project.path}",
                    "-e",
                    f"wheelhouse={self.wheelhouse}/",
                ],
                ALTERNATIVES / "ansible",
                env,
            )
        env.update(
            RELEASE=self.head(),
            PROJECT=str(self.project.path),
            WHEELHOUSE=str(self.wheelhouse),
            SSH_KEY=self.hosts[0].key,
            SSH_KNOWN_HOSTS=self.hosts[0].known_hosts,
            HOSTS=" ".join(h.address for h in self.hosts),
        )
        return [f"{self.venv}/bin/pyinfra", "-y", "inventory.py", "deploy.py"], ALTERNATIVES / "pyinfra", env

    def run(self, tool: str) -> dict[str, Any]:
        argv, cwd, env = self.argv(tool)
        before = [veth_bytes(h) for h in self.hosts]
        load = loadavg()
        started = time.monotonic()
        result = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        seconds = time.monotonic() - started
        after = [veth_bytes(h) for h in self.hosts]
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return {
            "seconds": round(seconds, 3),
            "bytes_sent": sum(a[0] - b[0] for a, b in zip(after, before, strict=True)),
            "bytes_received": sum(a[1] - b[1] for a, b in zip(after, before, strict=True)),
            "load_before": load,
            "load_after": loadavg(),
            "output_tail": result.stdout[-600:],
        }


def fill_wheelhouse(wheelhouse: Path, requirements: Path) -> None:
    """The local wheelhouse the alternatives install from (deploy keeps its own cache the same way)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "-d",
            str(wheelhouse),
            "-r",
            str(requirements),
        ],
        check=True,
    )


def scenario(name: str, runner: Runner, runs: int, change: Any = None) -> dict[str, Any]:
    """Run every tool `runs` times on the same change (each run gets a fresh change when `change` is set)."""
    out: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
    for index in range(runs):
        if change is not None:
            change(index)
        for tool in TOOLS:
            run = runner.run(tool)
            out[tool].append(run)
            print(
                f"{name:20} {tool:8} {run['seconds']:7.2f} s  sent {run['bytes_sent']:>10,} B  "
                f"load {run['load_before'][0]}",
                flush=True,
            )
    return {
        tool: {
            "seconds_median": round(statistics.median(r["seconds"] for r in rs), 3),
            "bytes_sent_median": int(statistics.median(r["bytes_sent"] for r in rs)),
            "bytes_received_median": int(statistics.median(r["bytes_received"] for r in rs)),
            "runs": rs,
        }
        for tool, rs in out.items()
    }


def under_load(runner: Runner, project: benchkit.Project, address: str) -> dict[str, Any]:
    """A one-line change per tool while wrk requests that tool's site; the requests that failed."""
    out = {}
    for index, tool in enumerate(TOOLS):
        project.set_version(f"load-{index}")
        wrk = subprocess.Popen(
            [
                "wrk",
                "-t1",
                "-c8",
                "-d120s",
                "--timeout=5s",
                "-s",
                str(benchkit.WRK_SCRIPT),
                "-H",
                f"Host: {SERVER_NAMES[tool]}",
                f"http://{address}/",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        run = runner.run(tool)
        time.sleep(1.0)
        wrk.send_signal(signal.SIGINT)
        stdout, _ = wrk.communicate(timeout=30)
        line = next((x for x in reversed(stdout.splitlines()) if x.startswith("{")), "{}")
        import json

        raw = json.loads(line)
        failed = (
            raw.get("status_errors", 0)
            + raw.get("connect_errors", 0)
            + raw.get("read_errors", 0)
            + raw.get("write_errors", 0)
            + raw.get("timeouts", 0)
        )
        out[tool] = {
            "push_seconds": run["seconds"],
            "requests": raw.get("requests"),
            "failed": failed,
            "p99_ms": round(raw.get("p99_us", 0) / 1000, 2),
            "max_ms": round(raw.get("max_us", 0) / 1000, 2),
            "raw": raw,
        }
        print(
            f"under load {tool:8} push {run['seconds']:.2f} s: {raw.get('requests')} requests, "
            f"{failed} failed, "
            f"p99 {out[tool]['p99_ms']} ms",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=Path("/var/cache/deploy/bench-venv"))
    parser.add_argument("--out", default="push_compare")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "push: deploy vs ansible-core vs pyinfra, same release, same sandbox host",
        "machine": benchkit.machine(),
        "versions": {
            "ansible-core": subprocess.run(
                [f"{args.venv}/bin/ansible", "--version"], capture_output=True, text=True
            ).stdout.splitlines()[0],
            "pyinfra": subprocess.run(
                [f"{args.venv}/bin/pyinfra", "--version"], capture_output=True, text=True
            ).stdout.strip(),
        },
        "runs": args.runs,
        "load_average_before": loadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-push-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        box = Sandbox(work / "sandbox", progress=lambda message: None)
        try:
            hosts = box.up(3)
            project = benchkit.make_project(work / "one", hosts[:1])
            wheelhouse = work / "wheelhouse"
            fill_wheelhouse(wheelhouse, project.path / "requirements.txt")
            project.deploy("setup", check=True)
            one = Runner(args.venv, project, hosts[:1], wheelhouse, work)
            scenarios: dict[str, Any] = {}
            result["one_host"] = scenarios  # saved after every scenario: a failure keeps what was measured
            scenarios["first"] = scenario("first push", one, 1)
            benchkit.save(args.out, result)
            scenarios["no_change"] = scenario("no change", one, args.runs)
            benchkit.save(args.out, result)
            scenarios["code_change"] = scenario(
                "code change", one, args.runs, lambda i: project.set_version(f"code-{i}")
            )

            def requirements_change(index: int) -> None:
                path = project.path / "requirements.txt"
                old, new = (
                    ("packaging==26.3", "packaging==25.0")
                    if index % 2 == 0
                    else ("packaging==25.0", "packaging==26.3")
                )
                path.write_text(path.read_text().replace(old, new))
                fill_wheelhouse(wheelhouse, path)
                project.commit(f"requirements {index}")

            scenarios["requirements_change"] = scenario("requirements change", one, 1, requirements_change)
            benchkit.save(args.out, result)

            three_project = benchkit.make_project(work / "three", hosts)
            three_project.deploy("setup", check=True)
            three = Runner(args.venv, three_project, hosts, wheelhouse, work)
            scenario("first push, 3 hosts", three, 1)
            result["three_hosts"] = {
                "code_change": scenario(
                    "code change, 3 hosts",
                    three,
                    args.runs,
                    lambda i: three_project.set_version(f"code3-{i}"),
                )
            }
            result["three_over_one"] = {
                tool: round(
                    result["three_hosts"]["code_change"][tool]["seconds_median"]
                    / scenarios["code_change"][tool]["seconds_median"],
                    2,
                )
                for tool in TOOLS
            }
            benchkit.save(args.out, result)
            result["under_load"] = under_load(one, project, hosts[0].address)
        finally:
            box.down()
    result["load_average_after"] = loadavg()
    print(f"wrote {benchkit.save(args.out, result)}")


if __name__ == "__main__":
    main()
