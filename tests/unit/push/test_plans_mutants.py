"""What a push and a rollback decide per host, case by case: the rollback target, which releases pruning
keeps, and what `require_setup` and `refuse_hosts` say (benchmarks/mutation.py: pushplan)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from deploy.config.loader import load_text
from deploy.config.model import Config
from deploy.push.plan_setup import refuse_hosts, require_setup
from deploy.push.plan_switch import _keep, prune_list, rollback_target
from deploy.push.plan_types import PlanError
from deploy.remote.facts import HostState, ReleaseInfo
from tests.unit.push.test_plans import CONFIG, LAYOUT, UNIT, YAML

pytestmark = pytest.mark.unit

INFO: dict[str, object] = {"release": "x"}


def _host(
    current: str | None, *releases: ReleaseInfo, blue: str | None = None, green: str | None = None
) -> HostState:
    links: dict[str, str | None] = {"current": f"/srv/shop/releases/{current}"} if current else {}
    for slot, release in (("blue", blue), ("green", green)):
        if release:
            links[slot] = f"/srv/shop/releases/{release}/"
    return HostState("web1", links=links, releases=releases)


def _served(rid: str, before: str | None = None) -> ReleaseInfo:
    return ReleaseInfo(rid, INFO, served=True, before=before)


def test_the_target_is_what_the_current_release_replaced() -> None:
    state = _host("r3", _served("r1"), _served("r2", "r1"), _served("r3", "r1"))
    assert rollback_target(state) == "r1"


def test_a_replaced_release_that_is_incomplete_or_pruned_is_skipped_for_what_it_replaced() -> None:
    state = _host("r3", _served("r1"), ReleaseInfo("r2", None, served=True, before="r1"), _served("r3", "r2"))
    assert rollback_target(state) == "r1"
    pruned = _host("r3", _served("r1"), _served("r3", "r2"))
    assert rollback_target(pruned) == "r1"  # r2 is gone: the newest earlier served release


def test_without_a_record_the_newest_earlier_served_complete_release_is_the_target() -> None:
    state = _host(
        "r4",
        _served("r1"),
        ReleaseInfo("r2", INFO, served=False),
        ReleaseInfo("r3", None, served=True),
        _served("r4"),
        _served("r5"),
    )
    assert rollback_target(state) == "r1"


def test_no_earlier_release_means_no_target() -> None:
    assert rollback_target(_host("r1", _served("r1"))) is None
    assert rollback_target(_host(None)) is None
    # Before any push with a record, a host with served releases and no current one: the newest.
    assert rollback_target(_host(None, _served("r1"), _served("r2"))) == "r2"


def test_a_loop_in_the_records_ends() -> None:
    state = _host("r2", _served("r1", "r2"), _served("r2", "r1"))
    assert rollback_target(state) == "r1"
    loop = _host("r3", _served("r1", "r3"), _served("r3", "r3"))
    assert rollback_target(loop) == "r1"


def _config(keep: int) -> Config:
    return load_text(YAML.replace("  tls: false\n", f"  tls: false\npush: {{keep_releases: {keep}}}\n"))


def test_pruning_keeps_the_newest_n_counting_the_new_one() -> None:
    state = _host("r5", *(_served(f"r{i}", f"r{i - 1}" if i > 1 else None) for i in range(1, 6)))
    config = _config(3)
    assert _keep(config, state, "r6") == {"r6", "r5", "r4"}
    assert prune_list(config, state, "r6") == ["r1", "r2", "r3"]
    assert _keep(config, state, None) == {"r3", "r4", "r5"}
    assert prune_list(config, state, None) == ["r1", "r2"]


def test_pruning_with_the_smallest_keep_keeps_the_new_current_and_rollback_target() -> None:
    state = _host("r5", *(_served(f"r{i}", "r2" if i == 5 else None) for i in range(1, 6)))
    config = _config(2)
    assert _keep(config, state, "r6") == {"r6", "r5", "r2"}


def test_pruning_never_removes_what_a_slot_runs_or_an_unfinished_release_it_does_not_know() -> None:
    state = _host(
        "r5", *(_served(f"r{i}") for i in range(1, 6)), ReleaseInfo("r0", None), blue="r1", green="r5"
    )
    assert prune_list(_config(2), state, "r6") == ["r0", "r2", "r3"]


def _prepared(**changes: Any) -> HostState:
    base = HostState(
        "web1",
        user_exists=True,
        owners={LAYOUT.state: {"kind": "dir", "owner": "root"}},
        files={UNIT: "unit"},
        pip_wheel="pip-24.0-py3-none-any.whl",
    )
    return replace(base, **changes)


def test_a_prepared_host_passes() -> None:
    require_setup(CONFIG, _prepared())


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({"user_exists": False}, "the user shop"),
        ({"owners": {}}, f"the directory {LAYOUT.state}"),
        ({"files": {}}, f"the unit {UNIT}"),
        ({"pip_wheel": None}, "python3-venv"),
    ],
)
def test_each_missing_piece_is_named(changes: dict[str, Any], missing: str) -> None:
    with pytest.raises(PlanError) as raised:
        require_setup(CONFIG, _prepared(**changes))
    assert str(raised.value) == f"web1 is not set up ({missing} missing): run 'deploy setup' first"


def test_the_setup_hint_names_the_environment() -> None:
    config = CONFIG.model_copy(update={"environment": "staging"})
    with pytest.raises(PlanError) as raised:
        require_setup(config, _prepared(user_exists=False, pip_wheel=None))
    assert str(raised.value) == (
        "web1 is not set up (the user shop, python3-venv missing): run 'deploy setup -e staging' first"
    )


def test_the_login_user_may_not_run_the_app() -> None:
    with pytest.raises(PlanError, match=r"^web1: server.user 'shop' is the user deploy logs in as"):
        require_setup(CONFIG, _prepared(login_user="shop"))
    require_setup(CONFIG, _prepared(login_user="admin"))
    with pytest.raises(PlanError) as raised:
        admin = _prepared(login_user="shop")
        refuse_hosts(CONFIG, {"web1": admin, "web2": replace(admin, host="web2")})
    first, second = str(raised.value).split("\n")
    assert first.startswith("web1: server.user 'shop'") and second.startswith("web2: server.user 'shop'")


def test_a_base_dir_deploy_does_not_own_is_refused_per_host() -> None:
    base = LAYOUT.paths.base
    foreign = _prepared(owners={base: {"kind": "file"}})
    other = replace(foreign, host="web2")
    with pytest.raises(PlanError) as raised:
        refuse_hosts(CONFIG, {"web1": foreign, "web2": other})
    assert str(raised.value) == (
        f"server.base_dir: web1: {base} exists and is not a folder (file)\n"
        f"  web2: {base} exists and is not a folder (file)"
    )
    refuse_hosts(CONFIG, {"web1": _prepared()})


def test_the_switch_points_live_sock_then_current_at_the_new_release_then_fixes_boot() -> None:
    from deploy.plan import Command, Step
    from deploy.push.plan_switch import _switch_step
    from deploy.remote import commands as cmd

    marker = Command(("true", "served"), "mark served")
    step = _switch_step(LAYOUT, "web1", "green", "r2", marker)
    assert step == Step(
        "switch",
        "web1",
        (
            cmd.symlink(
                LAYOUT.paths.slot_socket("green"),
                LAYOUT.paths.upstream_socket,
                "new connections go to slot green (atomic rename of live.sock)",
            ),
            cmd.symlink(LAYOUT.release("r2"), LAYOUT.paths.current, "current -> r2"),
            marker,
            *cmd.start_at_boot(LAYOUT, "green"),
        ),
    )
    # The link targets themselves, not only their descriptions.
    assert LAYOUT.release("r2") in step.actions[1].argv  # type: ignore[union-attr]
    assert LAYOUT.paths.slot_socket("green") in step.actions[0].argv  # type: ignore[union-attr]
