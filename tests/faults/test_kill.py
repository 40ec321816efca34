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


#: The app's environment as its live Gunicorn master started with it: is `line` in it?
_STARTED_WITH = (
    'pid=$(systemctl show -p MainPID --value "flaskr@$(basename "$(readlink /srv/flaskr/live.sock)" .sock)")'
    ' && tr "\\0" "\\n" < "/proc/$pid/environ" | grep -qxF -- "$1"'
)
#: What setup leaves on a host whose app it still has to start again (deploy/layout.py).
PENDING = "/srv/flaskr/.deploy/restart-pending"


def test_kill_of_setup_between_env_file_and_restart(fault_box: Sandbox, live_project: Project) -> None:
    """setup writes a new service URL into the env file, then dies before the app starts again with it:
    the next setup still starts it again (the marker setup wrote before the env file says it is owed),
    and the one after that has nothing to do."""
    before = served(live_project)
    url = "postgresql://flaskr:faults-0123456789abcdef@db.faults.test/flaskr"
    with (live_project.path / ".gitignore").open("a", encoding="utf-8") as handle:
        handle.write(".env\n")
    (live_project.path / ".env").write_text(f"DATABASE_URL={url}\n", encoding="utf-8")
    deploy_yaml = live_project.path / "deploy.yaml"
    deploy_yaml.write_text(deploy_yaml.read_text().replace("[SECRET_KEY]", "[SECRET_KEY, DATABASE_URL]"))
    live_project.commit("DATABASE_URL: a service URL the app reads at start")
    try:
        setup = Push(live_project, pause_at="start", command="setup")
        setup.wait_paused([h.address for h in live_project.hosts])
        setup.kill()
        for host in live_project.hosts:
            env_file = fault_box.run(host, ["cat", "/etc/flaskr/env"], check=True).stdout
            assert f'DATABASE_URL="{url}"' in env_file
            assert fault_box.run(host, ["test", "-e", PENDING]).returncode == 0
            started = fault_box.run(host, ["sh", "-c", _STARTED_WITH, "env", f"DATABASE_URL={url}"])
            assert started.returncode == 1, "the app started with the new URL before the kill"
        assert_serves(fault_box, live_project, before)
        again = live_project.deploy("setup", timeout=180)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "the service URLs in the app's env file changed on" in again.stdout, again.stdout
        for host in live_project.hosts:
            started = fault_box.run(host, ["sh", "-c", _STARTED_WITH, "env", f"DATABASE_URL={url}"])
            assert started.returncode == 0, f"{host.name}: the app still runs without the new URL"
            assert fault_box.run(host, ["test", "-e", PENDING]).returncode == 1
        assert_serves(fault_box, live_project, before)
        third = live_project.deploy("setup", timeout=180)
        assert third.returncode == 0 and "starting the app again" not in third.stdout, third.stdout
    finally:
        configure(live_project)
        (live_project.path / ".env").unlink(missing_ok=True)
        live_project.deploy("setup", check=True)
