"""Scheduled jobs rendered: a hardened oneshot service that runs in the current release, and its timer;
systemd-analyze verify accepts both, and the ExecStart program runs the command in the right release."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.checker import linters
from deploy.config.loader import load_text
from deploy.render.render import JOB_PROGRAM, render, systemd_hardening

pytestmark = pytest.mark.unit

CONFIG = """\
app:
  name: shop
  wsgi: "shop:app"
  env: {LOG_LEVEL: info}
  secrets: [SECRET_KEY]
  shared: [data]
server:
  domains: [shop.example.com]
  hosts: [10.0.0.1, 10.0.0.2]
jobs:
  cleanup:
    command: 'flask purge-old --days 30 >> "$HOME/purge.log"; echo 100% done'
    schedule: hourly
    timeout: 900
  report:
    command: python -m shop.report
    schedule: "Mon..Fri 09:00"
    hosts: all
    catch_up: true
"""


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_each_job_renders_a_service_and_a_timer() -> None:
    files = render(load_text(CONFIG))
    jobs = sorted(k for k in files if "-job-" in k)
    assert jobs == [
        "systemd/shop-job-cleanup.service",
        "systemd/shop-job-cleanup.timer",
        "systemd/shop-job-report.service",
        "systemd/shop-job-report.timer",
    ]
    assert not any("-job-" in k for k in render(load_text(CONFIG.split("jobs:")[0])))


def test_the_timer_follows_schedule_and_catch_up() -> None:
    files = render(load_text(CONFIG))
    cleanup = lines(files["systemd/shop-job-cleanup.timer"])
    assert "OnCalendar=*-*-* *:00:00" in cleanup
    assert "Persistent=false" in cleanup
    assert "AccuracySec=1s" in cleanup
    assert "Unit=shop-job-cleanup.service" in cleanup
    assert cleanup[-2:] == ["[Install]", "WantedBy=timers.target"]
    report = lines(files["systemd/shop-job-report.timer"])
    assert "OnCalendar=Mon..Fri 09:00" in report and "Persistent=true" in report


def test_the_service_is_a_hardened_oneshot_in_the_current_release() -> None:
    config = load_text(CONFIG)
    unit = lines(render(config)["systemd/shop-job-cleanup.service"])
    for expected in (
        "Type=oneshot",
        "User=deploy",
        "Group=deploy",
        "WorkingDirectory=/srv/shop/current",
        "ConditionPathExists=/srv/shop/current",
        "EnvironmentFile=/etc/shop/env",
        'Environment="LOG_LEVEL=info"',
        "Environment=DEPLOY_JOB=cleanup",
        "TimeoutStartSec=900",
        "SyslogIdentifier=shop-job-cleanup",
    ):
        assert expected in unit, expected
    # The app unit's hardening, in the same order, less the chown Gunicorn needs for its socket.
    hardening = [f"{k}={v}" for k, v in systemd_hardening(config) if v != "@chown"]
    assert unit[-len(hardening) :] == hardening
    assert "SystemCallFilter=@chown" not in unit
    assert "SystemCallFilter=@chown" in render(config)["systemd/shop@.service"]
    # Started by its timer only: nothing enables the service itself.
    assert "[Install]" not in unit
    exec_start = next(line for line in unit if line.startswith("ExecStart="))
    # Variables and specifiers of the command reach the shell literally ($ and % escaped for systemd).
    assert exec_start.endswith('"flask purge-old --days 30 >> \\"$$HOME/purge.log\\"; echo 100%% done"')
    assert exec_start.startswith('ExecStart=/bin/sh -c "r=$$(pwd -P)')


@pytest.mark.parametrize("python_root", ["src", None])
def test_the_program_runs_the_command_in_the_release_current_pointed_at(
    tmp_path: Path, python_root: str | None
) -> None:
    release = tmp_path / "releases" / "20270101-000000"
    (release / ".deploy").mkdir(parents=True)
    (release / ".venv" / "bin").mkdir(parents=True)
    (release / ".deploy" / "release.json").write_text(
        json.dumps({"id": release.name, "python_root": python_root}, indent=1, sort_keys=True) + "\n"
    )
    (tmp_path / "current").symlink_to(release)
    # systemd enters WorkingDirectory= (resolving the link) before the program starts.
    out = subprocess.run(
        ["/bin/sh", "-c", JOB_PROGRAM, "shop-job-x", 'echo "$DEPLOY_RELEASE|$PYTHONPATH|$PWD|$PATH"'],
        cwd=tmp_path / "current",
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PWD")},
        capture_output=True,
        text=True,
        check=True,
    )
    fields = out.stdout.strip().split("|")
    assert fields[0] == release.name
    assert fields[1] == (f"{release}/src" if python_root else "")
    assert fields[2] == str(release)
    assert fields[3].startswith(f"{release}/.venv/bin:")


@pytest.mark.tools
def test_systemd_analyze_verify_accepts_the_units() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (the CI installs it; see .ci/run)")
    files = render(load_text(CONFIG))
    for job in ("cleanup", "report"):
        service, timer = files[f"systemd/shop-job-{job}.service"], files[f"systemd/shop-job-{job}.timer"]
        assert linters.systemd_verify(f"shop-job-{job}.service", service, ("/srv/shop",)) == []
        beside = {f"shop-job-{job}.service": service}
        assert linters.systemd_verify(f"shop-job-{job}.timer", timer, ("/srv/shop",), beside) == []


@pytest.mark.tools
def test_systemd_analyze_verify_rejects_a_broken_timer() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (the CI installs it; see .ci/run)")
    files = render(load_text(CONFIG))
    service = files["systemd/shop-job-cleanup.service"]
    timer = files["systemd/shop-job-cleanup.timer"].replace("AccuracySec=1s", "AccuracySec=soon")
    beside = {"shop-job-cleanup.service": service}
    rejections = linters.systemd_verify("shop-job-cleanup.timer", timer, ("/srv/shop",), beside)
    assert any("soon" in r.message for r in rejections), rejections
