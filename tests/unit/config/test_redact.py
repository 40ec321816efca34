"""One redaction layer (deploy.config.redact): every line deploy prints or writes, whoever prints it, has no
secret value in it, raw or in a common encoding; secrets too short to redact are refused."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import click
import pytest

from deploy.cli import main  # noqa: F401  (main registers the commands before cli_push is imported)
from deploy.cli.common import Printer, StopSignals, fail
from deploy.config.loader import ConfigError, load_text, read_secrets
from deploy.config.redact import MIN_SECRET_LENGTH, RedactingStream, Redactor, redacting_output
from deploy.plan import Step
from deploy.push.finish import RolloutRun, finish
from deploy.push.plan_push import push_plan
from deploy.remote.executor import Event, Recorder, StepResult
from tests.unit.push.test_plans import CONFIG, SECRETS, YAML, build, rendered_map, three_hosts

pytestmark = pytest.mark.unit

SECRET = 'p@ss w0rd/"quoted"&é'


def encodings(value: str) -> dict[str, str]:
    raw = value.encode()
    return {
        "raw": value,
        "shell": shlex.quote(value),
        "json": json.dumps({"k": value}),
        "json-utf8": json.dumps({"k": value}, ensure_ascii=False),
        "url": quote(value, safe=""),
        "url-path": quote(value),
        "form": quote_plus(value),
        "base64": base64.b64encode(raw).decode(),
        "base64-url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        # inside a longer base64 text, at each of the three byte offsets
        "base64-in-0": base64.b64encode(b"SECRET=" + raw + b"\n").decode(),
        "base64-in-1": base64.b64encode(b"SECRET_=" + raw + b"\n").decode(),
        "base64-in-2": base64.b64encode(b"SECRET__=" + raw + b"\n").decode(),
        "repr": repr(value),
        "repr-in-list": repr([value]),
    }


def leaks(text: str, value: str) -> list[str]:
    """The encodings of `value` that `text` still contains (base64 ones as their value-only core)."""
    found = []
    for name, form in encodings(value).items():
        if name.startswith("base64"):
            core = base64.b64decode(form + "=" * (-len(form) % 4), altchars=b"-_" if "url" in name else None)
            if value.encode() in core and form in text:
                found.append(name)
        elif form in text or value in text:
            found.append(name)
    return found


@pytest.mark.parametrize("value", [SECRET, "test-secret-key-0123456789abcdef", "abcd", "ключ-секрет"])
def test_every_common_encoding_of_a_secret_is_redacted(value: str) -> None:
    redact = Redactor({"SECRET_KEY": value})
    for name, form in encodings(value).items():
        if name.startswith("base64-in") and len(value.encode()) < 8:
            continue  # inside longer base64, only values of 8 bytes or more can be told apart
        shown = redact(f"before {form} after")
        assert "<SECRET_KEY>" in shown, (name, shown)
        assert not leaks(shown, value), (name, shown)


def test_each_line_of_a_multi_line_secret_counts_and_longer_values_go_first() -> None:
    pem = "-----BEGIN KEY-----\nMIIBVwIBADANBgkqhkiG9w0BAQEFAASC\nAT8wggE7AgEAAkEA0Z\n-----END KEY-----"
    redact = Redactor({"TLS_KEY": pem, "SHORT": "0BAQEF", "LONG": "0BAQEFAASC"})
    shown = redact("got MIIBVwIBADANBgkqhkiG9w0BAQEFAASC and 0BAQEFAASC and 0BAQEF")
    assert shown == "got <TLS_KEY> and <LONG> and <SHORT>"


def test_secrets_shorter_than_the_minimum_are_refused_when_loaded(tmp_path: Path) -> None:
    assert MIN_SECRET_LENGTH == 4
    (tmp_path / ".env").write_text("SECRET_KEY=abc\n")
    with pytest.raises(ConfigError) as error:
        read_secrets(CONFIG, tmp_path, str(tmp_path / "deploy.yaml"))
    (problem,) = error.value.problems
    assert "SECRET_KEY has 3 characters: too short to keep out of deploy's output" in str(problem)
    assert "app.secrets" in str(problem) and "abc" not in str(problem).replace("abcd", "")
    (tmp_path / ".env").write_text("SECRET_KEY=abcd\n")
    assert read_secrets(CONFIG, tmp_path, str(tmp_path / "deploy.yaml")) == {"SECRET_KEY": "abcd"}


def test_everything_printed_goes_through_the_layer(capsys: pytest.CaptureFixture[str]) -> None:
    forms = encodings(SECRET)
    with redacting_output({"SECRET_KEY": SECRET}):
        printer = Printer(True)
        printer.event(Event("step", "web1", "start", "failed", 1.0, f"setup failed: {forms['shell']}"))
        printer.say(f"hook output {forms['base64-in-1']}")
        Printer(False).event(Event("step", "web1", "start", "failed", 1.0, forms["url"]))
        click.echo(forms["repr"], err=True)
        print(forms["json"])
        sys.stdout.write(forms["raw"][:5])  # one line written in two pieces
        sys.stdout.write(forms["raw"][5:] + "\n")
        with pytest.raises(SystemExit):
            fail(f"setup failed on web1: {forms['form']}", 1)
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("<SECRET_KEY>") == 7, text
    assert not leaks(text, SECRET), text


class FailingRecorder(Recorder):
    def __init__(self, host: str, step: str, failed: str, output: str):
        super().__init__()
        self.at, self.failed, self.output = (host, step), failed, output

    def run_step(self, host: str, step: Step) -> StepResult:
        result = super().run_step(host, step)
        if (host, step.name) != self.at:
            return result
        return StepResult(host, step.name, False, 0.0, self.output, self.failed, 1)


def test_failure_reasons_and_the_audit_record_are_redacted_in_every_encoding(
    capsys: pytest.CaptureFixture[str],
) -> None:
    value = SECRETS["SECRET_KEY"]
    hosts = three_hosts()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2"))
    output = "\n".join(f"{name}: {form}" for name, form in encodings(value).items())
    # The step's description names the failed command line: its first line goes to the audit log.
    failed = " ".join(encodings(value).values())
    recorder = FailingRecorder("web2", "health", failed, output)
    printer = Printer(False)
    with StopSignals(printer.say) as stops, pytest.raises(SystemExit):
        finish(CONFIG, recorder, plan, printer, RolloutRun("production", 0.0, None, 0, SECRETS, stops))  # type: ignore[arg-type]
    text = "".join(capsys.readouterr())
    history = [line for _h, _s, line in recorder.log if "history.jsonl" in line]
    assert len(history) == 3 and "<SECRET_KEY>" in history[1], history
    for where in (text, *history):
        assert not leaks(where, value), where


def test_deploy_config_output_is_redacted(tmp_path: Path) -> None:
    secret = "config-secret-value-42"
    url = f"https://u:{secret}@api.example.com"
    text = YAML.replace("  secrets: [SECRET_KEY]", f"  secrets: [SECRET_KEY]\n  env: {{API_URL: '{url}'}}")
    assert load_text(text).app.env["API_URL"] == url
    (tmp_path / "deploy.yaml").write_text(text)
    (tmp_path / ".env").write_text(f"SECRET_KEY={secret}\n")
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "config"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "https://u:<SECRET_KEY>@api.example.com" in out.stdout and secret not in out.stdout + out.stderr


def test_a_secret_streamed_in_pieces_with_flushes_in_between_never_shows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `deploy logs -f` and `deploy exec` print chunks as they come, and click flushes after each.
    text = f"GET /login?key={SECRET} 200\nnext line {json.dumps(json.dumps(SECRET))}\n"
    with redacting_output({"SECRET_KEY": SECRET}):
        for start in range(0, len(text), 3):
            click.echo(text[start : start + 3], nl=False)
            sys.stdout.flush()
        click.echo("End the push? [y/N]: ", nl=False)
        sys.stdout.flush()
        prompt_shown = capsys.readouterr().out
    out = prompt_shown + capsys.readouterr().out
    assert prompt_shown.endswith("End the push? [y/N]: ")  # a prompt is not held back
    assert not leaks(out, SECRET) and SECRET[:8] not in out, out
    assert out.count("<SECRET_KEY>") == 2, out


def test_every_command_that_talks_to_hosts_prints_through_the_layer() -> None:
    from deploy.cli import lock, push, status

    commands: list[click.Command] = []
    for command in push.COMMANDS + status.COMMANDS + lock.COMMANDS:
        commands += list(command.commands.values()) if isinstance(command, click.Group) else [command]
    names = sorted(c.name or "" for c in commands)
    assert names == ["exec", "history", "logs", "push", "release", "rollback", "setup", "status", "status"]
    for command in commands:
        assert getattr(command.callback, "redacts_secrets", False), command.name


def test_a_signal_handler_may_print_while_the_main_thread_writes(capsys: pytest.CaptureFixture[str]) -> None:
    # StopSignals notes a second signal by printing from the handler, which runs in the main thread,
    # possibly in the middle of a write to the same stream: that must not deadlock.
    with redacting_output({"SECRET_KEY": SECRET}):
        stream = sys.stdout
        assert isinstance(stream, RedactingStream)
        with stream._lock:  # the main thread is inside a write
            print("from the handler")
    assert capsys.readouterr().out == "from the handler\n"
