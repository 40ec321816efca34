"""SIGKILL of the local `deploy push` at every step; after each: the previous release serves, the shared
data is intact, `deploy lock status` names the interrupted push, and the next push succeeds.

The kill point is reached from the push's own events (--json), from the host's state (pip running,
the release command started), or by pausing_deploy.py, which stops the real command line at a step
boundary (or half-way through sending a step's script) until it is killed. Never by sleeping.
The tests run in file order on one sandbox; each starts from the release the previous one left.
"""

from __future__ import annotations

import pytest

from deploy.sandbox.machines import Sandbox
from tests.faults.faultkit import (
    Push,
    assert_serves,
    configure,
    fresh,
    idle_slot,
    is_step,
    lock_status_after_interruption,
    lock_status_until,
    recover,
    served,
    serving,
    serving_until,
    wait_on_host,
)
from tests.hosts.pushkit import Project

pytestmark = pytest.mark.faults

#: pip of the step script, as pgrep and pkill find it on the host.
PIP = "pip [i]nstall"
#: uv's install (push.installer: uv), as pgrep and pkill find it on the host.
UV = "uv [p]ip install"


def test_kill_with_half_the_upload_script_sent(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    live_project.set_version(fresh())
    push = Push(live_project, pause_at="half:upload")
    push.wait_paused([h.address for h in live_project.hosts])
    push.kill()
    recover(fault_box, live_project, before)


def test_kill_while_pip_installs_a_new_virtualenv(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    # pip fills the venv here (uv is the default installer: its own test is below).
    configure(live_project, push="installer: pip")
    requirements = live_project.path / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# new virtualenv (faults)\n")
    new = fresh()
    live_project.set_version(new)
    push = Push(live_project)
    push.wait_for(is_step("upload", "start"))
    host = live_project.hosts[0]
    wait_on_host(fault_box, host, f"pgrep -f '{PIP}' >/dev/null")
    # pip is held still, so that what follows sees it running however fast this machine is.
    fault_box.run(host, ["pkill", "-STOP", "-f", PIP], check=True)
    try:
        push.kill()
        _pip_outlives_its_push(fault_box, live_project, before, new)
    finally:
        fault_box.run(host, ["pkill", "-CONT", "-f", PIP])


def _pip_outlives_its_push(
    fault_box: Sandbox, live_project: Project, before: str, new: str, installer: str = PIP
) -> None:
    host = live_project.hosts[0]
    # The killed push's pip still runs: the lock stays held and says why, naming the step.
    status = lock_status_until(live_project, "is still finishing")
    print(f"$ deploy lock status\n{status}")
    assert f"{host.address}: held by" in status, status
    assert "which was interrupted: its last step (upload) is still finishing on the host" in status, status
    # The next push waits for it (and says so) instead of racing it.
    second = Push(live_project)
    waiting = second.wait_for(lambda e: e.get("event") == "lock" and e.get("host") == host.address)
    assert waiting["status"] == "waiting" and '"draining": "upload"' in waiting["detail"], waiting
    assert not any('"event": "step"' in line for line in second.lines), second.output
    assert_serves(fault_box, live_project, before)
    fault_box.run(host, ["pkill", "-CONT", "-f", installer], check=True)
    assert second.finish() == 0, second.output
    assert "an earlier push did not finish" in second.output
    # The orphaned pip completed the virtualenv before the next push looked: it was reused, not raced.
    assert "venv reused" in second.output, second.output
    assert_serves(fault_box, live_project, new)
    assert "held by" not in lock_status_after_interruption(live_project)


def test_kill_while_the_release_command_runs(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    host = live_project.hosts[0]
    started, go = "/tmp/faults-release-started", "/tmp/faults-release-go"
    fault_box.run(host, ["rm", "-f", started, go], check=True)
    # A "migration" that runs until the test lets it end.
    migration = f"touch {started} && while [ ! -e {go} ]; do sleep 0.2; done && echo migrated"
    configure(live_project, release=f'["flask --app flaskr init-db", "{migration}"]')
    live_project.set_version(fresh())
    push = Push(live_project)
    wait_on_host(fault_box, host, f"test -e {started}")
    push.kill()
    try:
        _release_command_outlives_its_push(fault_box, live_project, before, go)
    finally:
        fault_box.run(host, ["touch", go], check=True)


def _release_command_outlives_its_push(
    fault_box: Sandbox, live_project: Project, before: str, go: str
) -> None:
    host = live_project.hosts[0]
    status = lock_status_until(live_project, "is still finishing")
    print(f"$ deploy lock status\n{status}")
    assert "its last step (release) is still finishing on the host" in status, status
    # systemd runs the command as a transient unit, outside the step's processes: even when the
    # waiting systemd-run client is gone too, the lock stays held while the unit runs.
    fault_box.run(host, ["pkill", "-KILL", "-f", "[s]ystemd-run .*flaskr-release-"], check=True)
    units = ["systemctl", "list-units", "--no-legend", "--plain", "--state=active", "flaskr-release-*"]
    assert "flaskr-release-" in fault_box.run(host, units, check=True).stdout
    assert "is still finishing" in lock_status_until(live_project, "is still finishing")
    configure(live_project)
    new = fresh()
    live_project.set_version(new)
    second = Push(live_project)
    waiting = second.wait_for(lambda e: e.get("event") == "lock" and e.get("host") == host.address)
    assert '"draining": "release"' in waiting["detail"], waiting
    assert not any('"event": "step"' in line for line in second.lines), second.output
    assert_serves(fault_box, live_project, before)
    fault_box.run(host, ["touch", go], check=True)
    assert second.finish() == 0, second.output
    assert "an earlier push did not finish" in second.output
    assert fault_box.run(host, units, check=True).stdout.strip() == ""
    assert_serves(fault_box, live_project, new)
    assert "held by" not in lock_status_after_interruption(live_project)


def test_kill_after_start_before_the_health_gate(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    live_project.set_version(fresh())
    push = Push(live_project, pause_at="health")
    push.wait_paused([h.address for h in live_project.hosts])
    push.kill()
    for host in live_project.hosts:
        # The start step queued the idle slot's start: systemd may still report it "activating" (the
        # app imports) when the push dies. It goes on to "active" by itself; nothing routes to it.
        state = serving_until(fault_box, host, lambda s: s.active[idle_slot(s)] == "active")
        assert state.cwd[idle_slot(state)] not in ("-", state.current), state
        assert state.live_release == state.current, state
    recover(fault_box, live_project, before)


def test_kill_during_the_health_gate(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    # The new release takes 4 s to boot: the gate is still waiting when the kill comes.
    live_project.set_version(fresh(), "    import time as _t\n    _t.sleep(4)\n")
    push = Push(live_project)
    push.wait_for(is_step("health", "start"))
    push.kill()
    recover(fault_box, live_project, before)


def test_kill_just_before_the_switch(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    live_project.set_version(fresh())
    push = Push(live_project, pause_at="switch")
    push.wait_paused([h.address for h in live_project.hosts])
    push.kill()
    recover(fault_box, live_project, before)


def test_kill_after_the_switch_before_the_old_slot_stops(fault_box: Sandbox, live_project: Project) -> None:
    new = fresh()
    live_project.set_version(new)
    push = Push(live_project, pause_at="finish")
    push.wait_paused([h.address for h in live_project.hosts])
    push.kill()
    # Switched everywhere: the new release serves; the old slot still runs (its stop never came).
    for host in live_project.hosts:
        state = serving(fault_box, host)
        assert state.active[idle_slot(state)] == "active", state  # it served until the switch
    recover(fault_box, live_project, new)


def test_kill_while_uv_installs_a_new_virtualenv(fault_box: Sandbox, live_project: Project) -> None:
    """As for pip, with push.installer: uv: the orphaned uv finishes the venv, the next push reuses it."""
    before = served(live_project)
    # Compiling at install time keeps uv running long enough to be caught (without it, uv fills the
    # example app's venv from its cache in well under the time a poll takes).
    configure(live_project, push="installer: uv, bytecode: install")
    requirements = live_project.path / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# new virtualenv (faults, uv)\n")
    new = fresh()
    live_project.set_version(new)
    host = live_project.hosts[0]
    # An empty uv cache (as on a host's first uv venv) keeps uv busy unpacking: with the cache the
    # earlier pushes filled (uv is the default installer), it is done in a fraction of a second.
    fault_box.run(host, ["rm", "-rf", "--", "/srv/flaskr/.uv-cache"], check=True)
    push = Push(live_project)
    push.wait_for(is_step("upload", "start"))
    try:
        # Caught and held still on the host itself, in one loop (a pgrep then a pkill over two SSH
        # round trips raced a fast uv: it was gone by the pkill).
        catch = f"timeout 15 sh -c 'until pkill -STOP -f \"{UV}\"; do sleep 0.01; done'"
        wait_on_host(fault_box, host, catch)
        push.kill()
        _pip_outlives_its_push(fault_box, live_project, before, new, UV)
    finally:
        fault_box.run(host, ["pkill", "-CONT", "-f", UV])
        configure(live_project)
