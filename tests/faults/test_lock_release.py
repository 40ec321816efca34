"""`deploy lock release` on a real host never signals a process that is not the lock's holder.

A stale lock record names a pid; by the time someone releases the lock, that pid may belong to an
unrelated process (pids are reused). Release checks the pid's start time and command line against
what the holder recorded and signals nothing when they differ.
"""

from __future__ import annotations

import json

import pytest

from deploy.sandbox.machines import Sandbox
from tests.faults.faultkit import BASE, lock_status_after_interruption
from tests.hosts.pushkit import Project

pytestmark = pytest.mark.faults

LOCK_INFO = f"{BASE}/.deploy/lock.json"
UNIT = "faults-unrelated-sleep"


def _pid_start_and_cmdline(box: Sandbox, host: object, pid: str) -> tuple[str, str]:
    script = (
        'stat=$(cat /proc/$1/stat) && set -- ${stat##*") "} && echo "${20}"; '
        "sha256sum < /proc/$0/cmdline | cut -d ' ' -f 1"
    )
    out = box.run(host, ["sh", "-c", script, pid, pid], check=True).stdout.split()  # type: ignore[arg-type]
    return out[0], out[1]


@pytest.mark.parametrize("forged", ["start time", "command line"])
def test_lock_release_leaves_an_unrelated_process_that_reuses_the_holder_s_pid(
    fault_box: Sandbox, live_project: Project, forged: str
) -> None:
    host = live_project.hosts[0]
    fault_box.run(host, ["systemctl", "stop", UNIT])
    fault_box.run(host, ["systemd-run", "--quiet", f"--unit={UNIT}", "sleep", "600"], check=True)
    try:
        show = ["systemctl", "show", "-p", "MainPID", "--value", UNIT]
        pid = fault_box.run(host, show, check=True).stdout.strip()
        assert pid not in ("", "0")
        start, cmdline = _pid_start_and_cmdline(fault_box, host, pid)
        # A record left by a holder that ended, whose pid the unrelated sleep now has: one of the two
        # identities matches (the other one tells them apart).
        record = {
            "by": "gone@laptop",
            "pid": 4242,
            "action": "push",
            "release": "r-stale",
            "since": "2026-01-01T00:00:00Z",
            "remote_pid": int(pid),
            "remote_start": start if forged == "command line" else str(int(start) + 1),
            "remote_cmdline": cmdline if forged == "start time" else "0" * 64,
        }
        write = 'umask 077 && cat > "$1"'
        fault_box.run(host, ["sh", "-c", write, "w", LOCK_INFO], input=json.dumps(record) + "\n", check=True)
        result = live_project.deploy("lock", "release", "--yes", timeout=60)
        print(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{host.address}: released; its holder, gone@laptop (pid 4242" in result.stdout
        assert f"pid {pid} is not the process that took the lock" in result.stdout
        assert "nothing was signalled" in result.stdout
        # The sleep still runs, the same process: it was never signalled.
        assert fault_box.run(host, ["systemctl", "is-active", UNIT]).stdout.strip() == "active"
        assert fault_box.run(host, show, check=True).stdout.strip() == pid
        assert fault_box.run(host, ["test", "-e", LOCK_INFO]).returncode == 1
        assert lock_status_after_interruption(live_project).splitlines() == [
            f"{h.address}: free" for h in live_project.hosts
        ]
    finally:
        fault_box.run(host, ["systemctl", "stop", UNIT])
