"""SIGKILL of the local `deploy push` at every step; after each: the previous release serves, the shared
data is intact, `deploy lock status` names the interrupted push, and the next push succeeds.

The kill point is reached from the push's own events (--json), from the host's state (pip running,
the release command started), or by pausing_deploy.py, which stops the real command line at a step
boundary (or half-way through sending a step's script) until it is killed. Never by sleeping.
The tests run in file order on one sandbox; each starts from the release the previous one left.
"""

from __future__ import annotations

import time

import pytest

from deploy.sandbox import Sandbox
from tests.faults.faultkit import (
    Push,
    configure,
    fresh,
    is_step,
    recover,
    served,
    serving,
    wait_on_host,
)
from tests.hosts.pushkit import Project

pytestmark = pytest.mark.faults


def test_kill_with_half_the_upload_script_sent(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    live_project.set_version(fresh())
    push = Push(live_project, pause_at="half:upload")
    push.wait_paused([h.address for h in live_project.hosts])
    push.kill()
    recover(fault_box, live_project, before)


def test_kill_while_pip_installs_a_new_virtualenv(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    requirements = live_project.path / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# new virtualenv (faults)\n")
    live_project.set_version(fresh())
    push = Push(live_project)
    push.wait_for(is_step("upload", "start"))
    host = live_project.hosts[0]
    wait_on_host(fault_box, host, "pgrep -f 'pip [i]nstall' >/dev/null")
    push.kill()
    time.sleep(1)
    orphaned = fault_box.run(host, ["pgrep", "-af", "pip [i]nstall"]).stdout.strip()
    # Known bug (docs/faults.md): the step's script outlives the killed push and keeps installing
    # while the lock is already free; a push started meanwhile fails ("rm: ... Directory not empty").
    wait_on_host(fault_box, host, "! pgrep -f 'pip [i]nstall' >/dev/null", timeout=120)
    recover(fault_box, live_project, before)
    if orphaned:
        pytest.xfail(f"the killed push's pip kept running on the host after its lock was freed: {orphaned}")


def test_kill_while_the_release_command_runs(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    host = live_project.hosts[0]
    marker = "/tmp/faults-release-started"
    fault_box.run(host, ["rm", "-f", marker], check=True)
    release = f'["flask --app flaskr init-db", "touch {marker} && sleep 5 && echo migrated"]'
    configure(live_project, release=release)
    live_project.set_version(fresh())
    push = Push(live_project)
    wait_on_host(fault_box, host, f"test -e {marker}")
    push.kill()
    time.sleep(1)
    orphaned = fault_box.run(host, ["pgrep", "-af", "echo [m]igrated"]).stdout.strip()
    wait_on_host(fault_box, host, "! pgrep -f 'echo [m]igrated' >/dev/null", timeout=30)
    configure(live_project)
    recover(fault_box, live_project, before)
    if orphaned:
        pytest.xfail(f"the killed push's release command kept running after its lock was freed: {orphaned}")


def test_kill_after_start_before_the_health_gate(fault_box: Sandbox, live_project: Project) -> None:
    before = served(live_project)
    live_project.set_version(fresh())
    push = Push(live_project, pause_at="health")
    push.wait_paused([h.address for h in live_project.hosts])
    push.kill()
    for host in live_project.hosts:
        state = serving(fault_box, host)
        idle = "green" if state.live == "blue" else "blue"
        # The new release runs in the idle slot, but nothing routes to it.
        assert state.active[idle] == "active" and state.cwd[idle] != state.current, state
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
        idle = "green" if state.live == "blue" else "blue"
        assert state.active[idle] == "active", state
    recover(fault_box, live_project, new)
