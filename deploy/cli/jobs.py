"""`deploy jobs`: each scheduled job's last run, result and next run on every host; `deploy jobs run NAME`."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from deploy.cli.common import (
    Printer,
    config_option,
    connected,
    env_option,
    fail,
    handles_config_errors,
    host_names,
    load_config,
    redacts_secrets,
)

if TYPE_CHECKING:
    from deploy.config.model import Config
    from deploy.remote.jobs import JobState

_KEYS = click.option(
    "--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet."
)


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _row(config: Config, state: JobState) -> dict[str, object]:
    return {
        **state.as_dict(),
        "schedule": config.jobs[state.job].schedule,
        "last_start_utc": None if state.last_start is None else _when(state.last_start),
        "next_run_utc": None if state.next_run is None else _when(state.next_run),
    }


def _no_next(row: dict[str, object]) -> str:
    if row["timer"] != "active":
        return f"(timer {row['timer']})"
    # A timer computes its next run once the run in progress has ended.
    return "after this run" if row["result"] == "running" else "-"


def _table(rows: list[dict[str, object]]) -> list[str]:
    header = ("JOB", "HOST", "SCHEDULE", "LAST RUN", "RESULT", "NEXT RUN")
    cells = [
        (
            str(r["job"]),
            str(r["host"]),
            str(r["schedule"]),
            str(r["last_start_utc"] or "-"),
            str(r["result"]),
            str(r["next_run_utc"] or _no_next(r)),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *cells)) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in (header, *cells)
    ]


@click.group(name="jobs", invoke_without_command=True)
@config_option
@env_option
@_KEYS
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per job and host.")
@click.pass_context
@handles_config_errors
@redacts_secrets
def jobs_group(
    ctx: click.Context, config_path: str, environment: str | None, accept_new_host_keys: bool, as_json: bool
) -> None:
    """Scheduled jobs (deploy.yaml jobs:) on every host that runs them: the last run's start and result,
    and the next run (one SSH command per host). 'deploy jobs run NAME' runs one now."""
    if ctx.invoked_subcommand is not None:
        return
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.remote.executor import each
    from deploy.remote.jobs import job_states, jobs_on, show_jobs

    config, _project = load_config(config_path, environment)
    if not config.jobs:
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"{config_path} has no jobs: (see 'Scheduled jobs' in the docs)")
        return
    hosts = [h for h in host_names(config) if jobs_on(config, h)]
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
        results = each(hosts, lambda h: executor.run(h, show_jobs(config, jobs_on(config, h)), timeout=30))
    rows: list[dict[str, object]] = []
    for host in hosts:
        result = results[host]
        if isinstance(result, BaseException):
            fail(str(result), 1)
            return
        rows += [_row(config, s) for s in job_states(config, host, jobs_on(config, host), result[1])]
    rows.sort(key=lambda r: (str(r["job"]), hosts.index(str(r["host"]))))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for line in _table(rows):
        click.echo(line)


@jobs_group.command(name="run")
@config_option
@env_option
@click.option("--host", "only", default=None, help="Run on this host (default: the first that runs the job).")
@click.option("-n", "--lines", default=50, show_default=True, help="How many lines of the run's log to show.")
@_KEYS
@click.argument("name")
@handles_config_errors
@redacts_secrets
def run_command(
    config_path: str,
    environment: str | None,
    only: str | None,
    lines: int,
    accept_new_host_keys: bool,
    name: str,
) -> None:
    """Run the job NAME now on one host, wait for it to end, and show its log and result (exit 1 if it
    failed). A run already in progress (started by its timer) is waited for, not doubled."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import ConfigError, Problem, line_of
    from deploy.remote.jobs import parse_run, run_job, runs_on

    config, _project = load_config(config_path, environment)
    if name not in config.jobs:
        line, path = line_of(config_path, config.environment, ("jobs",))
        known = ", ".join(sorted(config.jobs)) or "none"
        raise ConfigError([Problem(config_path, line, path, f"no job {name!r} (jobs: {known})")])
    hosts = [h for h in host_names(config) if runs_on(config, name, h)]
    if only is not None and only not in hosts:
        line, path = line_of(config_path, config.environment, ("jobs", name))
        raise ConfigError(
            [
                Problem(
                    config_path,
                    line,
                    path,
                    f"job {name!r} does not run on {only!r}; it runs on {', '.join(hosts)}",
                )
            ]
        )
    host = only or hosts[0]
    started = time.monotonic()
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
        _code, output = executor.run(
            host, run_job(config, name, lines), timeout=config.jobs[name].timeout + 60
        )
    outcome = parse_run(output)
    for text in outcome.log:
        click.echo(text)
    took = time.monotonic() - started
    click.echo(f"{name} on {host}: {outcome.why} ({took:.1f}s)")
    sys.exit(0 if outcome.ok else 1)


COMMANDS: list[click.Command] = [jobs_group]
