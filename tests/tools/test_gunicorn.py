"""The rendered gunicorn.conf.py passes `gunicorn --check-config` with the example app."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.facts import HostFacts
from deploy.loader import load
from deploy.render import render

ROOT = Path(__file__).resolve().parents[2]
FLASKR = ROOT / "playbooks" / "flaskr"

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(shutil.which("gunicorn") is None, reason="needs gunicorn"),
]


def gunicorn(
    tmp_path: Path, facts: HostFacts, *args: str, secret: bool = True
) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(render(load(FLASKR / "deploy.yaml", None), facts)["gunicorn.conf.py"])
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    if secret:
        env["SECRET_KEY"] = "check-config-secret-0123456789abcdef"
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(conf), *args, "flaskr:create_app()"],
        cwd=FLASKR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settings(output: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in output.splitlines() if " = " in line)
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.mark.parametrize("facts", [HostFacts(), HostFacts(cores=4)], ids=["cores-on-host", "cores-known"])
def test_check_config_passes(tmp_path: Path, facts: HostFacts) -> None:
    done = gunicorn(tmp_path, facts, "--check-config")
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_config_loads_the_app(tmp_path: Path) -> None:
    """--check-config imports the app: without SECRET_KEY the example app refuses to start."""
    done = gunicorn(tmp_path, HostFacts(), "--check-config", secret=False)
    assert done.returncode != 0 and "SECRET_KEY is not set" in done.stdout + done.stderr


def test_gunicorn_reads_the_settings(tmp_path: Path) -> None:
    found = settings(gunicorn(tmp_path, HostFacts(), "--print-config").stdout)
    assert found["workers"] == str(len(os.sched_getaffinity(0)) * 2 + 1)
    assert found["worker_tmp_dir"] == "/dev/shm"
    assert found["forwarded_allow_ips"] == "[]" and found["forwarder_headers"] == "[]"
    assert found["secure_scheme_headers"] == "{'X-FORWARDED-PROTO': 'https'}"
    assert found["umask"] == "7" and found["accesslog"] == "None" and found["errorlog"] == "-"
    assert found["max_requests"] == "10000" and found["max_requests_jitter"] == "1000"
    assert settings(gunicorn(tmp_path, HostFacts(cores=4), "--print-config").stdout)["workers"] == "9"
