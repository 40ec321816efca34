"""The rollout's decisions over hosts, with plans made of one named step per phase, so each test says
exactly what ran where, what was said and what was reported (benchmarks/mutation.py: rollout)."""

from __future__ import annotations

import json
import signal
from dataclasses import replace

import pytest

from deploy.plan import Command, Step
from deploy.push.plan_types import HostPush, PushPlan
from deploy.push.rollout import (
    BatchError,
    Failure,
    Interrupted,
    Outcome,
    Rollout,
    _first_line,
    _reason,
    batches,
    history_commands,
    hook_environment,
    interruption,
    remote_hook,
)
from deploy.remote import commands as cmd
from deploy.remote.executor import Recorder, StepResult
from tests.unit.push.test_plans import LAYOUT

pytestmark = pytest.mark.unit

HOSTS = ["web1", "web2", "web3"]
LOG = "\n".join(f"log line {i}" for i in range(1, 21))


def _step(name: str, host: str) -> tuple[Step, ...]:
    return (Step(name, host, (Command(("true", name), name),)),)


def _push(host: str, previous: str | None = "r1", unchanged: bool = False) -> HostPush:
    return HostPush(
        host, "r2", previous, "blue", "green", unchanged,
        prepare=_step("prepare", host), start=_step("start", host), switch=_step("switch", host),
        finish=_step("finish", host), abort=_step("abort", host), revert=_step("revert", host),
        diagnose=Command(("journalctl", host), "the new slot's log"),
    )


def _plan(*, release_steps: bool = False, previous: str | None = "r1") -> PushPlan:
    release = _step("release", "web1") if release_steps else ()
    return PushPlan("push", "r2", tuple(_push(h, previous) for h in HOSTS), release)


class Hosts(Recorder):
    """A Recorder whose diagnose command prints a log, and that can raise in chosen steps."""

    def __init__(self, fail: dict[tuple[str, str], str] | None = None) -> None:
        super().__init__(fail=fail)
        self.raises: dict[tuple[str, str], BaseException] = {}
        self.timeouts: list[float | None] = []
        self.log_error: Exception | None = None

    def run(self, host: str, command: Command, timeout: float | None = None) -> tuple[int, str]:
        super().run(host, command, timeout)
        self.timeouts.append(timeout)
        if self.log_error is not None:
            raise self.log_error
        return 0, LOG + "\n"

    def run_step(self, host: str, step: Step) -> StepResult:
        error = self.raises.get((host, step.name))
        if error is not None:
            raise error
        return super().run_step(host, step)


def _run(executor: Hosts, plan: PushPlan | None = None, **options: object) -> tuple[Outcome, list[str]]:
    said: list[str] = []
    options.setdefault("parallel", False)
    outcome = Rollout(executor, plan or _plan(), LAYOUT, say=said.append, **options).run()  # type: ignore[arg-type]
    return outcome, said


def _ran(executor: Recorder, step: str) -> list[str]:
    return [h for h, s, _ in executor.log if s == step]


def test_a_failed_start_reads_that_host_s_log_once_with_a_time_limit() -> None:
    executor = Hosts({("web2", "start"): "exit 3"})
    outcome, _ = _run(executor)
    (failure,) = outcome.failures
    assert failure == Failure("web2", "start", "start (exit 1):\nexit 3", "\n".join(LOG.splitlines()[-15:]))
    assert [h for h, s, _ in executor.log if s == "run"] == ["web2"]
    assert executor.timeouts == [20]
    # web2 right after its failure, then the hosts that started and wait.
    assert _ran(executor, "abort") == ["web2", "web1", "web3"] and _ran(executor, "switch") == []


def test_a_failed_switch_reads_no_log() -> None:
    executor = Hosts({("web2", "switch"): "mv failed"})
    outcome, _ = _run(executor)
    assert [(f.host, f.step, f.log) for f in outcome.failures] == [("web2", "switch", "")]
    assert [h for h, s, _ in executor.log if s == "run"] == []


def test_a_log_that_cannot_be_read_says_why_in_place_of_the_log() -> None:
    executor = Hosts({("web1", "start"): "boom"})
    executor.log_error = OSError("connection reset")
    outcome, _ = _run(executor)
    assert outcome.failures[0].log == "(could not read the log: connection reset)"


def test_a_failed_release_command_stops_before_any_host_starts_and_keeps_its_output() -> None:
    executor = Hosts({("web1", "release"): "relation does not exist"})
    outcome, _ = _run(executor, _plan(release_steps=True))
    assert outcome.failures == [
        Failure("web1", "release", "release (exit 1):\nrelation does not exist", "relation does not exist")
    ]
    assert _ran(executor, "start") == [] and not outcome.completed


def test_a_release_command_whose_connection_drops_is_reported_as_such_without_a_log() -> None:
    executor = Hosts()
    executor.raises[("web1", "release")] = ConnectionError("ssh: connection closed")
    outcome, _ = _run(executor, _plan(release_steps=True))
    assert outcome.failures == [
        Failure("web1", "release", "the connection (exit 255):\nssh: connection closed", "")
    ]
    assert _ran(executor, "start") == []


def test_a_release_command_that_succeeds_lets_every_host_start() -> None:
    executor = Hosts()
    outcome, _ = _run(executor, _plan(release_steps=True))
    assert outcome.ok and _ran(executor, "release") == ["web1"] and _ran(executor, "start") == HOSTS


def test_a_host_lost_in_a_phase_is_a_connection_failure() -> None:
    executor = Hosts()
    executor.raises[("web3", "prepare")] = ConnectionError("no route to host")
    outcome, _ = _run(executor)
    assert outcome.failures == [Failure("web3", "connection", "no route to host")]
    assert _ran(executor, "start") == []


def test_failures_within_the_threshold_let_the_others_switch() -> None:
    executor = Hosts({("web2", "start"): "boom"})
    outcome, said = _run(executor, max_failures=1)
    assert outcome.completed and not outcome.ok
    assert outcome.switched == ["web1", "web3"]
    assert [f.host for f in outcome.failures] == ["web2"]
    assert _ran(executor, "finish") == ["web1", "web3"] and _ran(executor, "revert") == []
    assert said == []


def test_the_default_threshold_is_no_failure() -> None:
    executor = Hosts({("web3", "start"): "boom"})
    said: list[str] = []
    outcome = Rollout(executor, _plan(), LAYOUT, say=said.append).run()
    assert not outcome.completed and outcome.switched == []
    assert sorted(_ran(executor, "abort")) == HOSTS  # web3 after its failure, web1 and web2 waiting


def test_a_rollout_in_batches_says_nothing_when_all_goes_well() -> None:
    executor = Hosts()
    outcome = Rollout(executor, _plan(), LAYOUT, batch="1").run()
    assert outcome.ok and outcome.switched == HOSTS
    steps = [(h, s) for h, s, _ in executor.log if s in ("start", "switch")]
    assert steps == [(h, s) for h in HOSTS for s in ("start", "switch")]


def test_a_plan_with_nothing_to_change_completes_without_touching_a_host() -> None:
    plan = PushPlan("push", "r2", tuple(_push(h, unchanged=True) for h in HOSTS))
    executor = Hosts()
    outcome, said = _run(executor, plan)
    assert outcome.ok and outcome.unchanged == HOSTS and executor.log == [] and said == []


def test_a_failed_revert_of_a_host_without_an_earlier_release_says_it_may_still_serve_the_new_one() -> None:
    executor = Hosts({("web3", "switch"): "mv failed", ("web1", "revert"): "no"})
    outcome, said = _run(executor, _plan(previous=None))
    assert said == ["going back to the previous release on web1, web2, web3"]
    assert outcome.reverted == ["web2", "web3"]
    assert outcome.failures[-1] == Failure(
        "web1",
        "revert",
        "could not stop serving it (no earlier release); it may still serve r2: revert (exit 1):\nno",
    )


def test_a_failed_revert_names_the_release_it_could_not_go_back_to() -> None:
    executor = Hosts({("web3", "switch"): "mv failed", ("web2", "revert"): "no"})
    outcome, _ = _run(executor)
    reason = outcome.failures[-1].reason
    assert reason == "could not go back to r1; it may still serve r2: revert (exit 1):\nno"


def test_a_failed_cleanup_after_the_switch_is_said_per_host() -> None:
    executor = Hosts({("web2", "finish"): "rm failed"})
    outcome, said = _run(executor)
    assert outcome.ok
    assert said == [
        "web2: cleanup after the switch failed (finish (exit 1):\nrm failed); the new release serves"
    ]


def test_a_signal_during_a_switch_puts_every_host_back_and_says_so() -> None:
    executor = Hosts()
    executor.raises[("web2", "switch")] = Interrupted(signal.SIGTERM)
    with pytest.raises(Interrupted):
        _run(executor)
    said: list[str] = []
    executor = Hosts()
    executor.raises[("web2", "switch")] = Interrupted(signal.SIGTERM)
    rollout = Rollout(executor, _plan(), LAYOUT, say=said.append, parallel=False)
    with pytest.raises(Interrupted):
        rollout.run()
    assert said == [
        "interrupted by SIGTERM: putting every host back on the release it served before",
        "going back to the previous release on web1, web2, web3",
    ]
    assert rollout.outcome.failures == [Failure("(all)", "interrupted", "interrupted by SIGTERM")]
    assert _ran(executor, "revert") == HOSTS


def test_a_signal_after_every_host_switched_keeps_the_new_release_and_says_so() -> None:
    said: list[str] = []
    executor = Hosts()
    executor.raises[("web1", "finish")] = KeyboardInterrupt()
    rollout = Rollout(executor, _plan(), LAYOUT, say=said.append, parallel=False)
    with pytest.raises(KeyboardInterrupt):
        rollout.run()
    assert said == ["interrupted by Ctrl-C: every host already switched to r2; it stays"]
    assert rollout.outcome.failures == [] and _ran(executor, "revert") == []


def test_an_interruption_knows_its_signal_name_and_exit_code() -> None:
    stop = Interrupted(signal.SIGHUP)
    assert (stop.signum, stop.name, stop.exit_code) == (1, "SIGHUP", 129)
    assert stop.reason == "interrupted by SIGHUP"
    ctrl_c = interruption(KeyboardInterrupt())
    assert (ctrl_c.signum, ctrl_c.exit_code, ctrl_c.reason) == (2, 130, "interrupted by Ctrl-C")
    assert interruption(stop) is stop


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (" 2 ", [["a", "b"], ["c", "d"], ["e"]]),
        ("100%", [["a", "b", "c", "d", "e"]]),
        ("40%", [["a", "b"], ["c", "d"], ["e"]]),
        ("39%", [["a"], ["b"], ["c"], ["d"], ["e"]]),
        ("5", [["a", "b", "c", "d", "e"]]),
        ("0.5%", [["a"], ["b"], ["c"], ["d"], ["e"]]),
    ],
)
def test_batches_by_count_or_share(batch: str, expected: list[list[str]]) -> None:
    assert batches(["a", "b", "c", "d", "e"], batch) == expected
    assert batches([], batch) == []


@pytest.mark.parametrize("batch", ["0%", "101%", "-1", "x", "2.5", "%"])
def test_a_batch_that_is_not_a_count_or_share_is_refused_with_the_value(batch: str) -> None:
    with pytest.raises(BatchError) as raised:
        batches(["a"], batch)
    assert str(raised.value) == f"--batch expects a count such as 2 or a share such as 25%, got {batch!r}"


def test_a_reason_is_the_failed_command_its_exit_code_and_the_last_six_lines() -> None:
    output = "\n".join(f"l{i}" for i in range(1, 10)) + "\n"
    result = StepResult("h", "start", False, 0.0, output, "systemctl start", 4)
    assert _reason(result) == "systemctl start (exit 4):\n" + "\n".join(f"l{i}" for i in range(4, 10))
    assert _reason(StepResult("h", "start", False, 0.0, " \n", None, 4)) == "start (exit 4)"
    assert _first_line("  \n") == "" and _first_line("\n first \nsecond") == "first "


def _entries(outcome: Outcome, plan: PushPlan | None = None) -> dict[str, dict[str, object]]:
    commands = history_commands(LAYOUT, outcome, plan or _plan(), time="T", who="me", environment="prod")
    out = {}
    for host, command in commands.items():
        assert command == cmd.history_entry(LAYOUT, json.loads(command.argv[-1]))
        out[host] = json.loads(command.argv[-1])
    return out


def test_history_says_ok_for_every_host_of_a_completed_push() -> None:
    entries = _entries(Outcome("push", "r2", switched=HOSTS, completed=True))
    assert entries["web1"] == {
        "time": "T", "by": "me", "action": "push", "release": "r2", "previous": "r1",
        "environment": "prod", "result": "ok",
    }
    assert {e["result"] for e in entries.values()} == {"ok"}


def test_history_names_the_failure_on_every_host_it_touched() -> None:
    outcome = Outcome(
        "push", "r2", reverted=["web1"], failures=[Failure("web2", "switch", "mv failed\nmore")]
    )
    entries = _entries(outcome)
    assert (entries["web1"]["result"], entries["web1"]["reason"]) == ("rolled back", "mv failed")
    assert (entries["web2"]["result"], entries["web2"]["reason"]) == ("failed", "mv failed")
    assert (entries["web3"]["result"], entries["web3"]["reason"]) == ("rolled back", "web2: mv failed")


def test_history_says_not_started_without_a_reason_when_nothing_failed() -> None:
    entries = _entries(Outcome("push", "r2", switched=["web1"], completed=False))
    assert entries["web2"]["result"] == "not started" and "reason" not in entries["web2"]
    assert entries["web1"]["result"] == "not started"
    reverted = _entries(Outcome("push", "r2", reverted=["web1"]))
    assert reverted["web1"]["result"] == "rolled back" and "reason" not in reverted["web1"]


def test_hooks_get_the_push_in_their_environment_and_run_as_root_in_the_base_folder() -> None:
    env = hook_environment(_plan(), "prod", "shop")
    assert env == {
        "DEPLOY_ACTION": "push", "DEPLOY_RELEASE": "r2", "DEPLOY_ENVIRONMENT": "prod",
        "DEPLOY_HOSTS": "web1 web2 web3", "DEPLOY_APP": "shop",
    }
    assert hook_environment(_plan(), "prod", "shop", "ok")["DEPLOY_RESULT"] == "ok"
    hook = remote_hook(LAYOUT, "make warm", {"B": "2", "A": "1"})
    assert hook == Command(
        ("env", "-C", LAYOUT.paths.base, "A=1", "B=2", "sh", "-c", "make warm"), "hook: make warm", sudo=True
    )


def test_a_failed_start_without_a_log_command_or_lost_on_the_way_reads_no_log() -> None:
    plan = _plan()
    no_log = PushPlan(plan.action, plan.release, (replace(plan.hosts[0], diagnose=None), *plan.hosts[1:]))
    executor = Hosts({("web1", "start"): "boom"})
    outcome, _ = _run(executor, no_log)
    assert [(f.host, f.step, f.log) for f in outcome.failures] == [("web1", "start", "")]
    assert executor.timeouts == []
    lost = Hosts()
    lost.raises[("web2", "start")] = ConnectionError("gone")
    outcome, _ = _run(lost)
    assert outcome.failures == [Failure("web2", "connection", "gone", "")]
    assert lost.timeouts == []


def test_the_outcome_names_the_action_and_release() -> None:
    outcome, _ = _run(Hosts())
    assert (outcome.action, outcome.release) == ("push", "r2")


def test_a_signal_before_any_host_switches_puts_nothing_back_and_is_raised_again() -> None:
    executor = Hosts()
    executor.raises[("web1", "prepare")] = Interrupted(signal.SIGINT)
    said: list[str] = []
    rollout = Rollout(executor, _plan(), LAYOUT, say=said.append, parallel=False)
    with pytest.raises(Interrupted):
        rollout.run()
    assert said == ["interrupted by Ctrl-C: putting every host back on the release it served before"]
    assert _ran(executor, "revert") == [] and _ran(executor, "abort") == []
