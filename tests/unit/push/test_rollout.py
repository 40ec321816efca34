"""A push stopped by a signal (Ctrl-C, SIGTERM of a cancelled CI job, SIGHUP of a closed terminal):
the step in flight is finished or undone, every host that switched (or was switching) goes back, and
hosts that only started the new slot stop it. Run with the recorder; tests/faults/test_signals.py
does it on sandbox hosts."""

from __future__ import annotations

import os
import signal
import time

import pytest

from deploy.cli import main  # noqa: F401  (registers the commands before cli_push is imported)
from deploy.plan import Step
from deploy.push.plan_push import push_plan
from deploy.push.rollout import Interrupted, Rollout
from deploy.remote.executor import Recorder, StepResult
from tests.unit.push.test_plans import CONFIG, LAYOUT, SECRETS, build, rendered_map, three_hosts

pytestmark = pytest.mark.unit


class SignalledRecorder(Recorder):
    """Records steps; the signal arrives while `step` runs on `host` (the step itself completes)."""

    def __init__(self, host: str, step: str, signum: int = signal.SIGTERM):
        super().__init__()
        self.at = (host, step)
        self.signum = signum

    def run_step(self, host: str, step: Step) -> StepResult:
        result = super().run_step(host, step)
        if (host, step.name) == self.at:
            self.at = ("", "")
            raise Interrupted(self.signum)
        return result


def _run(recorder: Recorder, batch: str = "1") -> tuple[Rollout, Interrupted]:
    hosts = three_hosts()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2"))
    rollout = Rollout(recorder, plan, LAYOUT, batch=batch, parallel=False)
    with pytest.raises(Interrupted) as raised:
        rollout.run()
    return rollout, raised.value


def _steps(recorder: Recorder) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for host, step, _line in recorder.log:
        if not out or out[-1] != (host, step):
            out.append((host, step))
    return out


def test_a_signal_during_a_later_batch_s_switch_reverts_that_host_too() -> None:
    recorder = SignalledRecorder("web2", "switch")
    rollout, stop = _run(recorder)
    assert stop.exit_code == 143 and stop.name == "SIGTERM"
    steps = _steps(recorder)
    after = steps[steps.index(("web2", "switch")) + 1 :]
    # web2 may have switched (the step ran): it goes back like web1, and its live slot is never stopped.
    assert ("web1", "revert") in after and ("web2", "revert") in after
    assert ("web2", "abort") not in after
    assert not any(h == "web3" for h, _ in steps if _ in ("start", "switch"))
    assert sorted(rollout.outcome.reverted) == ["web1", "web2"]
    assert rollout.outcome.failures[-1].reason == "interrupted by SIGTERM"


def test_a_signal_while_a_batch_starts_stops_its_new_slot_and_reverts_the_earlier_batch() -> None:
    recorder = SignalledRecorder("web2", "health", signal.SIGHUP)
    rollout, stop = _run(recorder)
    assert stop.exit_code == 129
    after = _steps(recorder)[_steps(recorder).index(("web2", "health")) + 1 :]
    assert ("web1", "revert") in after and ("web2", "abort") in after and ("web2", "revert") not in after
    assert rollout.outcome.reverted == ["web1"]


def test_a_signal_after_every_host_switched_keeps_the_new_release() -> None:
    recorder = SignalledRecorder("web1", "finish")
    rollout, _stop = _run(recorder, batch="3")
    assert not any(s == "revert" for _, s in _steps(recorder))
    assert rollout.outcome.completed and rollout.outcome.switched == ["web1", "web2", "web3"]


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_sigterm_and_sighup_stop_a_push_like_ctrl_c_and_later_signals_wait(signum: int, code: int) -> None:
    from deploy.cli.common import StopSignals

    notes: list[str] = []
    with StopSignals(notes.append) as stops:
        with pytest.raises(Interrupted) as raised:
            os.kill(os.getpid(), signum)
        assert raised.value.exit_code == code and isinstance(raised.value, KeyboardInterrupt)
        # While the push puts hosts back, another signal does not cut that short: it is noted.
        os.kill(os.getpid(), signal.SIGTERM)
        assert stops.received == [signum, signal.SIGTERM]
        assert notes and "already stopping" in notes[-1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("push", "interrupted by SIGTERM: no host was changed (the deploy lock is released)"),
        (
            "setup",
            "interrupted by SIGTERM: the setup steps that ran stay (setup is idempotent: run it again)",
        ),
    ],
)
def test_a_signal_before_the_rollout_or_during_setup_exits_143_and_says_what_changed(
    capsys: pytest.CaptureFixture[str], what: str, said: str
) -> None:
    from deploy.cli.common import Printer, stoppable

    with pytest.raises(SystemExit) as exited, stoppable(Printer(False), what):
        os.kill(os.getpid(), signal.SIGTERM)
    assert exited.value.code == 143
    assert capsys.readouterr().err == f"error: {said}\n"


class SlowSwitchRecorder(Recorder):
    """A real SIGTERM reaches the process while web2's switch step runs; the step then takes a moment
    longer to end, as a step on a host does."""

    def run_step(self, host: str, step: Step) -> StepResult:
        result = super().run_step(host, step)
        if (host, step.name) == ("web2", "switch"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.3)  # the rest of the step (the host is still switching)
            self.log.append((host, "switch", "(step ended)"))
        return result


@pytest.mark.parametrize("batch", ["1", None])
def test_a_real_signal_lets_the_step_in_flight_end_before_anything_is_undone(batch: str | None) -> None:
    from deploy.cli.common import StopSignals

    recorder = SlowSwitchRecorder()
    hosts = three_hosts()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2"))
    rollout = Rollout(recorder, plan, LAYOUT, batch=batch)
    with StopSignals(lambda _text: None), pytest.raises(Interrupted):
        rollout.run()
    lines = [(h, s, line) for h, s, line in recorder.log]
    ended = lines.index(("web2", "switch", "(step ended)"))
    first_revert = next(i for i, (_h, s, _l) in enumerate(lines) if s == "revert")
    assert ended < first_revert, lines
    assert "web2" in rollout.outcome.reverted
