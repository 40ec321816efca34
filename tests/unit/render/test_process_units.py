"""Each process's unit: its stop signal and timeout, limits, readiness type, and the program it runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.render.render import process_script, render

pytestmark = pytest.mark.unit

#: Processes of every kind of unit line (tests/unit/checks/test_tools.py verifies them with systemd).
PROCESSES = """\
processes:
  worker:
    command: rq worker --url "$REDIS_URL" default
    instances: 2
    stop_timeout: 600
    memory_max: 512M
    cpu_quota: 50%
  beat: {command: celery -A tasks beat, singleton: true, ready: notify, stop_signal: SIGINT}
"""
CONFIG = (
    """\
app: {name: shop, wsgi: "shop:app", secrets: [SECRET_KEY], env: {LOG_LEVEL: info}}
server: {domains: [shop.example.com], hosts: [10.0.0.1]}
"""
    + PROCESSES
)


def _lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if line and not line.startswith("#")}


def test_each_process_gets_its_own_unit_template() -> None:
    files = render(load_text(CONFIG, "deploy.yaml"))
    worker = _lines(files["systemd/shop-worker@.service"])
    beat = _lines(files["systemd/shop-beat@.service"])
    assert {
        "Type=exec",
        "KillMode=mixed",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=600",
        "MemoryMax=512M",
        "CPUQuota=50%",
        "User=deploy",
        "EnvironmentFile=/etc/shop/env",
        'Environment="LOG_LEVEL=info"',
        "Environment=DEPLOY_INSTANCE=%i",
        "SyslogIdentifier=shop-worker-%i",
        "ProtectSystem=strict",
        "ReadWritePaths=/srv/shop/shared",
    } <= worker
    assert {"Type=notify", "NotifyAccess=main", "KillSignal=SIGINT", "TimeoutStopSec=60"} <= beat
    assert not any(line.startswith(("MemoryMax", "CPUQuota")) for line in beat)
    # $ and % are the shell's, not systemd's: doubled in the unit file.
    assert 'exec rq worker --url \\"$$REDIS_URL\\" default"' in files["systemd/shop-worker@.service"]
    assert "${DEPLOY_INSTANCE%%-*}" in files["systemd/shop-worker@.service"]


def test_no_processes_no_process_units() -> None:
    files = render(load_text(CONFIG.split("processes:")[0], "deploy.yaml"))
    assert [f for f in files if f.startswith("systemd/")] == ["systemd/shop@.service"]


def test_the_program_runs_the_command_in_its_slots_release_with_its_venv_and_env(tmp_path: Path) -> None:
    """The shell program of ExecStart, run by a real sh: instance blue-2 runs in slot blue's release."""
    config = load_text(CONFIG, "deploy.yaml")
    # base_dir under /tmp is refused by validation (a system folder): this test's copy skips it.
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"base_dir": str(tmp_path)})}
    )
    release = tmp_path / "releases" / "r1"
    (release / ".venv" / "bin").mkdir(parents=True)
    tool = release / ".venv" / "bin" / "rq"
    tool.write_text('#!/bin/sh\necho "$PWD|$DEPLOY_RELEASE|$VIRTUAL_ENV|$*"\n')
    tool.chmod(0o755)
    (tmp_path / "slots").mkdir()
    (tmp_path / "slots" / "blue").symlink_to(release)
    (tmp_path / "slots" / "blue.env").write_text("DEPLOY_RELEASE=r1\nDEPLOY_ENVIRONMENT=default\n")
    env = {"PATH": os.environ["PATH"], "DEPLOY_INSTANCE": "blue-2", "REDIS_URL": "redis://h:6379/0"}
    script = process_script(config, config.processes["worker"].command)
    out = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    # cd -P: the release's own folder, not the slot link (which a later push moves).
    assert out.stdout.strip() == f"{release}|r1|{release}/.venv|worker --url redis://h:6379/0 default"
    env["DEPLOY_INSTANCE"] = "green-1"  # no such slot: it says so and fails
    out = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
