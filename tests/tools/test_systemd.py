"""The rendered unit passes `systemd-analyze verify` and scores at most 1.5 in `security --offline`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest

from deploy.config.loader import load, load_text
from deploy.config.model import Config
from deploy.layout import paths_for
from deploy.render.render import render

ROOT = Path(__file__).resolve().parents[2]
MAX_EXPOSURE = 1.5

pytestmark = [
    pytest.mark.tools,
    pytest.mark.real_tools("systemd-analyze", "unshare", root=True),
]


def analyze(tmp_path: Path, cfg: Config, *args: str, slot: str = "blue") -> subprocess.CompletedProcess[str]:
    """Run systemd-analyze on the unit for one slot, with its ExecStart binary present.

    verify insists that the binary exists; it is created on a tmpfs over the app's base folder in
    a private mount namespace, so the machine itself gets no /srv/<app>.
    """
    unit = tmp_path / f"{cfg.app.name}@{slot}.service"
    unit.write_text(render(cfg)[f"systemd/{cfg.app.name}@.service"])
    paths = paths_for(cfg)
    top = "/" + paths.base.strip("/").split("/")[0]
    binary = f"{paths.slots}/{slot}/.venv/bin/gunicorn"
    script = " && ".join(
        [
            "mount --make-rprivate /",
            f"mount -t tmpfs tmpfs {shlex.quote(top)}",
            f"mkdir -p {shlex.quote(os.path.dirname(binary))}",
            f"printf '#!/bin/sh\\n' > {shlex.quote(binary)}",
            f"chmod +x {shlex.quote(binary)}",
            shlex.join(["systemd-analyze", *args, str(unit)]),
        ]
    )
    return subprocess.run(
        ["unshare", "--mount", "--fork", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def exposure(tmp_path: Path, cfg: Config) -> tuple[float, str]:
    done = analyze(tmp_path, cfg, "security", "--offline=true", "--no-pager")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    return float(found[1]), done.stdout


def test_unit_verifies_clean(tmp_path: Path) -> None:
    done = analyze(tmp_path, load(ROOT / "playbooks" / "flaskr" / "deploy.yaml", None), "verify")
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize("playbook", ["full.yaml", "internal.yaml", "minimal.yaml"])
def test_every_playbook_unit_verifies(tmp_path: Path, playbook: str) -> None:
    done = analyze(tmp_path, load(ROOT / "playbooks" / playbook, None), "verify", slot="green")
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_verify_sees_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a missing binary is reported."""
    unit = tmp_path / "broken@blue.service"
    unit.write_text("[Service]\nExecStart=/nonexistent/bin/gunicorn\n")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert "not executable" in done.stderr


def test_default_unit_exposure_is_at_most_1_5(tmp_path: Path) -> None:
    score, report = exposure(tmp_path, load(ROOT / "playbooks" / "flaskr" / "deploy.yaml", None))
    assert score <= MAX_EXPOSURE, report


def test_override_reaches_the_unit_and_the_score(tmp_path: Path) -> None:
    base = (ROOT / "playbooks" / "flaskr" / "deploy.yaml").read_text()
    default, default_report = exposure(tmp_path, load_text(base, "deploy.yaml", None))
    assert re.search(r"✓ MemoryDenyWriteExecute=", default_report)
    relaxed = load_text(
        base + 'systemd:\n  overrides: {MemoryDenyWriteExecute: "false"}\n', "deploy.yaml", None
    )
    (tmp_path / "relaxed").mkdir()
    score, report = exposure(tmp_path / "relaxed", relaxed)
    assert re.search(r"✗ MemoryDenyWriteExecute=", report)
    assert score >= default  # its weight (0.1) may vanish in the rounding of the total


def test_environment_quoting_is_valid_systemd_syntax(tmp_path: Path) -> None:
    text = (
        (ROOT / "playbooks" / "flaskr" / "deploy.yaml")
        .read_text()
        .replace(
            "env: {LOG_LEVEL: info}",
            textwrap.dedent("""\
        env:
            GREETING: 'say "hi" to $USER at 100% \\ done'
            SPACES: "a b  c"
            EMPTY: ""
        """)
            .replace("\n", "\n  ")
            .rstrip(),
        )
    )
    cfg = load_text(text, "deploy.yaml", None)
    assert cfg.app.env["GREETING"] == 'say "hi" to $USER at 100% \\ done'
    done = analyze(tmp_path, cfg, "verify")
    assert done.returncode == 0 and done.stderr == "", done.stderr
