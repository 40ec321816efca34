"""The failure paths of a push and a rollback, run through the real rollout with a recording executor.

A switch that fails, a revert that fails, a clean-up that fails after the switch, the duplicate-release
guard and each precondition `require_setup` checks: what runs on which host, and what is reported.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import pytest

from deploy import cli  # noqa: F401  (first: it registers the commands of cli_push)
from deploy.cli.common import Printer, StopSignals
from deploy.plan import Command, Upload
from deploy.push.finish import RolloutRun, finish
from deploy.push.plan_push import push_plan
from deploy.push.plan_rollback import rollback_plan
from deploy.push.plan_setup import require_setup
from deploy.push.plan_switch import rollback_target
from deploy.push.plan_types import PlanError, PushPlan
from deploy.push.rollout import Outcome, Rollout, history_commands
from deploy.remote.executor import Recorder
from deploy.remote.facts import HostState, ReleaseInfo, parse_state
from tests.unit.push.test_plans import (
    CONFIG,
    LAYOUT,
    SECRETS,
    UNIT,
    build,
    lines,
    rendered_map,
    served_state,
    three_hosts,
)

pytestmark = pytest.mark.unit

HOSTS = ["web1", "web2", "web3"]


def rollout_run() -> RolloutRun:
    """The options of a push to production, all hosts at once, no failure allowed."""
    return RolloutRun("production", time.monotonic(), None, 0, SECRETS, StopSignals(lambda _: None))


def push_of_v2() -> PushPlan:
    hosts = three_hosts()
    return push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2"))


def steps_on(recorder: Recorder, step: str) -> list[str]:
    """The hosts `step` ran on, once each, in the order they logged it (threads: any order)."""
    return list(dict.fromkeys(h for h, s, _ in recorder.log if s == step))


def run(
    plan: PushPlan, fail: dict[tuple[str, str], str], **options: object
) -> tuple[Outcome, Recorder, list[str]]:
    said: list[str] = []
    recorder = Recorder(fail=fail)
    outcome = Rollout(recorder, plan, LAYOUT, say=said.append, **options).run()  # type: ignore[arg-type]
    return outcome, recorder, said


# --- a switch that fails --------------------------------------------------------------------------


def test_a_failed_switch_reverts_every_host_that_switched_and_the_one_that_half_switched() -> None:
    """All hosts in one batch: web1 and web3 switched, web2's switch failed part-way (its live.sock may
    already point at the new slot), so all three go back; nothing is finished or pruned."""
    outcome, recorder, said = run(
        push_of_v2(), {("web2", "switch"): "mv: cannot move: Read-only file system"}
    )
    assert not outcome.ok and not outcome.completed
    assert sorted(steps_on(recorder, "switch")) == HOSTS  # one batch: in parallel, in any order
    assert sorted(steps_on(recorder, "revert")) == HOSTS
    assert sorted(outcome.reverted) == HOSTS
    assert [(f.host, f.step) for f in outcome.failures] == [("web2", "switch")]
    assert "Read-only file system" in outcome.failures[0].reason
    assert steps_on(recorder, "finish") == [] and outcome.switched == []
    (going_back,) = said
    assert going_back.startswith("going back to the previous release on ")
    assert sorted(going_back.split(" on ", 1)[1].split(", ")) == HOSTS


def test_a_failed_switch_in_a_later_batch_reverts_the_earlier_batches_and_starts_no_more() -> None:
    outcome, recorder, _said = run(push_of_v2(), {("web2", "switch"): "switch broke"}, batch="1")
    assert steps_on(recorder, "switch") == ["web1", "web2"]
    assert sorted(steps_on(recorder, "revert")) == ["web1", "web2"]
    assert "web3" not in steps_on(recorder, "start")
    assert outcome.reverted == ["web1", "web2"] and not outcome.completed


def test_a_failed_switch_is_reported_by_host_and_every_host_is_said_to_serve_the_previous_release(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = push_of_v2()
    recorder = Recorder(fail={("web2", "switch"): "mv: cannot move 'live.sock': Read-only file system"})
    with pytest.raises(SystemExit) as exit_:
        finish(CONFIG, recorder, plan, Printer(False), rollout_run())  # type: ignore[arg-type]
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "web2: switch failed: switch (exit 1):\nmv: cannot move 'live.sock': Read-only file system" in err
    assert "nothing switched for good: web1, web2, web3 serve(s) the previous release" in err
    # The audit log of each host says it was rolled back, and why.
    for host in HOSTS:
        line = next(
            line for h, s, line in recorder.log if h == host and s == "run" and "history.jsonl" in line
        )
        assert '"result": "rolled back"' in line, line


# --- a revert that fails --------------------------------------------------------------------------


def test_a_failed_revert_is_reported_with_its_host_and_what_it_may_still_serve() -> None:
    plan = push_of_v2()
    previous, new = plan.hosts[0].previous, plan.release
    outcome, recorder, _said = run(
        plan, {("web2", "switch"): "switch broke", ("web2", "revert"): "GET /health timed out"}
    )
    assert sorted(steps_on(recorder, "revert")) == HOSTS  # the others still go back
    assert sorted(outcome.reverted) == ["web1", "web3"]
    revert = [f for f in outcome.failures if f.step == "revert"]
    assert [f.host for f in revert] == ["web2"]
    assert "GET /health timed out" in revert[0].reason
    assert f"could not go back to {previous}" in revert[0].reason
    assert f"may still serve {new}" in revert[0].reason


def test_a_failed_revert_is_never_reported_as_back_on_the_previous_release(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = push_of_v2()
    recorder = Recorder(
        fail={("web2", "switch"): "switch broke", ("web2", "revert"): "GET /health timed out"}
    )
    with pytest.raises(SystemExit):
        finish(CONFIG, recorder, plan, Printer(False), rollout_run())  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "web2: revert failed: could not go back to" in err
    assert re.search(r"nothing switched for good: web1, web3 serve\(s\) the previous release", err), err
    assert "web2: state unknown after the failed revert" in err and "deploy status" in err
    line = next(line for h, s, line in recorder.log if h == "web2" and s == "run" and "history.jsonl" in line)
    assert "failed" in line and "rolled back" not in line


# --- a clean-up that fails after the switch -------------------------------------------------------


def test_a_failed_cleanup_after_the_switch_is_said_and_the_new_release_stays() -> None:
    outcome, recorder, said = run(push_of_v2(), {("web2", "finish"): "rm: cannot remove: Permission denied"})
    assert outcome.completed and outcome.ok and sorted(outcome.switched) == HOSTS
    assert steps_on(recorder, "revert") == [] and steps_on(recorder, "abort") == []
    assert sorted(steps_on(recorder, "finish")) == HOSTS
    assert said == [
        "web2: cleanup after the switch failed (finish (exit 1):\nrm: cannot remove: Permission denied); "
        "the new release serves"
    ]
    entries = history_commands(LAYOUT, outcome, push_of_v2(), time="t", who="w", environment="e")
    assert all('"ok"' in entries[h].line().replace('\\"', '"') for h in HOSTS)


# --- guards before anything runs ------------------------------------------------------------------


def test_a_release_id_that_already_exists_on_a_host_is_refused() -> None:
    hosts = served_state()
    taken = build().release
    web1 = hosts["web1"]
    same = {"web1": replace(web1, releases=(*web1.releases, ReleaseInfo(taken, None)))}
    with pytest.raises(
        PlanError, match=f"^web1: a release named {taken} already exists; push again in a second$"
    ):
        push_plan(CONFIG, same, rendered_map(same), SECRETS, build())
    push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build())  # the same push without it: planned


@pytest.mark.parametrize(
    ("missing", "change"),
    [
        ("the user shop", {"user_exists": False}),
        ("the directory /srv/shop/.deploy", {"owners": {}}),
        (f"the unit {UNIT}", {"files": {}}),
        ("python3-venv", {"pip_wheel": None}),
    ],
)
def test_each_missing_setup_piece_is_named_and_push_and_rollback_are_refused(
    missing: str, change: dict[str, object]
) -> None:
    host: HostState = replace(served_state()["web1"], **change)  # type: ignore[arg-type]
    expected = f"^web1 is not set up \\({re.escape(missing)} missing\\): run 'deploy setup' first$"
    with pytest.raises(PlanError, match=expected):
        require_setup(CONFIG, host)
    states = {"web1": host}
    with pytest.raises(PlanError, match=expected):
        push_plan(CONFIG, states, rendered_map(states), SECRETS, build())
    with pytest.raises(PlanError, match=expected):
        rollback_plan(CONFIG, states, None)


def test_a_host_missing_every_setup_piece_names_them_all_and_the_environment() -> None:
    host = replace(served_state()["web1"], user_exists=False, owners={}, files={}, pip_wheel=None)
    with pytest.raises(PlanError) as error:
        require_setup(CONFIG.model_copy(update={"environment": "staging"}), host)
    assert str(error.value) == (
        f"web1 is not set up (the user shop, the directory /srv/shop/.deploy, the unit {UNIT}, "
        "python3-venv missing): run 'deploy setup -e staging' first"
    )
    require_setup(CONFIG, served_state()["web1"])  # a set-up host passes


# --- which release a rollback goes to ---------------------------------------------------------------

A, B, C, D = (f"2024010{i}-000000-{name}" for i, name in enumerate("abcd", 1))


def host_after(history: list[tuple[str, str | None]], current: str, slots: dict[str, str]) -> HostState:
    """web1 as the fact probe reads it: each (release, the release it replaced when it first served)."""
    releases = [
        {"id": release, "info": {"id": release}, "served": True, "before": before}
        for release, before in history
    ]
    links = {"current": f"/srv/shop/releases/{current}", "live": "/run/shop/blue.sock"}
    links.update({slot: f"/srv/shop/releases/{release}" for slot, release in slots.items()})
    probed = parse_state("web1", json.dumps({"releases": releases, "links": links, "user_exists": True}))
    set_up = served_state()["web1"]
    return replace(set_up, releases=probed.releases, links={**set_up.links, **probed.links})


def test_rollback_after_rollback_and_push_goes_to_what_served_before_not_to_what_was_rolled_away_from() -> (
    None
):
    """Push A, push B, roll back (to A), push C: C replaced A, so a rollback goes to A, never to B."""
    host = host_after([(A, None), (B, A), (C, A)], C, {"blue": C, "green": A})
    assert rollback_target(host) == A
    (web1,) = rollback_plan(CONFIG, {"web1": host}, None).hosts
    assert (web1.previous, web1.release) == (C, A)


def test_a_second_rollback_goes_further_back_never_forward_again() -> None:
    """Push A, B, C; roll back to B; roll back again: A (C was rolled away from)."""
    host = host_after([(A, None), (B, A), (C, B)], B, {"blue": B, "green": C})
    assert rollback_target(host) == A
    first = host_after([(A, None)], A, {"blue": A})
    with pytest.raises(PlanError, match=rf"^web1: no earlier release to roll back to \(releases: {A}\)$"):
        rollback_plan(CONFIG, {"web1": first}, None)


def test_hosts_without_a_recorded_predecessor_fall_back_to_the_newest_earlier_served_release() -> None:
    old = host_after([(A, None), (B, None), (C, None)], C, {"blue": C, "green": B})
    assert rollback_target(old) == B  # markers written before the predecessor was recorded
    pruned = host_after([(A, None), (C, B)], C, {"blue": C})  # B, which C replaced, was pruned
    assert rollback_target(pruned) == A


def test_the_switch_records_which_release_the_new_one_replaced() -> None:
    hosts = served_state()  # serving r2
    (web1,) = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2")).hosts
    marker = next(a for a in web1.switch[0].actions if isinstance(a, Upload))
    assert marker.remote_path == f"/srv/shop/releases/{web1.release}/.deploy/served"
    assert marker.content == b"20240103-000000-r2\n"
    (back,) = rollback_plan(CONFIG, hosts, None).hosts  # r1 served before: its record is kept
    assert not any(isinstance(a, Upload) for a in back.switch[0].actions)
    assert "touch /srv/shop/releases/20240102-000000-r1/.deploy/served" in [
        a.line() for a in back.switch[0].actions if isinstance(a, Command)
    ]


def test_pruning_keeps_the_release_the_new_one_replaced_and_not_what_the_idle_slot_held() -> None:
    """keep_releases 2; A, B, C served in turn (green still links B); a push of D keeps C and D only."""
    config = CONFIG.model_copy(update={"push": CONFIG.push.model_copy(update={"keep_releases": 2})})
    host = host_after([(A, None), (B, A), (C, B)], C, {"blue": C, "green": B})
    (web1,) = push_plan(
        config, {"web1": host}, rendered_map({"web1": host}), SECRETS, build(code=b"v2")
    ).hosts
    assert lines(web1.finish)[-1].endswith(f"rm /srv/shop/releases {A} {B}")
    # Push A, B, C, roll back to B (green still links C): a push of D keeps B, which it replaces
    # (the rollback target), and prunes C, the release rolled away from, though it is newer.
    host = host_after([(A, None), (B, A), (C, B)], B, {"blue": B, "green": C})
    (web1,) = push_plan(
        config, {"web1": host}, rendered_map({"web1": host}), SECRETS, build(code=b"v2")
    ).hosts
    assert lines(web1.finish)[-1].endswith(f"rm /srv/shop/releases {A} {C}")
