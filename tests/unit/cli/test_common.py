"""Hostile files and arguments end in one clear line and exit 2, never in a traceback (issue #14, defect 9).

Each test feeds the real CLI (in-process through click's runner, or a subprocess where the process itself
matters) an input that ended in a Python traceback before, and checks the answer: exit code 2, one line
on stderr that names the file (and its line when there is one), no "Traceback".
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.cli import main

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]

GOOD = """\
app:
  name: hello
  wsgi: "hello:app"
  secrets: [SECRET_KEY]
server:
  domains: [hello.example.com]
  hosts: [web1.example.com, web2.example.com]
  tls: false
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


def deploy_process(
    cwd: Path, *args: str, prefix: tuple[str, ...] = (), stdout: int = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """The CLI as a process of its own (where the process matters: its exit, its capabilities, its
    stdout)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "deploy", *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def one_line_error(result: Result, *expected: str, code: int = 2) -> str:
    """The single error line of `result`, after checking the exit code, that no exception escaped
    and that the line holds every `expected` text."""
    assert "Traceback" not in result.output + result.stderr, result.stderr
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "deploy.yaml").write_text(GOOD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("DEPLOY_SANDBOX_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(BILLION_LAUGHS, ["bad.yaml:", "more than 20000 values"], id="billion-laughs"),
        pytest.param("app: &a [*a]\n", ["bad.yaml:1:", "app[0]:", "alias"], id="self-alias-list"),
        pytest.param("app: &a\n  name: *a\n", ["bad.yaml:1:", "app.name:", "alias"], id="self-alias-map"),
        pytest.param("app: " + "[" * 100_000 + "\n", ["bad.yaml:1:", "nested more than"], id="deep-flow"),
        pytest.param("app: " + "{a: " * 100_000 + "\n", ["bad.yaml:1:", "nested more than"], id="deep-map"),
        pytest.param(
            "".join(f"{' ' * (2 * i)}k{i}:\n" for i in range(500)) + " " * 1000 + "x: 1\n",
            ["bad.yaml:", "nested more than"],
            id="deep-block",
        ),
        pytest.param(
            GOOD + "gunicorn:\n  timeout: " + "9" * 100_000 + "\n",
            ["bad.yaml:10:", "gunicorn.timeout:", "at most 4000 digits"],
            id="100k-digit-int",
        ),
        pytest.param(
            GOOD + "gunicorn:\n  timeout: 0x" + "f" * 5000 + "\n",
            ["bad.yaml:10:", "gunicorn.timeout:", "at most 4000 digits"],
            id="huge-hex-int",
        ),
        pytest.param(
            GOOD + "gunicorn:\n  timeout: " + ":".join(["59"] * 3000) + "\n",
            ["bad.yaml:10:", "gunicorn.timeout:", "at most 4000 digits"],
            id="huge-base-60-int",
        ),
        pytest.param(GOOD + "x: 2024-02-30\n", ["bad.yaml:9:", "x:", "day is out of range"], id="bad-date"),
        pytest.param(
            GOOD + "x: !!float abc\n", ["bad.yaml:9:", "x:", "not a valid YAML float"], id="bad-float"
        ),
        pytest.param(GOOD + "x: !!int abc\n", ["bad.yaml:9:", "x:", "not a valid YAML int"], id="bad-int"),
        pytest.param(GOOD + "x: !!timestamp abc\n", ["bad.yaml:9:", "x:"], id="bad-timestamp"),
        pytest.param(GOOD + "x: a\x00b\n", ["bad.yaml:9:", "control character U+0000"], id="nul"),
        pytest.param(GOOD + "x: a\x1bb\n", ["bad.yaml:9:", "control character U+001B"], id="escape"),
        pytest.param("", ["bad.yaml: this file is empty"], id="empty"),
        pytest.param("# only a comment\n\n", ["bad.yaml: this file is empty"], id="comments-only"),
        pytest.param("just a scalar\n", ["bad.yaml:1:", "expected a mapping"], id="scalar"),
        pytest.param("- a\n- b\n", ["bad.yaml:1:", "expected a mapping"], id="list"),
        pytest.param(
            GOOD.replace("app:", '"a\\nb": 1\napp:'),
            ["bad.yaml:1:", "'a\\nb': unknown key 'a\\nb'"],
            id="newline-in-key",
        ),
    ],
)
def test_hostile_yaml_is_one_line_exit_2(project: Path, text: str, expected: list[str]) -> None:
    (project / "bad.yaml").write_text(text, encoding="utf-8")
    for command in (["config"], ["render", "--stdout"], ["check", "--select", "RND001"], ["status"]):
        one_line_error(invoke(*command, "-c", "bad.yaml"), *expected)


def test_alias_bomb_stops_quickly(project: Path) -> None:
    """The node limit stops the expansion early: a nine-level bomb does not take minutes."""
    import time

    (project / "bad.yaml").write_text(BILLION_LAUGHS, encoding="utf-8")
    started = time.monotonic()
    one_line_error(invoke("config", "-c", "bad.yaml"), "bad.yaml")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            lambda p: p.write_bytes(GOOD.encode().replace(b"hello:app", b"hello:\xffapp")),
            ["deploy.yaml:3:", "not UTF-8"],
            id="invalid-utf8",
        ),
        pytest.param(lambda p: p.mkdir(), ["deploy.yaml:", "Is a directory"], id="directory"),
        pytest.param(lambda p: p.symlink_to(p.name), ["deploy.yaml:", "symbolic links"], id="symlink-loop"),
        pytest.param(lambda p: p.symlink_to("nowhere.yaml"), ["deploy.yaml:", "no such file"], id="dangling"),
    ],
)
def test_unusable_deploy_yaml(project: Path, make: object, expected: list[str]) -> None:
    target = project / "sub" / "deploy.yaml"
    target.parent.mkdir()
    make(target)  # type: ignore[operator]
    for command in (["config"], ["render", "--stdout"], ["status"], ["check", "sub", "--select", "RND001"]):
        one_line_error(invoke(*command, "-c", str(target)), *expected)


def test_unreadable_deploy_yaml(project: Path) -> None:
    """EACCES: as root, run without the capabilities that let root read any file."""
    (project / "deploy.yaml").chmod(0)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv to read as root without CAP_DAC_OVERRIDE")
        prefix = ("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all")
    done = deploy_process(project, "config", prefix=prefix)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["error: deploy.yaml: cannot read this file: Permission denied"]


def test_invalid_utf8_in_dotenv(project: Path) -> None:
    (project / ".env").write_bytes(b"OTHER=1\nSECRET_KEY=caf\xe9\n")
    one_line_error(invoke("config"), ".env:2:", "not UTF-8")


def test_dotenv_that_is_a_directory(project: Path) -> None:
    (project / ".env").mkdir()
    one_line_error(invoke("config"), ".env:", "Is a directory")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"server:\n  hosts: [\xff]\n", [":2:", "not UTF-8"], id="invalid-utf8"),
        pytest.param(b"server: &a [*a]\n", [":1:", "alias"], id="self-alias"),
        pytest.param(b"server: {hosts: [" + b"[" * 100_000 + b"\n", [":1:", "nested more than"], id="deep"),
    ],
)
def test_hostile_sandbox_overlay(project: Path, content: bytes, expected: list[str]) -> None:
    overlay = project / "state" / "deploy" / "sandbox" / "environment.yaml"
    overlay.parent.mkdir(parents=True)
    overlay.write_bytes(content)
    one_line_error(invoke("config", "-e", "sandbox"), str(overlay), *expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("x\n{% if %}\n", [":2:", "template error: Expected an expression"], id="syntax"),
        pytest.param("x\n\n{{ no_such_name }}\n", [":3:", "'no_such_name' is undefined"], id="undefined"),
        pytest.param("{{ app.nope.deeper }}\n", [":1:", "has no attribute 'nope'"], id="attribute"),
        pytest.param("x\n{{ 1 / 0 }}\n", [":2:", "ZeroDivisionError"], id="zero-division"),
        pytest.param("{% include 'missing.j2' %}\n", [":1:", "no template 'missing.j2'"], id="include"),
        pytest.param(b"x\n\xff\n", [":2:", "not UTF-8"], id="invalid-utf8"),
    ],
)
def test_error_in_a_project_template(project: Path, template: str | bytes, expected: list[str]) -> None:
    (project / "templates").mkdir()
    own = project / "templates" / "gunicorn.conf.py.j2"
    if isinstance(template, bytes):
        own.write_bytes(template)
    else:
        own.write_text(template, encoding="utf-8")
    for command in (["render", "--stdout"], ["render", "--out", "out"]):
        line = one_line_error(invoke(*command), *expected)
        assert line.startswith("error: templates/gunicorn.conf.py.j2:"), line  # from the current folder
    assert not (project / "out").exists()


def test_error_in_an_included_project_template(project: Path) -> None:
    """A broken override of a template that only others include (nginx-macros.j2) is named too."""
    (project / "templates").mkdir()
    (project / "templates" / "nginx-macros.j2").write_text("ok\n{% macro x( %}\n", encoding="utf-8")
    one_line_error(invoke("render", "--stdout"), "error: templates/nginx-macros.j2:2:", "template error")


def test_render_out_naming_a_file(project: Path) -> None:
    (project / "a-file").write_text("keep me\n", encoding="utf-8")
    one_line_error(invoke("render", "--out", "a-file"), "--out a-file", "not a folder")
    assert (project / "a-file").read_text(encoding="utf-8") == "keep me\n"


def test_render_out_with_a_file_in_the_way(project: Path) -> None:
    """A file where render needs a folder (out/nginx) is named, as an OSError the boundary catches."""
    (project / "out").mkdir()
    (project / "out" / "nginx").write_text("", encoding="utf-8")
    one_line_error(invoke("render", "--out", "out"), "out/nginx")


@pytest.mark.parametrize("command", [["logs"], ["exec", "--", "true"]])
def test_unknown_host(project: Path, command: list[str]) -> None:
    line = one_line_error(invoke(command[0], "--host", "UNKNOWN", *command[1:]), "deploy.yaml:7:")
    assert "server.hosts: --host 'UNKNOWN' is none of these hosts: web1.example.com, web2.example.com" in line


def test_check_with_a_relative_config_path(project: Path) -> None:
    """`deploy check -c deploy.yaml` (issue #16) and a relative -c from another folder."""
    result = invoke("check", "--select", "RND001", "-c", "deploy.yaml")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), result.output
    (project / "elsewhere").mkdir()
    os.chdir(project / "elsewhere")
    result = invoke("check", "..", "--select", "RND001", "-c", "../deploy.yaml")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), result.output


def test_invalid_utf8_suppressions_file(project: Path) -> None:
    (project / "s.yaml").write_bytes(b"suppress:\n  - \xff\n")
    one_line_error(invoke("check", "--suppressions", "s.yaml"), "s.yaml:2:", "not UTF-8")


def test_push_failing_before_connecting_exits_cleanly(project: Path) -> None:
    """A push that fails while its warm-up thread still connects exits 2 (it aborted with 134)."""
    loopback = GOOD.replace("web1.example.com, web2.example.com", "127.0.0.1:9")
    (project / "deploy.yaml").write_text(loopback, encoding="utf-8")
    (project / ".env").write_text(f"SECRET_KEY={secrets.token_hex(32)}\n", encoding="utf-8")
    done = deploy_process(project, "push")
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "not in a git repository" in done.stderr and "Traceback" not in done.stderr


def test_a_bug_still_shows_its_traceback() -> None:
    """The boundary only turns expected errors into one line: a bug keeps its traceback, and says so."""
    from deploy.cli.common import Main

    @click.group(cls=Main)
    def group() -> None:
        pass

    @group.command()
    def buggy() -> None:
        raise KeyError("internal")

    @group.command()
    def unreadable() -> None:
        Path("/nonexistent/deploy-test/file").read_text(encoding="utf-8")

    result = CliRunner().invoke(group, ["buggy"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "KeyError: 'internal'" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: this is a bug in deploy (KeyError)")
    one_line_error(CliRunner().invoke(group, ["unreadable"]), "/nonexistent/deploy-test/file: No such file")


@pytest.mark.parametrize("version", ["²", "1.2²", "1.²", "", "1..2", "1.22\n"])
def test_nginx_version_option_that_is_no_version(project: Path, version: str) -> None:
    """'²' passes str.isdigit() but not int(): it ended in a ValueError traceback."""
    one_line_error(
        invoke("render", "--stdout", "--nginx-version", version), "--nginx-version", "expected a version"
    )


@pytest.mark.parametrize("host", ["web:²", "deploy@web:²", "web:٢٢"])
def test_host_port_that_is_no_number(project: Path, host: str) -> None:
    """A port of digits int() refuses ('²') or reads (Arabic-Indic '٢٢') is not a port."""
    (project / "deploy.yaml").write_text(GOOD.replace("web1.example.com,", f"'{host}',"), encoding="utf-8")
    one_line_error(invoke("config"), "deploy.yaml:7:", "server.hosts[0]:", "expected 'host', 'user@host'")


@pytest.mark.parametrize("state", ['{"a": 1}', "[1]", '"text"'])
def test_sandbox_state_of_the_wrong_shape(project: Path, monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    """A state.json that is JSON but not a sandbox state (a TypeError traceback before) is refused
    with one line that names it: the sandbox acts as root only on the names it made."""
    (project / "sandbox").mkdir()
    (project / "sandbox" / ".deploy-sandbox").write_text("", encoding="utf-8")
    (project / "sandbox" / "state.json").write_text(state, encoding="utf-8")
    monkeypatch.setenv("DEPLOY_SANDBOX_DIR", str(project / "sandbox"))
    result = invoke("sandbox", "ssh", "x")
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
    (error,) = result.stderr.splitlines()
    assert error.startswith(f"error: {project / 'sandbox' / 'state.json'} does not describe this sandbox")


def test_endless_deploy_yaml(project: Path) -> None:
    """-c /dev/zero read until memory ran out; a file past the size limit is refused after reading
    just past it."""
    one_line_error(invoke("config", "-c", "/dev/zero"), "/dev/zero:", "larger than")
    (project / "big.yaml").write_text(GOOD + "#" * (2 << 20) + "\n", encoding="utf-8")
    one_line_error(invoke("config", "-c", "big.yaml"), "big.yaml:", "larger than")


TLS_OWN = GOOD.replace("tls: false", "tls: {cert: CERT, key: key.pem}").replace(
    "web1.example.com, web2.example.com", "127.0.0.1:9"
)


@pytest.mark.parametrize(
    ("cert", "expected"),
    [
        # pathlib's expanduser raised RuntimeError for a user that does not exist.
        pytest.param(
            "'~no-such-user-here/cert.pem'", "~no-such-user-here/cert.pem: no such file", id="tilde-user"
        ),
        pytest.param("/dev/zero", "/dev/zero: this file is larger than", id="endless"),
        pytest.param(".", "Is a directory", id="directory"),
    ],
)
def test_unreadable_own_certificate(project: Path, cert: str, expected: str) -> None:
    """`deploy certs` reads tls.cert before it connects (the host is a closed loopback port)."""
    (project / "deploy.yaml").write_text(TLS_OWN.replace("CERT", cert), encoding="utf-8")
    (project / "key.pem").write_text("not a key\n", encoding="utf-8")
    one_line_error(invoke("certs"), "deploy.yaml:8: server.tls.cert: cannot read", expected)


def test_known_hosts_that_is_no_file(project: Path) -> None:
    """server.ssh.known_hosts naming /dev/zero was read forever."""
    text = GOOD.replace("web1.example.com, web2.example.com", "127.0.0.1:9")
    (project / "deploy.yaml").write_text(text + "  ssh: {known_hosts: /dev/zero}\n", encoding="utf-8")
    result = invoke("status")
    assert result.exit_code == 1 and "Traceback" not in result.stderr, result.stderr
    assert "/dev/zero is not a regular file" in result.stderr, result.stderr


def test_closed_stdout_is_quiet(project: Path) -> None:
    """`deploy render --stdout | head -1`: stdout is a pipe whose reader has gone; that is click's
    to handle, quietly, not an error line."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = deploy_process(project, "render", "--stdout", stdout=write_end)
    finally:
        os.close(write_end)
    assert done.stderr == "", done.stderr


#: Option values a careless or hostile user could type; none of them may end in a traceback.
HOSTILE_ARGS = [
    "",
    "-",
    "--",
    "²",
    "9" * 5000,
    "-1",
    "0",
    "a\nb",
    "../../etc/passwd",
    "/dev/zero",
    "/nonexistent/x",
    ".",
    "%s%n",
    "ünïcödé",
    "*",
    "~no-such-user-here/x",
    "deploy.yaml",
    "templates",
    "-c",
    "--help",
]


def _commands() -> list[tuple[list[str], click.Command]]:
    """Every command and subcommand with its words, except those that boot or tear down sandbox
    hosts (they start machines; tests/hosts covers them)."""
    found: list[tuple[list[str], click.Command]] = []

    def walk(words: list[str], command: click.Command) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk([*words, name], sub)
        elif words not in (["sandbox", "up"], ["sandbox", "down"]):
            found.append((words, command))

    walk([], main)
    return found


COMMANDS = _commands()


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    words, command = draw(st.sampled_from(COMMANDS))
    argv = list(words)
    options = [p for p in command.params if isinstance(p, click.Option) and p.opts[0] != "--help"]
    for _ in range(draw(st.integers(0, 3))):
        if options and draw(st.booleans()):
            option = draw(st.sampled_from(options))
            argv.append(draw(st.sampled_from(option.opts)))
            if not option.is_flag:
                argv.append(draw(st.sampled_from(HOSTILE_ARGS)))
        else:
            argv.append(draw(st.sampled_from(HOSTILE_ARGS)))
    return argv


@settings(
    max_examples=500, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(command_lines())
def test_hostile_command_lines_never_end_in_a_traceback(argv: list[str]) -> None:
    """Every command with hostile option values and arguments, in a folder holding a valid deploy.yaml
    whose one host is a closed loopback port: any exit code, but never an exception."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        Path("deploy.yaml").write_text(GOOD.replace("web1.example.com, web2.example.com", "127.0.0.1:9"))
        env = {"XDG_STATE_HOME": f"{tmp}/state", "XDG_CACHE_HOME": f"{tmp}/cache", "DEPLOY_SANDBOX_DIR": ""}
        result = CliRunner(env=env).invoke(main, argv, catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        argv,
        repr(result.exception),
    )
    assert "Traceback" not in result.output + result.stderr, (argv, result.stderr)


def test_requirements_file_that_never_ends(project: Path) -> None:
    """requirements.txt linked to /dev/zero was read until memory ran out (MemoryError) by render."""
    (project / "requirements.txt").symlink_to("/dev/zero")
    result = invoke("render", "--stdout")
    assert result.exit_code == 0 and result.exception is None, (result.stderr, result.exception)


@pytest.mark.parametrize("name", ["zero.py", "Procfile"])
def test_init_with_a_project_file_that_never_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A .py file or Procfile linked to /dev/zero was read until memory ran out by `deploy init`."""
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n", encoding="utf-8")
    (tmp_path / name).symlink_to("/dev/zero")
    monkeypatch.chdir(tmp_path)
    result = invoke("init", ".")
    assert result.exit_code == 0 and result.exception is None, (result.stderr, result.exception)
    assert "app:app" in (tmp_path / "deploy.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("dirty", [False, True], ids=["committed", "allow-dirty"])
def test_push_of_a_file_name_that_is_not_utf8(project: Path, dirty: bool) -> None:
    """A committed file named b'bad\\xff.txt': with --allow-dirty the name ended in UnicodeDecodeError;
    from HEAD it went as far as the hosts. Both stop before any host, naming the file."""
    (project / "deploy.yaml").write_text(GOOD.replace("web1.example.com, web2.example.com", "127.0.0.1:9"))
    (project / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n", encoding="utf-8")
    (project / "requirements.txt").write_text("flask\n", encoding="utf-8")
    (project / os.fsdecode(b"bad\xff.txt")).write_text("x\n", encoding="utf-8")
    (project / ".env").write_text(f"SECRET_KEY={secrets.token_hex(32)}\n", encoding="utf-8")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=project, check=True)
    if dirty:
        (project / "new.txt").write_text("x\n", encoding="utf-8")
    done = deploy_process(project, "push", "--dry-run", *(["--allow-dirty"] if dirty else []))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f'error: {project}: the file name "bad\\xff.txt" is not UTF-8; rename it (git mv) to ship it'
    ]


#: Every command that reads deploy.yaml through -c (hosts unreachable: 127.0.0.1:9 refuses at once).
CONFIG_COMMANDS = [
    ["check"],
    ["config"],
    ["render", "--stdout"],
    ["push", "--dry-run", "--allow-dirty"],
    ["setup", "--dry-run"],
    ["rollback", "--dry-run"],
    ["status"],
    ["history"],
    ["logs"],
    ["lock", "status"],
    ["certs"],
]


@pytest.mark.parametrize("where", ["deploy.yaml", "./p/deploy.yaml", "../p/deploy.yaml"])
@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=lambda c: "-".join(c))
def test_every_command_takes_a_relative_config_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], where: str
) -> None:
    """`-c` with any relative path (issue #16): the command runs on that project or names a clear
    error; never a traceback."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "deploy.yaml").write_text(
        GOOD.replace("web1.example.com, web2.example.com", '"127.0.0.1:9"'), encoding="utf-8"
    )
    (project / ".env").write_text("SECRET_KEY=" + secrets.token_urlsafe(32) + "\n", encoding="utf-8")
    (project / "hello.py").write_text("from flask import Flask\napp = Flask(__name__)\n", encoding="utf-8")
    (tmp_path / "q").mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(
        {"deploy.yaml": project, "./p/deploy.yaml": tmp_path, "../p/deploy.yaml": tmp_path / "q"}[where]
    )
    n = 2 if command[0] == "lock" else 1
    result = invoke(*command[:n], "-c", where, *command[n:])
    assert "Traceback" not in result.output + result.stderr, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2), result.output
    assert "bug in deploy" not in result.stderr


def test_check_with_a_config_elsewhere_checks_that_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`deploy check -c ../p/deploy.yaml` checks the project p (where deploy.yaml is), as every other
    command takes deploy.yaml's folder for the project; before, it checked the current folder."""
    project = tmp_path / "p"
    project.mkdir()
    (project / "deploy.yaml").write_text(GOOD, encoding="utf-8")
    (project / "hello.py").write_text(
        "from flask import Flask\napp = Flask(__name__)\napp.run(debug=True)\n", encoding="utf-8"
    )
    monkeypatch.chdir(project)
    here = invoke("check", "--format", "json", "-c", "deploy.yaml")
    (tmp_path / "q").mkdir()
    monkeypatch.chdir(tmp_path / "q")
    there = invoke("check", "--format", "json", "-c", "../p/deploy.yaml")
    assert here.exit_code == there.exit_code == 1, (here.output, there.output)
    found = [{(f["id"], f["file"]) for f in json.loads(r.stdout)["findings"]} for r in (here, there)]
    assert found[0] == found[1]
    assert any(file == "hello.py" for _id, file in found[1])
