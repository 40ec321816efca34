"""Scheduled jobs on a host: builders of the commands that read their timers and services, run one now,
install and remove their units; and the parsers of what systemctl and the run program print.

Builders return exact argument tuples (quoted in one place, `Command.line`); variable parts reach the
fixed `sh -c` programs as positional arguments, never spliced into shell text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from deploy.config.model import Config
from deploy.layout import job_unit
from deploy.plan import Command
from deploy.remote.commands import systemctl

#: What `deploy jobs` reads of each job's timer and service (`systemctl show`).
TIMER_PROPERTIES = ("Id", "LoadState", "ActiveState", "NextElapseUSecRealtime", "LastTriggerUSec")
SERVICE_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "Result",
    "ExecMainStartTimestamp",
    "ExecMainExitTimestamp",
    "ExecMainStatus",
)


def runs_on(config: Config, job: str, host: str) -> bool:
    """Whether `job` runs on `host` (named as in plans): the first of server.hosts, every host, or the
    hosts of a role."""
    return host in config.job_hosts(job)


def jobs_on(config: Config, host: str) -> list[str]:
    """The jobs that run on `host`, by name."""
    return [name for name in sorted(config.jobs) if runs_on(config, name, host)]


def show_jobs(config: Config, jobs: Sequence[str]) -> Command:
    """One `systemctl show` of every job's timer and service on a host, times in UTC (TZ=UTC: the
    next elapse is printed in the local zone whatever --timestamp says)."""
    units = [f"{job_unit(config, name)}.{kind}" for name in jobs for kind in ("timer", "service")]
    properties = ",".join(dict.fromkeys((*TIMER_PROPERTIES, *SERVICE_PROPERTIES)))
    return Command(
        ("env", "TZ=UTC", "systemctl", "show", f"--property={properties}", "--", *units),
        f"read the state of {len(jobs)} job(s)",
        check=False,
    )


#: Starts a job's service and waits for the run to end (a oneshot: `systemctl start` returns when it
#: has; a run already in progress is joined, never doubled), then prints that run's journal (at most
#: "$2" lines) and, last, one line of its outcome.
RUN_PROGRAM = (
    'systemctl start -- "$1"; rc=$?; '
    'id=$(systemctl show --value --property=InvocationID -- "$1"); '
    'if [ -n "$id" ]; then '
    'journalctl --no-pager --quiet -o short-iso -n "$2" "_SYSTEMD_INVOCATION_ID=$id"; fi; '
    'printf "deploy-job-outcome rc=%s " "$rc"; '
    'systemctl show --property=Result,ExecMainStatus,ConditionResult -- "$1" | tr "\\n" " "; echo'
)

#: The marker of the run program's last line.
OUTCOME = "deploy-job-outcome"


def run_job(config: Config, job: str, lines: int = 50) -> Command:
    """Start `job` now on a host, wait until it ends, print its journal and outcome (see RUN_PROGRAM)."""
    unit = f"{job_unit(config, job)}.service"
    return Command(
        ("sh", "-c", RUN_PROGRAM, "run-job", unit, str(lines)),
        f"run {unit} now and wait for it (up to {config.jobs[job].timeout}s)",
        sudo=True,
        check=False,
    )


def enable_timers(config: Config, jobs: Sequence[str]) -> Command:
    """Enable and start the jobs' timers (at boot too); an enabled, running timer is left as it is."""
    timers = [f"{job_unit(config, name)}.timer" for name in jobs]
    return systemctl("enable", "--now", "--quiet", *timers, description=f"enable {', '.join(timers)}")


def restart_timers(config: Config, jobs: Sequence[str]) -> Command:
    """Restart the timers of jobs whose schedule changed, so the next run follows the new one."""
    timers = [f"{job_unit(config, name)}.timer" for name in jobs]
    return systemctl("restart", *timers, description=f"restart {', '.join(timers)} (new schedule)")


def disable_timers(units: Sequence[str]) -> Command:
    """Stop and disable timers of jobs deploy.yaml no longer has (a run in progress finishes)."""
    return systemctl(
        "disable", "--now", "--quiet", *units, description=f"stop and disable {', '.join(units)}", check=False
    )


# --- parsing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    """One job on one host, as `deploy jobs` shows it. Times are seconds since the epoch (None: none)."""

    job: str
    host: str
    #: The timer: active (waiting for the next run), inactive, or not-found (not installed).
    timer: str
    next_run: float | None
    last_start: float | None
    last_end: float | None
    #: running, success, failed (exit N), timeout, never run, not installed, ...
    result: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _stamp(value: str | None) -> float | None:
    """A time systemctl printed under TZ=UTC ('Sun 2026-12-06 22:45:00 UTC'; empty or 'n/a': none)."""
    try:
        when = datetime.strptime(value or "", "%a %Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return None
    return when.replace(tzinfo=UTC).timestamp()


def parse_show(text: str) -> dict[str, dict[str, str]]:
    """`systemctl show` of several units: their properties by unit Id."""
    units: dict[str, dict[str, str]] = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            units[props["Id"]] = props
    return units


def _result(service: dict[str, str]) -> str:
    if service.get("LoadState") != "loaded":
        return "not installed"
    if service.get("ActiveState") == "activating":
        return "running"
    if _stamp(service.get("ExecMainStartTimestamp")) is None:
        return "never run"
    result = service.get("Result", "")
    if result == "success":
        return "success"
    if result == "exit-code":
        return f"failed (exit {service.get('ExecMainStatus', '?')})"
    return f"failed ({result or 'unknown'})"


def job_states(config: Config, host: str, jobs: Sequence[str], text: str) -> list[JobState]:
    """Each of `jobs` on `host`, from `show_jobs`' output."""
    units = parse_show(text)
    states = []
    for name in jobs:
        unit = job_unit(config, name)
        timer = units.get(f"{unit}.timer", {})
        service = units.get(f"{unit}.service", {})
        states.append(
            JobState(
                job=name,
                host=host,
                timer=timer.get("ActiveState", "unknown")
                if timer.get("LoadState") == "loaded"
                else "not installed",
                next_run=_stamp(timer.get("NextElapseUSecRealtime")),
                last_start=_stamp(service.get("ExecMainStartTimestamp")),
                last_end=_stamp(service.get("ExecMainExitTimestamp")),
                result=_result(service),
            )
        )
    return states


@dataclass(frozen=True)
class RunOutcome:
    """How `run_job` went: the run's journal lines, and whether it succeeded (and if not, why)."""

    log: list[str]
    ok: bool
    why: str


def parse_run(text: str) -> RunOutcome:
    """The run program's output: the journal, then the outcome line."""
    lines = text.rstrip("\n").splitlines()
    last = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith(OUTCOME)), None)
    if last is None:
        return RunOutcome(lines, False, "the run printed no outcome (was the connection lost?)")
    fields = dict(w.split("=", 1) for w in lines[last].split()[1:] if "=" in w)
    log = lines[:last]
    if fields.get("ConditionResult") == "no":
        return RunOutcome(log, False, "not run: the host has no release yet (run 'deploy push' first)")
    if fields.get("rc") == "0" and fields.get("Result") == "success":
        return RunOutcome(log, True, "success")
    result = fields.get("Result", "unknown")
    if result == "exit-code":
        return RunOutcome(log, False, f"failed (exit {fields.get('ExecMainStatus', '?')})")
    if fields.get("rc") != "0" and result == "success":
        return RunOutcome(log, False, f"systemctl start failed (exit {fields.get('rc')})")
    return RunOutcome(log, False, f"failed ({result})")
