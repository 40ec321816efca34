"""Scheduled jobs in setup and push plans: timers installed and enabled on the hosts that run them (the
first, or all), updated after the switch, removed when deploy.yaml drops them; exact commands."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deploy.config.loader import load_text
from deploy.layout import job_unit_glob, managed_files
from deploy.plan import Command, Upload
from deploy.push.jobs import job_steps
from deploy.push.plan_push import push_plan
from deploy.push.plan_setup import setup_plan
from deploy.remote.executor import display_line
from deploy.remote.facts import HostState, ReleaseInfo
from deploy.render.render import render
from tests.unit.push.test_plans import SECRETS, YAML, build, state

pytestmark = pytest.mark.unit

JOBS = """\
jobs:
  cleanup: {command: flask purge, schedule: hourly}
  report: {command: python -m shop.report, schedule: daily, hosts: all}
"""
CONFIG = load_text(YAML + JOBS)
UNITS = "/etc/systemd/system"


def lines(steps: tuple[object, ...]) -> list[str]:
    out = []
    for step in steps:
        for action in step.actions:  # type: ignore[attr-defined]
            out.append(display_line(action) if isinstance(action, Command) else f"write {action.remote_path}")
    return out


def host(name: str, **changes: object) -> HostState:
    rendered = render(CONFIG)
    base = state(name, rendered)
    return replace(base, **changes)  # type: ignore[arg-type]


def installed(config_rendered: dict[str, str], *names: str) -> dict[str, str | None]:
    files: dict[str, str | None] = {}
    for name in names:
        for kind in ("service", "timer"):
            files[f"{UNITS}/shop-job-{name}.{kind}"] = config_rendered[f"systemd/shop-job-{name}.{kind}"]
    return files


def test_the_first_host_gets_every_job_and_the_others_only_those_on_all_hosts() -> None:
    rendered = render(CONFIG)
    first = lines(job_steps(CONFIG, host("web1"), rendered))
    assert first == [
        f"write {UNITS}/shop-job-cleanup.service",
        f"write {UNITS}/shop-job-cleanup.timer",
        f"write {UNITS}/shop-job-report.service",
        f"write {UNITS}/shop-job-report.timer",
        "systemctl daemon-reload",
        "systemctl enable --now --quiet shop-job-cleanup.timer shop-job-report.timer",
    ]
    other = lines(job_steps(CONFIG, host("web2"), rendered))
    assert other == [
        f"write {UNITS}/shop-job-report.service",
        f"write {UNITS}/shop-job-report.timer",
        "systemctl daemon-reload",
        "systemctl enable --now --quiet shop-job-report.timer",
    ]


def test_nothing_to_do_when_the_units_match_and_the_timers_run() -> None:
    rendered = render(CONFIG)
    files = {**host("web1").files, **installed(rendered, "cleanup", "report")}
    globbed = {job_unit_glob(CONFIG): sorted(p for p in files if "-job-" in p)}
    services = {"shop-job-cleanup.timer": "active", "shop-job-report.timer": "active"}
    assert job_steps(CONFIG, host("web1", files=files, globs=globbed, services=services), rendered) == ()
    # A timer that is not running (stopped by hand) is started again.
    stopped = {**services, "shop-job-report.timer": "inactive"}
    again = lines(job_steps(CONFIG, host("web1", files=files, globs=globbed, services=stopped), rendered))
    assert again == ["systemctl enable --now --quiet shop-job-report.timer"]


def test_a_changed_schedule_rewrites_the_timer_and_restarts_it() -> None:
    old = load_text(YAML + JOBS.replace("schedule: hourly", "schedule: minutely"))
    rendered = render(CONFIG)
    files = {**host("web1").files, **installed(render(old), "cleanup", "report")}
    services = {"shop-job-cleanup.timer": "active", "shop-job-report.timer": "active"}
    out = lines(job_steps(CONFIG, host("web1", files=files, services=services), rendered))
    assert out == [
        f"write {UNITS}/shop-job-cleanup.timer",
        "systemctl daemon-reload",
        "systemctl restart shop-job-cleanup.timer",
    ]


def test_a_removed_job_is_disabled_and_its_units_removed() -> None:
    rendered = render(CONFIG)
    files = {**host("web1").files, **installed(rendered, "cleanup", "report")}
    stale = [f"{UNITS}/shop-job-gone.service", f"{UNITS}/shop-job-gone.timer"]
    globbed = {job_unit_glob(CONFIG): sorted([*(p for p in files if "-job-" in p), *stale])}
    services = {"shop-job-cleanup.timer": "active", "shop-job-report.timer": "active"}
    steps = job_steps(CONFIG, host("web1", files=files, globs=globbed, services=services), rendered)
    out = lines(steps)
    assert out[0] == "systemctl disable --now --quiet shop-job-gone.timer"
    assert out[1].startswith("python3 -I -S -c ") and out[1].endswith(
        f" rm {UNITS} shop-job-gone.service shop-job-gone.timer"
    )
    assert out[2:] == ["systemctl daemon-reload"]
    # Failing to disable a timer that is already gone does not stop the push.
    disable = steps[0].actions[0]
    assert isinstance(disable, Command) and disable.check is False


def test_setup_installs_the_jobs_of_each_host() -> None:
    rendered = {h: render(CONFIG) for h in ("web1", "web2", "web3")}
    states = {h: host(h) for h in rendered}
    plan = setup_plan(CONFIG, states, rendered, SECRETS)
    jobs = [s for s in plan.steps if s.name == "jobs"]
    assert [s.host for s in jobs] == ["web1", "web2", "web3"]
    uploads = {s.host: [a.remote_path for a in s.actions if isinstance(a, Upload)] for s in jobs}
    assert len(uploads["web1"]) == 4 and len(uploads["web2"]) == 2


def _served(name: str, release: str, rendered: dict[str, str], jobs: dict[str, str | None]) -> HostState:
    """A host serving `release` from slot blue, its units matching `rendered` but its job units `jobs`."""
    files = {path: rendered[key] for path, key in managed_files(CONFIG) if key in rendered}
    return host(
        name,
        files={**files, **jobs},
        links={**host(name).links, "current": f"/srv/shop/releases/{release}", "live": "/srv/shop/blue.sock"},
        releases=(ReleaseInfo(release, {"id": release}, served=True),),
        services={"shop@blue.service": "active"},
    )


def test_a_push_updates_the_jobs_after_the_switch_not_before() -> None:
    rendered = render(CONFIG)
    old = load_text(YAML + JOBS.replace("flask purge", "flask purge --old"))
    states = {"web1": _served("web1", "20240101-000000-aaaaaaa", rendered, installed(render(old), "cleanup"))}
    plan = push_plan(CONFIG, states, {"web1": rendered}, SECRETS, build())
    (one,) = plan.hosts
    assert not any(s.name == "jobs" for s in (*one.prepare, *one.start, *one.switch))
    (jobs,) = [s for s in one.finish if s.name == "jobs"]
    assert one.finish[0] is jobs
    written = [a.remote_path for a in jobs.actions if isinstance(a, Upload)]
    assert written == [
        f"{UNITS}/shop-job-cleanup.service",
        f"{UNITS}/shop-job-report.service",
        f"{UNITS}/shop-job-report.timer",
    ]
