"""Fault-test helpers: a push that can be stopped and killed at a chosen point; what must hold after."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.hosts.pushkit import Project, _env, get, version

WRAPPER = Path(__file__).with_name("pausing_deploy.py")
APP = "flaskr"
BASE = f"/srv/{APP}"
#: Written into every host's shared instance/ folder once; every fault must leave it as it is.
NOTE = "written-before-the-faults"
NOTES_FILE = f"{BASE}/shared/instance/notes.txt"


def env() -> dict[str, str]:
    """The environment of `deploy` runs: the repository on the path, the app's secret, no SSH agent."""
    out = _env()
    out.pop("SSH_AUTH_SOCK", None)
    return out


class Push:
    """`deploy push --json` (or `command`, such as setup) in a subprocess (through pausing_deploy.py),
    its output read as it comes."""

    def __init__(
        self,
        project: Project,
        *args: str,
        pause_at: str | None = None,
        pause_host: str | None = None,
        command: str = "push",
    ):
        self.command = command
        self.resume_file = Path("/tmp") / f"deploy-faults-resume-{uuid.uuid4().hex}"
        run_env = env()
        if pause_at:
            run_env["DEPLOY_TEST_PAUSE_AT"] = pause_at
            run_env["DEPLOY_TEST_RESUME_FILE"] = str(self.resume_file)
            if pause_host:
                run_env["DEPLOY_TEST_PAUSE_HOST"] = pause_host
        self.process = subprocess.Popen(
            [sys.executable, str(WRAPPER), command, "--json", *args],
            cwd=project.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=run_env,
        )
        self.lines: list[str] = []
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    self._events.put(json.loads(line))
        self._events.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 90) -> dict[str, Any]:
        """The first event (from now on) that `wanted` accepts; fails if the push ends or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such event within {timeout:g}s; output so far:\n{self.output}")
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                self._events.put(None)
                raise AssertionError(f"the push ended before the event; output:\n{self.output}")
            if wanted(event):
                return event

    def wait_paused(self, hosts: list[str], timeout: float = 90) -> None:
        """Until every one of `hosts` has stopped at the pause point."""
        waiting = set(hosts)
        while waiting:
            event = self.wait_for(lambda e: e.get("event") == "paused", timeout)
            waiting.discard(event["host"])

    def resume(self) -> None:
        self.resume_file.touch()

    def signal(self, number: int) -> None:
        """Send `number` (SIGTERM: a cancelled CI job) and let the push handle it."""
        os.kill(self.process.pid, number)

    def result(self) -> dict[str, Any]:
        """The push's last "result" event (after `finish`)."""
        for line in reversed(self.lines):
            if line.startswith('{"event": "result"'):
                return dict(json.loads(line))
        raise AssertionError(f"the push printed no result:\n{self.output}")

    def kill(self) -> None:
        """SIGKILL, as when a laptop dies: no cleanup of any kind runs in the process."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        self.resume_file.unlink(missing_ok=True)

    def finish(self, timeout: float = 150) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the push did not end within {timeout:g}s:\n{self.output}") from None
        self._reader.join(timeout=10)
        self.resume_file.unlink(missing_ok=True)
        print(f"$ deploy {self.command} --json  (exit {code})\n{self.output}")
        return code


def is_step(step: str, status: str, host: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e.get("event") == "step"
        and e.get("step") == step
        and e.get("status") == status
        and (host is None or e.get("host") == host)
    )


def wait_on_host(box: Sandbox, host: SandboxHost, test: str, timeout: float = 60) -> None:
    """Poll the host until the shell test `test` succeeds there."""
    deadline = time.monotonic() + timeout
    while box.run(host, ["sh", "-c", test], timeout=20).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"on {host.name}: `{test}` did not become true within {timeout:g}s")
        time.sleep(0.1)


@dataclass(frozen=True)
class Serving:
    """What a host's links and units say it serves."""

    live: str  # the slot live.sock points at
    current: str  # the release `current` points at
    slots: dict[str, str]  # slot -> release its link points at
    active: dict[str, str]  # slot -> systemctl is-active
    cwd: dict[str, str]  # slot -> release its running Gunicorn master works in
    enabled: dict[str, str]  # slot -> systemctl is-enabled

    @property
    def live_release(self) -> str:
        return self.slots.get(self.live, "-")

    def consistent(self) -> bool:
        """Not half-switched: live.sock's slot runs the release `current` names, and starts at boot."""
        return (
            self.live in ("blue", "green")
            and self.live_release == self.current
            and self.active[self.live] == "active"
            and self.cwd[self.live] == self.current
            and self.enabled[self.live] == "enabled"
        )


_SERVING = r"""
r() { t=$(readlink -- "$1") && basename -- "$t" || echo -; }
r /srv/flaskr/live.sock; r /srv/flaskr/current
for s in blue green; do
  r /srv/flaskr/slots/$s
  systemctl is-active flaskr@$s.service
  systemctl is-enabled flaskr@$s.service 2>/dev/null || true
  pid=$(systemctl show -p MainPID --value flaskr@$s.service)
  if [ "$pid" != 0 ]; then r /proc/$pid/cwd; else echo -; fi
done
"""


def serving(box: Sandbox, host: SandboxHost) -> Serving:
    out = box.run(host, ["sh", "-c", _SERVING], timeout=30).stdout.split()
    live, current, rest = out[0], out[1], out[2:]
    slots, active, enabled, cwd = {}, {}, {}, {}
    for index, slot in enumerate(("blue", "green")):
        slots[slot], active[slot], enabled[slot], cwd[slot] = rest[index * 4 : index * 4 + 4]
    return Serving(live.removesuffix(".sock"), current, slots, active, cwd, enabled)


def serving_until(
    box: Sandbox, host: SandboxHost, wanted: Callable[[Serving], bool], timeout: float = 60
) -> Serving:
    """What the host serves, once `wanted` holds for it (polled: systemd may still be getting there,
    e.g. a slot "activating" before "active"); fails naming the last state after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        state = serving(box, host)
        if wanted(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"on {host.name}: not as expected within {timeout:g}s: {state}")
        time.sleep(0.2)


def idle_slot(state: Serving) -> str:
    return "green" if state.live == "blue" else "blue"


def versions(project: Project) -> list[str | None]:
    out = []
    for host in project.hosts:
        try:
            out.append(version(host.address))
        except OSError:
            out.append(None)
    return out


def assert_serves(box: Sandbox, project: Project, expected: str) -> None:
    """Every host serves `expected` through Nginx, is not half-switched, and kept the shared data."""
    assert versions(project) == [expected] * len(project.hosts)
    for host in project.hosts:
        state = serving(box, host)
        assert state.consistent(), f"{host.name} is half-switched: {state}"
        notes = box.run(host, ["cat", NOTES_FILE], timeout=20).stdout
        assert notes == NOTE + "\n", f"{host.name}: {NOTES_FILE} changed: {notes!r}"
        assert NOTE in get(host.address, "/")[1]


def lock_status_after_interruption(project: Project, timeout: float = 30) -> str:
    """`deploy lock status` once no host says "held" any more (the holder ends with its SSH session)."""
    deadline = time.monotonic() + timeout
    while True:
        result = project.deploy("lock", "status", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        if "held by" not in result.stdout or time.monotonic() > deadline:
            return result.stdout
        time.sleep(0.5)


def lock_status_until(project: Project, text: str, timeout: float = 30) -> str:
    """`deploy lock status` once it says `text` (polled for at most `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        result = project.deploy("lock", "status", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        if text in result.stdout:
            return result.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"lock status did not say {text!r} within {timeout:g}s:\n{result.stdout}")
        time.sleep(0.5)


def configure(
    project: Project, release: str = '["flask --app flaskr init-db"]', hooks: str = "{}", push: str = ""
) -> None:
    """pushkit's deploy.yaml with two Gunicorn workers (two hosts share two cores), committed;
    `push` adds keys inside push: (such as `installer: uv`)."""
    project.write_config(release=release, hooks=hooks, push=push)
    with (project.path / "deploy.yaml").open("a", encoding="utf-8") as handle:
        handle.write("gunicorn: {workers: 2}\n")
    project.commit("deploy.yaml for the fault tests")


def write_note(box: Sandbox, host: SandboxHost) -> None:
    script = f'printf "%s\\n" "$1" > "$2" && chown {APP}:{APP} "$2"'
    box.run(host, ["sh", "-c", script, "note", NOTE, NOTES_FILE], check=True)


_numbers = itertools.count(2)


def fresh() -> str:
    return f"v{next(_numbers)}"


def served(project: Project) -> str:
    (only,) = set(versions(project))
    assert only is not None
    return only


def recover(box: Sandbox, project: Project, expected: str, interrupted: bool | None = True) -> None:
    """What must hold after any fault, then the next push.

    `interrupted`: True when the push held the lock on every host and died, False when it ended
    cleanly, None when it depends on the host.
    """
    assert_serves(box, project, expected)
    status = lock_status_after_interruption(project)
    assert "held by" not in status, status
    if interrupted:
        for host in project.hosts:
            assert f"{host.address}: free; the last holder" in status, status
        assert status.count("was interrupted before it finished") == len(project.hosts), status
    new = fresh()
    project.set_version(new)
    result = project.deploy("push", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    if interrupted is not None:
        assert ("an earlier push did not finish" in result.stdout) == interrupted
    assert_serves(box, project, new)
