"""Scheduled jobs on two real sandbox hosts: systemd timers installed by setup and push, a job that runs
once per period on the first host only, a job that never overlaps itself, `deploy jobs` and `deploy jobs
run`, a push that changes a command (a run in progress finishes in its release), a rollback, a removal.

The tests share one sandbox and run in file order, each continuing from the state the last left.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.hosts.pushkit import Project, make_project, private_sandbox, wait_for

pytestmark = pytest.mark.hosts

UNITS = "/etc/systemd/system"
LOGS = "/srv/flaskr/shared/instance"

#: tick: every 10 s, on the first host; slow: every 10 s but runs 40 s (it must never overlap itself);
#: everywhere: on every host; broken: fails.
JOBS = """\
jobs:
  tick:
    command: 'echo "$(hostname) $DEPLOY_RELEASE $(date +%s) {mark}" >> instance/ticks.log'
    schedule: '*:*:0/10'
  slow:
    command: >-
      echo "start $DEPLOY_RELEASE $(date +%s.%N)" >> instance/slow.log; sleep 40;
      echo "end $DEPLOY_RELEASE $(date +%s.%N)" >> instance/slow.log
    schedule: '*:*:0/10'
    timeout: 120
  everywhere:
    command: 'echo hello from $(hostname)'
    schedule: hourly
    hosts: all
  broken:
    command: 'echo about to fail; exit 3'
    schedule: daily
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "jobs-sandbox", 2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    made = make_project(tmp_path_factory.mktemp("jobs-project"), box.hosts())
    made.write_config(extra=JOBS.format(mark="v1"))
    made.commit("jobs")
    return made


def sh(box: Sandbox, host: SandboxHost, script: str) -> str:
    return box.run(host, ["sh", "-c", script], timeout=60).stdout


def job_units(box: Sandbox, host: SandboxHost) -> list[str]:
    return sorted(sh(box, host, f"cd {UNITS} && ls flaskr-job-* 2>/dev/null || true").split())


def release_of(output: str) -> str:
    match = re.search(r"release (\S+) is live on", output)
    assert match, output
    return match.group(1)


def test_setup_and_push_install_each_hosts_timers(box: Sandbox, project: Project) -> None:
    first, second = box.hosts()
    project.deploy("setup", check=True)
    project.deploy("push", check=True, timeout=300)
    assert job_units(box, first) == [
        f"flaskr-job-{name}.{kind}"
        for name in ("broken", "everywhere", "slow", "tick")
        for kind in ("service", "timer")
    ]
    assert job_units(box, second) == ["flaskr-job-everywhere.service", "flaskr-job-everywhere.timer"]
    active = sh(box, first, "systemctl is-active flaskr-job-tick.timer flaskr-job-broken.timer")
    assert active.split() == ["active", "active"]
    enabled = sh(box, second, "systemctl is-enabled flaskr-job-everywhere.timer")
    assert enabled.strip() == "enabled"


def ticks(box: Sandbox, host: SandboxHost) -> list[str]:
    return sh(box, host, f"cat {LOGS}/ticks.log 2>/dev/null || true").splitlines()


def test_a_timer_runs_once_per_period_on_the_first_host_only(box: Sandbox, project: Project) -> None:
    first, second = box.hosts()
    wait_for("three ticks", lambda: len(ticks(box, first)) >= 3)
    lines = ticks(box, first)
    stamps = [int(line.split()[2]) for line in lines]
    assert len(stamps) >= 3, lines
    periods = [stamp // 10 for stamp in stamps]
    assert len(periods) == len(set(periods)), f"two runs in one 10 s period: {lines}"
    assert all(line.split()[0] == "sandbox-1" for line in lines)
    assert sh(box, second, f"test -e {LOGS}/ticks.log && echo exists || echo none").strip() == "none"


def test_deploy_jobs_lists_each_job_per_host(box: Sandbox, project: Project) -> None:
    first, second = (h.address for h in box.hosts())
    out = project.deploy("jobs", check=True).stdout.splitlines()
    assert out[0].split() == ["JOB", "HOST", "SCHEDULE", "LAST", "RUN", "RESULT", "NEXT", "RUN"]
    rows = [line.split()[:2] for line in out[1:]]
    assert rows == [
        ["broken", first],
        ["everywhere", first],
        ["everywhere", second],
        ["slow", first],
        ["tick", first],
    ]
    tick = next(line for line in out if line.startswith("tick "))
    assert " success " in tick and "*:*:0/10" in tick
    data = json.loads(project.deploy("jobs", "--json", check=True).stdout)
    by_key = {(row["job"], row["host"]): row for row in data}
    assert by_key[("tick", first)]["result"] == "success"
    assert by_key[("tick", first)]["next_run"] > time.time() - 5
    assert by_key[("broken", first)]["result"] == "never run"
    assert by_key[("everywhere", second)]["timer"] == "active"


def test_jobs_run_shows_the_log_and_the_result(box: Sandbox, project: Project) -> None:
    first = box.hosts()[0].address
    ok = project.deploy("jobs", "run", "everywhere", "--host", box.hosts()[1].address)
    assert ok.returncode == 0
    assert "hello from sandbox-2" in ok.stdout
    assert f"everywhere on {box.hosts()[1].address}: success" in ok.stdout
    failed = project.deploy("jobs", "run", "broken")
    assert failed.returncode == 1
    assert "about to fail" in failed.stdout
    assert f"broken on {first}: failed (exit 3)" in failed.stdout
    unknown = project.deploy("jobs", "run", "nope")
    assert unknown.returncode == 2 and "no job 'nope'" in unknown.stderr
    elsewhere = project.deploy("jobs", "run", "tick", "--host", box.hosts()[1].address)
    assert elsewhere.returncode == 2 and "does not run on" in elsewhere.stderr


def runs(box: Sandbox, host: SandboxHost) -> list[tuple[str, str, float]]:
    """slow.log as (start|end, release, time)."""
    out = []
    for line in sh(box, host, f"cat {LOGS}/slow.log").splitlines():
        what, release, when = line.split()
        out.append((what, release, float(when)))
    return out


def test_a_job_never_overlaps_itself(box: Sandbox) -> None:
    first = box.hosts()[0]
    wait_for("two runs of slow", lambda: [what for what, _, _ in runs(box, first)].count("start") >= 2)
    log = runs(box, first)
    kinds = [what for what, _, _ in log]
    # Started every 10 s by its timer, running 40 s: without the guarantee, runs would pile up.
    assert kinds.count("start") >= 2, log
    assert all(kinds[i] == ("start" if i % 2 == 0 else "end") for i in range(len(kinds))), log
    starts = [when for what, _, when in log if what == "start"]
    assert all(b - a >= 40 for a, b in itertools.pairwise(starts)), starts


def test_a_push_updates_the_command_and_a_running_job_finishes_in_its_release(
    box: Sandbox, project: Project
) -> None:
    first = box.hosts()[0]
    old_release = runs(box, first)[0][1]
    project.write_config(extra=JOBS.format(mark="v2"))
    project.commit("tick v2")
    # Push just after a run of slow (40 s) started: it is still running when the push switches.
    deadline = time.time() + 120
    while (last := runs(box, first)[-1])[0] != "start" or time.time() - last[2] > 5:
        assert time.time() < deadline, "slow did not start again"
        time.sleep(0.5)
    new_release = release_of(project.deploy("push", check=True, timeout=300).stdout)
    switched = float(sh(box, first, "stat -c %Y /srv/flaskr/current"))
    # Until the timer started slow in the new release (after the run across the switch ended).
    wait_for(
        "a run of slow in the new release",
        lambda: any(what == "start" and release == new_release for what, release, _ in runs(box, first)),
    )
    log = runs(box, first)
    # Every run ends in the release it started in; one ran across the switch and finished in the old one.
    pairs = list(zip(log[0::2], log[1::2], strict=False))
    assert all(start[1] == end[1] for start, end in pairs), log
    assert any(s[1] == old_release and s[2] < switched <= e[2] for s, e in pairs), (log, switched)
    # The next run (started by the timer after that one ended) is in the new release.
    assert any(what == "start" and release == new_release for what, release, _ in log), log
    ran = project.deploy("jobs", "run", "tick", check=True)
    assert f"tick on {first.address}: success" in ran.stdout
    line = sh(box, first, f"tail -n 1 {LOGS}/ticks.log").split()
    assert (line[1], line[3]) == (new_release, "v2")


def test_a_rollback_leaves_the_jobs_on_the_served_release(box: Sandbox, project: Project) -> None:
    first = box.hosts()[0]
    served = sh(box, first, "readlink /srv/flaskr/current").strip().rsplit("/", 1)[-1]
    project.deploy("rollback", check=True, timeout=300)
    back = sh(box, first, "readlink /srv/flaskr/current").strip().rsplit("/", 1)[-1]
    assert back != served
    project.deploy("jobs", "run", "tick", check=True)
    last = sh(box, first, f"tail -n 1 {LOGS}/ticks.log").split()
    assert last[1] == back


def test_a_removed_job_is_disabled_and_its_units_removed(box: Sandbox, project: Project) -> None:
    first, second = box.hosts()
    kept = JOBS.format(mark="v3").split("  slow:")[0] + "  broken:" + JOBS.split("  broken:")[1]
    project.write_config(extra=kept)
    project.commit("drop slow and everywhere")
    project.deploy("push", check=True, timeout=300)
    assert job_units(box, first) == [
        f"flaskr-job-{name}.{kind}" for name in ("broken", "tick") for kind in ("service", "timer")
    ]
    assert job_units(box, second) == []
    timers = sh(box, first, "systemctl list-timers --all --no-legend 'flaskr-job-*'")
    assert "flaskr-job-slow" not in timers and "flaskr-job-tick.timer" in timers
    rows = [line.split()[0] for line in project.deploy("jobs", check=True).stdout.splitlines()[1:]]
    assert rows == ["broken", "tick"]


def test_a_job_on_a_role_runs_on_the_hosts_of_that_role(box: Sandbox, project: Project) -> None:
    first, second = box.hosts()
    nightly = "  nightly:\n    command: 'echo on the cron role'\n    schedule: daily\n    hosts: cron\n"
    project.write_config(extra=JOBS.format(mark="v4").split("  slow:")[0] + nightly)
    config = project.path / "deploy.yaml"
    text = config.read_text(encoding="utf-8")
    hosts = f"hosts: [{first.address}, {second.address}]"
    assert hosts in text
    roles = f"hosts: [{first.address}, {{address: {second.address}, roles: [web, cron]}}]"
    config.write_text(text.replace(hosts, roles), encoding="utf-8")
    project.commit("a job on the cron role")
    project.deploy("push", check=True, timeout=300)
    assert job_units(box, first) == ["flaskr-job-tick.service", "flaskr-job-tick.timer"]
    assert job_units(box, second) == ["flaskr-job-nightly.service", "flaskr-job-nightly.timer"]
    rows = [line.split()[:2] for line in project.deploy("jobs", check=True).stdout.splitlines()[1:]]
    assert rows == [["nightly", second.address], ["tick", first.address]]
    ran = project.deploy("jobs", "run", "nightly", check=True, timeout=120).stdout
    assert f"nightly on {second.address}: success" in ran and "on the cron role" in ran
