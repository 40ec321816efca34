"""Scheduled jobs' remote commands (exact argument tuples) and the parsers of what the hosts print
(samples recorded from sandbox hosts: Debian 12, systemd 252)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.config.model import Config
from deploy.remote.facts import PROBE, HostState, parse_state, probe_command
from deploy.remote.jobs import (
    RUN_PROGRAM,
    disable_timers,
    enable_timers,
    job_states,
    jobs_on,
    parse_run,
    restart_timers,
    run_job,
    runs_on,
    show_jobs,
)

pytestmark = pytest.mark.unit

CONFIG = load_text(
    """\
app: {name: flaskr, wsgi: "flaskr:create_app()"}
server: {domains: [flaskr.test], hosts: [10.0.0.1, "10.0.0.2:2222"]}
jobs:
  broken: {command: exit 3, schedule: daily}
  slow: {command: sleep 150, schedule: minutely, timeout: 600}
  nope: {command: "true", schedule: hourly, hosts: all}
"""
)

#: `env TZ=UTC systemctl show ...` on a sandbox host: a failed run, a run in progress, a unit not installed.
SHOW = """\
NextElapseUSecRealtime=Mon 2026-12-07 00:00:00 UTC
LastTriggerUSec=
Result=success
Id=flaskr-job-broken.timer
LoadState=loaded
ActiveState=active

Result=exit-code
ExecMainStartTimestamp=Sun 2026-12-06 22:45:49 UTC
ExecMainExitTimestamp=Sun 2026-12-06 22:45:49 UTC
ExecMainStatus=3
Id=flaskr-job-broken.service
LoadState=loaded
ActiveState=failed

NextElapseUSecRealtime=
LastTriggerUSec=Sun 2026-12-06 22:46:00 UTC
Result=success
Id=flaskr-job-slow.timer
LoadState=loaded
ActiveState=active

Result=success
ExecMainStartTimestamp=Sun 2026-12-06 22:46:00 UTC
ExecMainExitTimestamp=
ExecMainStatus=0
Id=flaskr-job-slow.service
LoadState=loaded
ActiveState=activating

NextElapseUSecRealtime=
LastTriggerUSec=
Result=success
Id=flaskr-job-nope.timer
LoadState=not-found
ActiveState=inactive

Result=success
ExecMainStartTimestamp=
ExecMainExitTimestamp=
ExecMainStatus=0
Id=flaskr-job-nope.service
LoadState=not-found
ActiveState=inactive
"""


def test_jobs_run_on_the_first_host_unless_on_all() -> None:
    assert jobs_on(CONFIG, "10.0.0.1") == ["broken", "nope", "slow"]
    assert jobs_on(CONFIG, "10.0.0.2:2222") == ["nope"]
    assert not runs_on(CONFIG, "slow", "10.0.0.2")


def test_show_jobs_is_one_systemctl_show_in_utc() -> None:
    command = show_jobs(CONFIG, ["broken", "slow"])
    assert command.argv == (
        "env",
        "TZ=UTC",
        "systemctl",
        "show",
        "--property=Id,LoadState,ActiveState,NextElapseUSecRealtime,LastTriggerUSec,Result,"
        "ExecMainStartTimestamp,ExecMainExitTimestamp,ExecMainStatus",
        "--",
        "flaskr-job-broken.timer",
        "flaskr-job-broken.service",
        "flaskr-job-slow.timer",
        "flaskr-job-slow.service",
    )
    assert command.sudo is False and command.check is False


def test_timer_commands() -> None:
    assert enable_timers(CONFIG, ["slow", "nope"]).argv == (
        "systemctl",
        "enable",
        "--now",
        "--quiet",
        "flaskr-job-slow.timer",
        "flaskr-job-nope.timer",
    )
    assert restart_timers(CONFIG, ["slow"]).argv == ("systemctl", "restart", "flaskr-job-slow.timer")
    disable = disable_timers(["flaskr-job-old.timer"])
    assert disable.argv == ("systemctl", "disable", "--now", "--quiet", "flaskr-job-old.timer")
    assert disable.check is False


def test_run_job_passes_the_unit_as_an_argument_never_in_the_program() -> None:
    command = run_job(CONFIG, "slow", 20)
    assert command.argv == ("sh", "-c", RUN_PROGRAM, "run-job", "flaskr-job-slow.service", "20")
    assert "flaskr" not in RUN_PROGRAM
    assert command.sudo is True and command.check is False
    assert "600s" in command.description


def test_job_states_read_last_run_result_and_next_run() -> None:
    states = {s.job: s for s in job_states(CONFIG, "10.0.0.1", ["broken", "slow", "nope"], SHOW)}
    broken = states["broken"]
    assert (broken.timer, broken.result) == ("active", "failed (exit 3)")
    assert broken.last_start == 1796597149.0 and broken.last_end == 1796597149.0
    assert broken.next_run == 1796601600.0  # 2026-12-07 00:00:00 UTC
    slow = states["slow"]
    assert (slow.result, slow.next_run, slow.last_end) == ("running", None, None)
    assert slow.last_start == 1796597160.0
    nope = states["nope"]
    assert (nope.timer, nope.result, nope.last_start) == ("not installed", "not installed", None)
    assert job_states(CONFIG, "10.0.0.1", ["broken"], "")[0].result == "not installed"


def test_a_job_never_run_and_one_that_timed_out() -> None:
    never = SHOW.split("\n\n")[3].replace("ActiveState=activating", "ActiveState=inactive")
    never = never.replace("ExecMainStartTimestamp=Sun 2026-12-06 22:46:00 UTC", "ExecMainStartTimestamp=")
    assert job_states(CONFIG, "h", ["slow"], never)[0].result == "never run"
    timeout = SHOW.split("\n\n")[3].replace("ActiveState=activating", "ActiveState=failed")
    timeout = timeout.replace("Result=success", "Result=timeout")
    assert job_states(CONFIG, "h", ["slow"], timeout)[0].result == "failed (timeout)"


RUN_FAILED = """\
Job for flaskr-job-broken.service failed because the control process exited with error code.
2026-12-06T22:45:49+0000 sandbox-1 flaskr-job-broken[788]: about to fail
deploy-job-outcome rc=1 Result=exit-code ExecMainStatus=3 ConditionResult=yes \n"""


def test_parse_run_outcomes() -> None:
    failed = parse_run(RUN_FAILED)
    assert (failed.ok, failed.why) == (False, "failed (exit 3)")
    assert failed.log[-1].endswith("flaskr-job-broken[788]: about to fail")
    ok = parse_run("line\ndeploy-job-outcome rc=0 Result=success ExecMainStatus=0 ConditionResult=yes \n")
    assert (ok.ok, ok.why, ok.log) == (True, "success", ["line"])
    unset = parse_run("deploy-job-outcome rc=0 Result=success ExecMainStatus=0 ConditionResult=no \n")
    assert not unset.ok and "no release yet" in unset.why
    lost = parse_run("half a line")
    assert not lost.ok and "no outcome" in lost.why
    timeout = parse_run("deploy-job-outcome rc=1 Result=timeout ExecMainStatus=15 ConditionResult=yes\n")
    assert (timeout.ok, timeout.why) == (False, "failed (timeout)")


def test_the_probe_reads_the_job_units_their_timers_and_every_installed_job_unit() -> None:
    request = json.loads(probe_command(CONFIG).argv[-1])
    assert "/etc/systemd/system/flaskr-job-slow.service" in request["files"]
    assert "/etc/systemd/system/flaskr-job-slow.timer" in request["files"]
    assert "flaskr-job-nope.timer" in request["units"]
    assert request["globs"][0] == "/etc/systemd/system/flaskr-job-*"


def run_probe(tmp_path: Path, config: Config, **request: object) -> HostState:
    """The fact probe run here (not on a host): what `request` changes, no units, packages or releases."""
    asked = json.loads(probe_command(config).argv[-1])
    asked.update(units=[], packages=[], releases=str(tmp_path / "none"), **request)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(asked)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return parse_state("h", out.stdout)


def test_the_probe_lists_what_a_glob_matches(tmp_path: Path) -> None:
    (tmp_path / "shop-job-a.timer").write_text("")
    (tmp_path / "shop-job-a.service").write_text("")
    (tmp_path / "other.timer").write_text("")
    state = run_probe(tmp_path, CONFIG, globs=[f"{tmp_path}/shop-job-*"], read_globs=[])
    assert state.globs == {
        f"{tmp_path}/shop-job-*": [f"{tmp_path}/shop-job-a.service", f"{tmp_path}/shop-job-a.timer"]
    }
