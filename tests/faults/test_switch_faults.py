"""A switch that fails for real on one host, a revert that fails too, and a clean-up after the switch.

The push is held at the start of its switch step on every host (pausing_deploy.py), one host is
broken there, and the push goes on:
- the folder `systemctl enable` writes (multi-user.target.wants) is made read-only, so that host's
  switch fails after live.sock and `current` already point at the new release: every host must go
  back, and serve the previous release;
- the same, with the old slot's processes stopped (SIGSTOP), so that host's revert fails its health
  gate as well: the report must name the host and say it may still serve the new release, and the
  other host must be back.
- a clean-up after the switch that cannot remove an old release: the push succeeds and says so.
Each test undoes its fault; every host serves one release at its end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from deploy.sandbox.machines import Sandbox, SandboxHost
from tests.faults.faultkit import Push, assert_serves, fresh, recover, served, serving, versions
from tests.hosts.pushkit import Project

pytestmark = pytest.mark.faults

#: Where `systemctl enable` links the app's units (WantedBy=multi-user.target).
WANTS = "/etc/systemd/system/multi-user.target.wants"


@contextmanager
def read_only(box: Sandbox, host: SandboxHost, path: str) -> Iterator[None]:
    """`path` read-only on `host` (a read-only bind mount over itself) until the block ends."""
    box.run(
        host, ["sh", "-c", 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"', "ro", path], check=True
    )
    try:
        yield
    finally:
        box.run(host, ["umount", path], check=True)


def paused_at_switch(project: Project) -> Push:
    push = Push(project, pause_at="switch")
    push.wait_paused([h.address for h in project.hosts])
    return push


def result(push: Push) -> dict[str, Any]:
    events = [json.loads(line) for line in push.lines if line.startswith("{")]
    (last,) = [e for e in events if e.get("event") == "result"]
    return dict(last)


def test_a_switch_that_fails_on_one_host_puts_every_host_back(
    fault_box: Sandbox, live_project: Project
) -> None:
    before = served(live_project)
    broken = live_project.hosts[1]
    live_project.set_version(fresh())
    push = paused_at_switch(live_project)
    with read_only(fault_box, broken, WANTS):
        push.resume()
        code = push.finish()
    assert code == 1, push.output
    outcome = result(push)
    assert [(f["host"], f["step"]) for f in outcome["failures"]] == [(broken.address, "switch")]
    assert "Read-only file system" in outcome["failures"][0]["reason"], outcome
    assert sorted(outcome["reverted"]) == sorted(h.address for h in live_project.hosts)
    assert f"{broken.address}: switch failed" in outcome["message"]
    assert "Traceback" not in push.output
    assert_serves(fault_box, live_project, before)
    recover(fault_box, live_project, before, interrupted=False)


def test_a_revert_that_fails_names_the_host_and_what_it_may_still_serve(
    fault_box: Sandbox, live_project: Project
) -> None:
    before = served(live_project)
    ok, broken = live_project.hosts
    new = fresh()
    live_project.set_version(new)
    push = paused_at_switch(live_project)
    state = serving(fault_box, broken)
    old_slot, previous = state.live, state.current
    unit = f"flaskr@{old_slot}.service"
    with read_only(fault_box, broken, WANTS):
        # The old slot stays "active" but answers nothing: the revert's health gate times out.
        fault_box.run(broken, ["systemctl", "kill", "--signal=SIGSTOP", unit], check=True)
        try:
            push.resume()
            code = push.finish()
        finally:
            fault_box.run(broken, ["systemctl", "kill", "--signal=SIGCONT", unit], check=True)
    assert code == 1, push.output
    outcome = result(push)
    failures = {(f["host"], f["step"]): f["reason"] for f in outcome["failures"]}
    assert set(failures) == {(broken.address, "switch"), (broken.address, "revert")}, outcome
    revert = failures[(broken.address, "revert")]
    assert revert.startswith(f"could not go back to {previous}; it may still serve {outcome['release']}: "), (
        revert
    )
    assert outcome["reverted"] == [ok.address]
    message = outcome["message"]
    assert f"nothing switched for good: {ok.address} serve(s) the previous release" in message, message
    assert f"{broken.address}: state unknown after the failed revert" in message, message
    # What it said: the host whose revert failed serves the new release; the other is back.
    assert versions(live_project) == [before, new]
    # The next push puts every host on one release again.
    newer = fresh()
    live_project.set_version(newer)
    again = live_project.deploy("push", timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_serves(fault_box, live_project, newer)


def test_a_cleanup_that_fails_after_the_switch_is_said_and_the_new_release_stays(
    fault_box: Sandbox, live_project: Project
) -> None:
    """An unfinished release folder (no release.json: pruning removes it) that cannot be removed: a
    read-only mount point. Every host switched, so the push succeeds, and says what was left."""
    broken = live_project.hosts[1]
    stale = "/srv/flaskr/releases/20200101-000000-unfinished"
    fault_box.run(broken, ["mkdir", "-p", stale], check=True)
    try:
        new = fresh()
        live_project.set_version(new)
        with read_only(fault_box, broken, stale):
            result = live_project.deploy("push", timeout=180)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        said = (
            f"{broken.address}: cleanup after the switch failed (remove old releases: {stale.rsplit('/')[-1]}"
        )
        assert said in out and "Device or resource busy); the new release serves" in out, out
        assert f"is live on {', '.join(h.address for h in live_project.hosts)}" in out, out
        assert_serves(fault_box, live_project, new)
        assert fault_box.run(broken, ["test", "-d", stale]).returncode == 0
    finally:
        fault_box.run(broken, ["rm", "-rf", stale], check=True)
