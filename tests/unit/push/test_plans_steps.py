"""Whole steps of a rollback, a revert and a clean-up, compared as data (benchmarks/mutation.py: plans).

Each test writes down every action a host gets (command, arguments, description, sudo/check flags,
upload content, mode and owner) in order, and compares the plan with it as a whole, so that an
argument changed anywhere in `deploy.push.plans` makes it fail. The commands themselves are built by
`deploy.remote.commands` (tested apart, and run on sandbox hosts by tests/hosts).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from deploy.config.model import Config
from deploy.plan import Command, Step, Upload
from deploy.push.plans import (
    HostPush,
    PlanError,
    _finish_steps,
    _revert_steps,
    host_rollback,
    rollback_plan,
)
from deploy.remote import commands as cmd
from deploy.remote.facts import HostState, ReleaseInfo
from tests.unit.push.test_plans import CONFIG, LAYOUT, served_state

pytestmark = pytest.mark.unit

R0, R1, R2 = "20240101-000000-r0", "20240102-000000-r1", "20240103-000000-r2"
HEALTH = (CONFIG.primary_domain, CONFIG.app.health, CONFIG.push.health_timeout)


def _web1(**changes: object) -> HostState:
    return replace(served_state()["web1"], **changes)  # type: ignore[arg-type]


def _start(slot: str, release: str, pythonpath: str | None = None) -> tuple[Step, ...]:
    env = f"# Written by deploy when this slot starts a release.\nDEPLOY_RELEASE={release}\n"
    env += "DEPLOY_ENVIRONMENT=default\n"
    if pythonpath:
        env += f"PYTHONPATH={pythonpath}\n"
    return (
        Step(
            "start",
            "web1",
            (
                cmd.cancel_drain(LAYOUT, slot),
                cmd.symlink(
                    f"/srv/shop/releases/{release}",
                    f"/srv/shop/slots/{slot}",
                    f"slot {slot} -> release {release}",
                ),
                Upload(
                    f"/srv/shop/slots/{slot}.env",
                    env.encode(),
                    0o644,
                    "root",
                    "root",
                    description=f"DEPLOY_RELEASE={release} for slot {slot}",
                ),
                cmd.systemctl(
                    "restart",
                    "--no-block",
                    f"shop@{slot}.service",
                    description=f"start shop@{slot}.service (release {release})",
                ),
            ),
        ),
        Step("health", "web1", (cmd.health_probe(LAYOUT, slot, *HEALTH, release),)),
    )


def _switch(slot: str, release: str, marker: Command | Upload) -> Step:
    return Step(
        "switch",
        "web1",
        (
            cmd.symlink(
                f"/run/shop/{slot}.sock",
                LAYOUT.paths.upstream_socket,
                f"new connections go to slot {slot} (atomic rename of live.sock)",
            ),
            cmd.symlink(f"/srv/shop/releases/{release}", "/srv/shop/current", f"current -> {release}"),
            marker,
            *cmd.start_at_boot(LAYOUT, slot),
        ),
    )


def _revert(old: str, new: str, previous: str) -> tuple[Step, ...]:
    return (
        Step(
            "revert",
            "web1",
            (
                cmd.cancel_drain(LAYOUT, old),
                cmd.systemctl(
                    "start", f"shop@{old}.service", description=f"make sure shop@{old}.service runs"
                ),
                cmd.health_probe(LAYOUT, old, *HEALTH, previous),
                cmd.symlink(
                    f"/run/shop/{old}.sock",
                    LAYOUT.paths.upstream_socket,
                    f"new connections go back to slot {old}",
                ),
                cmd.symlink(f"/srv/shop/releases/{previous}", "/srv/shop/current", f"current -> {previous}"),
                *cmd.start_at_boot(LAYOUT, old),
                cmd.stop_after_drain(LAYOUT, new, 1.0),
            ),
        ),
    )


def _abort(slot: str) -> tuple[Step, ...]:
    return (Step("abort", "web1", (cmd.systemctl("stop", f"shop@{slot}.service", check=False),)),)


def test_the_paths_these_tests_write_down_are_the_layouts() -> None:
    assert LAYOUT.release(R1) == f"/srv/shop/releases/{R1}"
    assert (LAYOUT.slot("green"), LAYOUT.slot_env("green")) == (
        "/srv/shop/slots/green",
        "/srv/shop/slots/green.env",
    )
    assert (LAYOUT.paths.current, LAYOUT.paths.slot_socket("blue")) == (
        "/srv/shop/current",
        "/run/shop/blue.sock",
    )
    assert LAYOUT.unit("green") == "shop@green.service"
    stop = Command(
        ("systemctl", "stop", "shop@green.service"), "systemctl stop shop@green.service", True, False
    )
    assert cmd.systemctl("stop", "shop@green.service", check=False) == stop


def test_a_rollback_to_the_release_that_served_before_is_a_whole_blue_green_switch() -> None:
    """web1 serves r2 from blue; r1 (a src/ layout) served before it; r0 never finished."""
    releases = (
        ReleaseInfo(R0, None),
        ReleaseInfo(R1, {"id": "r1", "python_root": "src"}, True),
        ReleaseInfo(R2, {"id": "r2"}, True, before=R1),
    )
    host = _web1(releases=releases)
    assert host_rollback(CONFIG, host, None) == HostPush(
        host="web1",
        release=R1,
        previous=R2,
        old_slot="blue",
        new_slot="green",
        start=_start("green", R1, f"/srv/shop/releases/{R1}/src"),
        # r1 served before: its record of what it replaced then is kept (touch, not rewritten).
        switch=(
            _switch(
                "green",
                R1,
                Command(("touch", f"/srv/shop/releases/{R1}/.deploy/served"), "mark as served", sudo=True),
            ),
        ),
        # r0 is unfinished and neither current, target nor in a slot: the clean-up removes it.
        finish=(
            Step("finish", "web1", (cmd.stop_after_drain(LAYOUT, "blue", 1.0), cmd.prune(LAYOUT, [R0]))),
        ),
        abort=_abort("green"),
        revert=_revert("blue", "green", R2),
        diagnose=cmd.slot_log(LAYOUT, "green"),
    )


def test_a_rollback_to_a_named_release_that_never_served_records_what_it_replaces() -> None:
    """Named explicitly, a release that never served (it failed its health gate on another push)
    gets a served marker naming the current release: a rollback from it comes back here."""
    releases = (ReleaseInfo(R1, {"id": "r1", "python_root": 7}, False), ReleaseInfo(R2, {"id": "r2"}, True))
    host = _web1(releases=releases, links={**_web1().links, "live": "/run/shop/green.sock", "green": None})
    got = host_rollback(CONFIG, host, R1)
    marker = Upload(
        f"/srv/shop/releases/{R1}/.deploy/served",
        f"{R2}\n".encode(),
        0o644,
        "root",
        "root",
        description=f"mark the release as served (after {R2})",
    )
    assert got == HostPush(
        host="web1",
        release=R1,
        previous=R2,
        old_slot="green",
        new_slot="blue",
        start=_start("blue", R1),  # a python_root that is not a path is no PYTHONPATH
        switch=(_switch("blue", R1, marker),),
        finish=(Step("finish", "web1", (cmd.stop_after_drain(LAYOUT, "green", 1.0),)),),
        abort=_abort("blue"),
        revert=_revert("green", "blue", R2),
        diagnose=cmd.slot_log(LAYOUT, "blue"),
    )
    plan = rollback_plan(CONFIG, {"web1": host}, R1)
    assert (plan.action, plan.release, plan.hosts, plan.release_steps) == ("rollback", R1, (got,), ())


def test_a_named_release_that_was_never_current_and_has_no_info_gets_no_pythonpath() -> None:
    host = _web1(releases=(ReleaseInfo(R1, {}, True), ReleaseInfo(R2, {"id": "r2"}, True)))
    assert host_rollback(CONFIG, host, R1).start == _start("green", R1)


def test_a_rollback_to_the_current_release_changes_nothing() -> None:
    host = _web1()
    assert host_rollback(CONFIG, host, R2) == HostPush("web1", R2, R2, "blue", "blue", unchanged=True)
    assert rollback_plan(CONFIG, {"web1": host}, R2).changed_hosts == ()
    # Nothing serves yet (no live slot): the unchanged host names blue, the first slot.
    idle = _web1(links={"current": f"/srv/shop/releases/{R2}"})
    assert host_rollback(CONFIG, idle, R2) == HostPush("web1", R2, R2, None, "blue", unchanged=True)


def test_no_earlier_release_is_refused_with_the_releases_the_host_has() -> None:
    only = _web1(releases=(ReleaseInfo(R0, None), ReleaseInfo(R2, {"id": "r2"}, True)))
    with pytest.raises(PlanError) as raised:
        host_rollback(CONFIG, only, None)
    assert str(raised.value) == f"web1: no earlier release to roll back to (releases: {R2})"
    empty = _web1(releases=(), links={})
    with pytest.raises(PlanError) as raised:
        rollback_plan(CONFIG, {"web1": empty}, None)
    assert str(raised.value) == "web1: no earlier release to roll back to (releases: none)"


def test_a_named_release_that_is_missing_or_unfinished_is_refused() -> None:
    host = _web1()
    for name in ("nope", R0):
        with pytest.raises(PlanError) as raised:
            host_rollback(CONFIG, host, name)
        assert str(raised.value) == f"web1: no complete release {name!r}; releases there: {R1}, {R2}"
    with pytest.raises(PlanError) as raised:
        host_rollback(CONFIG, _web1(releases=()), "nope")
    assert str(raised.value) == "web1: no complete release 'nope'; releases there: none"


def test_a_rollback_refuses_a_host_that_was_not_set_up() -> None:
    with pytest.raises(PlanError, match=r"^web1 is not set up \(the user shop missing\)"):
        host_rollback(CONFIG, _web1(user_exists=False), None)


def test_a_rollback_plan_of_no_host_names_no_release() -> None:
    assert rollback_plan(CONFIG, {}, None).release == ""
    assert rollback_plan(CONFIG, {}, R1).release == R1


def test_a_rollback_plan_names_the_first_hosts_target() -> None:
    plan = rollback_plan(CONFIG, {"web1": _web1(), "web2": replace(_web1(), host="web2")}, None)
    assert plan.release == R1 and [h.host for h in plan.hosts] == ["web1", "web2"]


# --- revert ---------------------------------------------------------------------------------------


def test_a_revert_with_an_earlier_release_starts_and_probes_the_old_slot_then_switches_back() -> None:
    assert _revert_steps(CONFIG, LAYOUT, "web1", "blue", R1, "green") == _revert("blue", "green", R1)


@pytest.mark.parametrize(("old_slot", "previous"), [(None, None), (None, R1), ("blue", None)])
def test_a_revert_of_a_first_release_stops_serving_it(old_slot: str | None, previous: str | None) -> None:
    assert _revert_steps(CONFIG, LAYOUT, "web1", old_slot, previous, "green") == (
        Step(
            "revert",
            "web1",
            (
                cmd.remove_tree(LAYOUT.paths.upstream_socket, "remove live.sock (no earlier release)"),
                cmd.remove_tree("/srv/shop/current", "remove current (no earlier release)"),
                cmd.systemctl("stop", "shop@green.service", check=False),
                cmd.systemctl("disable", "--quiet", "--no-reload", "shop@green.service", check=False),
            ),
        ),
    )


# --- clean-up -------------------------------------------------------------------------------------


def _config(keep: int) -> Config:
    return CONFIG.model_copy(update={"push": CONFIG.push.model_copy(update={"keep_releases": keep})})


def test_the_clean_up_stops_the_old_slot_after_the_drain_then_prunes() -> None:
    releases = tuple(ReleaseInfo(f"2024010{i}-000000-r{i}", {"id": i}, True) for i in range(1, 6))
    host = _web1(releases=releases, links={"current": "/srv/shop/releases/20240105-000000-r5"})
    steps = _finish_steps(_config(2), LAYOUT, host, "blue", None)
    assert steps == (
        Step(
            "finish",
            "web1",
            (
                cmd.stop_after_drain(LAYOUT, "blue", 1.0),
                cmd.prune(LAYOUT, ["20240101-000000-r1", "20240102-000000-r2", "20240103-000000-r3"]),
            ),
        ),
    )
    # The new release counts among the two kept (r6, r5); r4 stays as the rollback target.
    assert _finish_steps(_config(2), LAYOUT, host, None, "20240106-000000-r6") == (
        Step(
            "finish",
            "web1",
            (cmd.prune(LAYOUT, [f"2024010{i}-000000-r{i}" for i in range(1, 4)]),),
        ),
    )


def test_nothing_to_stop_and_nothing_to_prune_is_no_clean_up_step() -> None:
    host = _web1(releases=(ReleaseInfo(R1, {"id": "r1"}, True),), links={"current": LAYOUT.release(R1)})
    assert _finish_steps(CONFIG, LAYOUT, host, None, None) == ()
    assert _finish_steps(CONFIG, LAYOUT, host, "green", None) == (
        Step("finish", "web1", (cmd.stop_after_drain(LAYOUT, "green", 1.0),)),
    )
