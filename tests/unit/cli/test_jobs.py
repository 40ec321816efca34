"""`deploy jobs` without hosts: no jobs, a job or host deploy.yaml does not have (exit 2), the table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import main
from deploy.cli.jobs import _table

pytestmark = pytest.mark.unit

BASE = """\
app:
  name: hello
  wsgi: "hello:app"
server:
  domains: [hello.example.com]
  hosts: [web1.example.com, web2.example.com]
  tls: false
"""
JOBS = "jobs:\n  purge: {command: flask purge, schedule: hourly}\n"


def run(tmp_path: Path, text: str, *args: str) -> tuple[int, str, str]:
    (tmp_path / "deploy.yaml").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, [*args, "-c", str(tmp_path / "deploy.yaml")])
    return result.exit_code, result.stdout, result.stderr


def test_no_jobs_says_so_without_connecting(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, BASE, "jobs")
    assert code == 0 and "has no jobs:" in out
    code, out, _ = run(tmp_path, BASE, "jobs", "--json")
    assert (code, out) == (0, "[]\n")


def test_run_refuses_a_job_or_host_deploy_yaml_does_not_have(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, BASE + JOBS, "jobs", "run", "nope")
    assert code == 2
    assert err.strip().endswith("deploy.yaml:8: jobs: no job 'nope' (jobs: purge)")
    code, _, err = run(tmp_path, BASE + JOBS, "jobs", "run", "purge", "--host", "web2.example.com")
    assert code == 2
    assert "jobs.purge: job 'purge' does not run on 'web2.example.com'; it runs on web1.example.com" in err


def test_the_table_lines_up_and_says_when_a_running_job_runs_next() -> None:
    rows: list[dict[str, object]] = [
        {
            "job": "purge",
            "host": "web1.example.com",
            "schedule": "hourly",
            "last_start_utc": "2026-12-06 22:00:00 UTC",
            "result": "running",
            "next_run_utc": None,
            "timer": "active",
        },
        {
            "job": "report",
            "host": "web1.example.com",
            "schedule": "daily",
            "last_start_utc": None,
            "result": "not installed",
            "next_run_utc": None,
            "timer": "not installed",
        },
    ]
    assert _table(rows) == [
        "JOB     HOST              SCHEDULE  LAST RUN                 RESULT         NEXT RUN",
        "purge   web1.example.com  hourly    2026-12-06 22:00:00 UTC  running        after this run",
        "report  web1.example.com  daily     -                        not installed  (timer not installed)",
    ]
