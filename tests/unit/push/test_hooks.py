"""Hooks around a push or rollback, run through `finish` with the recorder: a failing post hook is
reported (which hook, on which host, its output with secrets redacted) and the command exits 1 while
the release stays; -v shows a hook's output when it succeeds."""

from __future__ import annotations

import base64
import json
import shlex
from urllib.parse import quote

import pytest

from deploy.cli import main  # noqa: F401  (registers the commands before cli_push is imported)
from deploy.cli.common import Printer, StopSignals
from deploy.config.loader import load_text
from deploy.config.redact import redacting_output
from deploy.plan import Command
from deploy.push.finish import RolloutRun, finish
from deploy.push.plan_push import push_plan
from deploy.push.plan_rollback import rollback_plan
from deploy.remote.executor import Recorder
from tests.unit.push.test_plans import SECRETS, YAML, build, rendered_map, served_state

pytestmark = pytest.mark.unit

SECRET = SECRETS["SECRET_KEY"]


class HookRecorder(Recorder):
    """Records; a hook whose command line is in `answers` gives that exit code and output."""

    def __init__(self, answers: dict[str, tuple[int, str]]):
        super().__init__()
        self.answers = answers

    def run(self, host: str, command: Command, timeout: float | None = None) -> tuple[int, str]:
        super().run(host, command, timeout)
        return self.answers.get(command.description.removeprefix("hook: "), (0, ""))


def _config(hooks: str):  # type: ignore[no-untyped-def]
    return load_text(YAML.replace("[web1, web2, web3]", "[web1]") + f"hooks: {hooks}\n")


def _run(
    action: str, hooks: str, answers: dict[str, tuple[int, str]], verbose: bool = False, as_json: bool = False
) -> tuple[int, str, HookRecorder]:
    config = _config(hooks)
    hosts = served_state()
    if action == "push":
        plan = push_plan(config, hosts, rendered_map(hosts), SECRETS, build(code=b"v2"))
    else:
        plan = rollback_plan(config, hosts, None)
    recorder = HookRecorder(answers)
    printer = Printer(as_json)
    code = 0
    with StopSignals(printer.say) as stops:
        try:
            finish(
                config,
                recorder,
                plan,
                printer,
                RolloutRun("production", 0.0, None, 0, SECRETS, stops, verbose),
            )
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, "", recorder


def test_a_failing_post_rollback_hook_is_reported_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    hook = "curl -fsS http://127.0.0.1/warm-up"
    code, _, _ = _run(
        "rollback", f"{{post_rollback: [{{run: '{hook}', on: hosts}}]}}", {hook: (7, "curl: (7) refused")}
    )
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1, text
    assert f"post-rollback hook failed on web1 (exit 7): {hook}" in text
    assert "    curl: (7) refused" in text
    assert "release 20240102-000000-r1 serves again on web1" in text  # the release itself stays


def test_a_failing_post_push_hook_exits_1_and_the_release_stays_live(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = _run("push", "{post_push: [{run: 'exit 3', on: local}]}", {})
    text = "".join(capsys.readouterr())
    assert code == 1, text
    assert "post-push hook failed on local (exit 3): exit 3" in text
    assert "is live on web1" in text
    assert "the release stays" in text


def test_verbose_shows_a_successful_hook_s_output(capsys: pytest.CaptureFixture[str]) -> None:
    hooks = "{post_push: [{run: 'echo warmed up 12 pages', on: local}]}"
    code, _, _ = _run("push", hooks, {})
    quiet = "".join(capsys.readouterr())
    assert code == 0 and "post-push hook (local)" in quiet and "    warmed up 12 pages" not in quiet
    code, _, _ = _run("push", hooks, {}, verbose=True)
    loud = "".join(capsys.readouterr())
    assert code == 0 and "    warmed up 12 pages" in loud, loud


@pytest.mark.parametrize("as_json", [False, True])
def test_hook_output_and_the_audit_record_never_show_a_secret(
    capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    hook = "env | grep KEY; exit 1"
    leaked = "\n".join(
        [
            f"raw {SECRET}",
            f"quoted {shlex.quote(SECRET)}",
            f"json {json.dumps({'k': SECRET})}",
            f"url {quote(SECRET, safe='')}",
            f"base64 {base64.b64encode(SECRET.encode()).decode()}",
            f"repr {SECRET!r}",
        ]
    )
    with redacting_output(SECRETS):
        code, _, recorder = _run(
            "push", f"{{post_push: [{{run: '{hook}', on: hosts}}]}}", {hook: (1, leaked)}, as_json=as_json
        )
    text = "".join(capsys.readouterr())
    assert code == 1
    assert "raw <SECRET_KEY>" in text and "base64 <SECRET_KEY>" in text
    for form in leaked.split("\n"):
        assert form.split(" ", 1)[1] not in text, text
    history = [line for _h, _s, line in recorder.log if "history.jsonl" in line]
    assert history and all(SECRET not in line for line in history)
