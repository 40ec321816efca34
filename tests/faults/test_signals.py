"""SIGTERM (a cancelled CI job) in the middle of a batched push to three sandbox hosts: handled like
Ctrl-C. The first batch has switched, the second is starting, the third has not begun: afterwards
every host serves the release it served before (each host's site is asked), the deploy lock is free,
the output names what each host serves, and the exit code is 143.

Three hosts of their own (not the shared fault sandbox of two): one switched, one starting, one not
started is the case that leaves hosts on different releases when the signal is not handled.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from deploy.sandbox.machines import Sandbox
from tests.faults.conftest import booted, live_app
from tests.faults.faultkit import (
    Push,
    assert_serves,
    fresh,
    is_step,
    recover,
    served,
    serving,
    versions,
)
from tests.hosts.pushkit import Project

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def three_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with booted(tmp_path_factory, "signals-sandbox", 3) as box:
        yield box


@pytest.fixture(scope="module")
def three_hosts(three_box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return live_app(three_box, tmp_path_factory, "signals-project")


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_mid_batched_push_leaves_every_host_on_one_release(
    three_box: Sandbox, three_hosts: Project, name: str
) -> None:
    project = three_hosts
    first, second, third = (h.address for h in project.hosts)
    before = served(project)
    (release,) = {serving(three_box, h).current for h in project.hosts}
    new = fresh()
    project.set_version(new)
    push = Push(project, "--batch", "1", pause_at="health", pause_host=second)
    push.wait_for(is_step("switch", "ok", first))
    push.wait_paused([second])
    # The first batch serves the new release now: the hosts are on two releases when the signal comes.
    assert [h == new for h in versions(project)] == [True, False, False]
    number = getattr(signal, name)
    push.signal(number)
    push.resume()  # the paused step is the step in flight: it ends before anything is undone
    code = push.finish()
    assert code == 128 + number, push.output
    result = push.result()
    assert result["interrupted"] == name and result["ok"] is False
    assert result["hosts"] == {first: release, second: release, third: release}, result
    message = str(result["message"])
    assert message.startswith(f"interrupted by {name}; each host now:"), message
    for host in (first, second, third):
        assert f"  {host}: serves {release} (as before the push)" in message, message
    assert f"every host serves one release: {release}" in message
    assert result["reverted"] == [first]
    assert_serves(three_box, project, before)
    # The lock was released cleanly: free, and no interrupted push left behind.
    recover(three_box, project, before, interrupted=False)
