"""deploy.yaml `jobs:`: valid jobs load with safe defaults; a wrong schedule, name or key names file, line,
key and what was expected; every schedule the parser accepts is one systemd accepts too."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from deploy.config import schedule
from deploy.config.loader import ConfigError, load_text

pytestmark = pytest.mark.unit

BASE = """\
app:
  name: shop
  wsgi: "shop:create_app()"
server:
  domains: [shop.example.com]
  hosts: [10.0.0.1, 10.0.0.2]
jobs:
"""


def problems(jobs: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(BASE + textwrap.indent(textwrap.dedent(jobs), "  "), "deploy.yaml")
    return [str(p) for p in info.value.problems]


def test_a_job_takes_safe_defaults() -> None:
    config = load_text(BASE + "  cleanup:\n    command: flask purge-old\n    schedule: hourly\n")
    job = config.jobs["cleanup"]
    assert (job.command, job.schedule, job.hosts, job.timeout, job.catch_up) == (
        "flask purge-old",
        "hourly",
        "first",
        3600,
        False,
    )
    assert load_text(BASE.removesuffix("jobs:\n")).jobs == {}


def test_a_schedule_systemd_would_refuse_names_line_key_and_the_expected_forms() -> None:
    out = problems("cleanup:\n  command: flask purge\n  schedule: '*-*-* 25:00'\n")
    assert len(out) == 1
    assert out[0].startswith(
        "deploy.yaml:10: jobs.cleanup.schedule: the hour: 25 is outside 0..23; expected "
    )
    assert "'Mon..Fri 09:00'" in out[0] and "got '*-*-* 25:00'" in out[0]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("hourlyy", "is not a weekday, a date or a time"),
        ("*:*/15", "a leading '*/' is not systemd's"),
        ("Mon 10:00 12:00", "the time comes last, once"),
        ("*-13-01", "the month: 13 is outside 1..12"),
        ("10:61", "the minute: 61 is outside 0..59"),
        ("5..1:00", "the range '5..1' runs backwards"),
        ("*:0/0", "needs a step above 0"),
        ("*-02-30 00:00", "month 2 has no day 30: the job would never run"),
        ("*-04-31", "month 4 has no day 31"),
        ("Funday", "is not a weekday, a date or a time"),
        ("", "expected minutely"),
        ("UTC", "expected minutely"),
    ],
)
def test_each_wrong_schedule_says_what_is_wrong(value: str, why: str) -> None:
    with pytest.raises(schedule.ScheduleError) as info:
        schedule.check(value)
    assert why in str(info.value)
    assert "expected minutely, hourly, daily, weekly, monthly" in str(info.value)


def test_job_names_hosts_and_timeouts_are_checked() -> None:
    out = problems(
        """\
        Clean_Up:
          command: x
          schedule: daily
        ok:
          command: ''
          schedule: daily
          hosts: Some
          timeout: 0
          at: 3
        """
    )
    joined = "\n".join(out)
    assert "deploy.yaml:8: jobs.Clean_Up: expected a name of lower-case letters" in joined
    assert "jobs.ok.command:" in joined
    assert "jobs.ok.hosts:" in joined and "expected a name of lower-case letters" in joined
    assert "jobs.ok.timeout:" in joined
    assert "jobs.ok.at: unknown key 'at'" in joined


def test_a_job_runs_on_the_first_host_every_host_or_the_hosts_of_a_role() -> None:
    hosts = (
        "  hosts: [10.0.0.1, {address: 10.0.0.2, roles: [worker]}, {address: 10.0.0.3, roles: [web, worker]}]"
    )
    text = BASE.replace("  hosts: [10.0.0.1, 10.0.0.2]", hosts) + "".join(
        f"  {where}:\n    command: x\n    schedule: daily\n    hosts: {where}\n"
        for where in ("first", "all", "worker", "web")
    )
    config = load_text(text)
    assert [config.job_hosts(n) for n in ("first", "all", "worker", "web")] == [
        ["10.0.0.1"],
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
        ["10.0.0.2", "10.0.0.3"],
        ["10.0.0.1", "10.0.0.3"],
    ]


def test_a_job_on_a_role_no_host_has_is_refused_with_its_line() -> None:
    out = problems("cleanup:\n  command: x\n  schedule: daily\n  hosts: wrker\n")
    assert any(
        p.startswith("deploy.yaml:11: jobs.cleanup.hosts: no host has the role 'wrker'") for p in out
    ), out


ACCEPTED = [
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "*-*-* 03:30:00",
    "Mon..Fri 09:00",
    "Mon-Fri 09:00",
    "Sat,Sun 10:00 UTC",
    "*:0/15",
    "*:00:30",
    "0/3:00",
    "9..17:00",
    "2027-*-* 1,13:00",
    "Sun *-*-01 04:00",
    "*-*-01",
    "01-01",
    "Mon",
    "Monday 12:00",
    "Sun *-*-01..07 04:00",
    "Mon..Fri *-*-* 02:30:00",
    "*-02-29 12:00",
]


@pytest.mark.tools
@pytest.mark.parametrize("value", ACCEPTED)
def test_every_accepted_schedule_is_accepted_by_systemd(value: str) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (the CI installs it; see .ci/run)")
    assert schedule.check(value) == value
    out = subprocess.run(
        ["systemd-analyze", "calendar", schedule.on_calendar(value)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_a_day_number_where_the_weekday_goes_is_refused() -> None:
    with pytest.raises(schedule.ScheduleError):
        schedule.check("1,15 *-*-*")


def test_the_words_are_systemds_own() -> None:
    assert schedule.on_calendar("hourly") == "*-*-* *:00:00"
    assert schedule.on_calendar("Mon 10:00") == "Mon 10:00"
