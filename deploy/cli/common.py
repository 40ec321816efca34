"""What every command module of the CLI shares: the error boundary, the common options, `fail`, the
printer of progress, stopping on signals, loading the config and connecting to its hosts."""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from deploy.config.errors import ConfigError, one_line

if TYPE_CHECKING:
    from deploy.config.model import Config
    from deploy.plan import Step
    from deploy.push.rollout import Interrupted
    from deploy.remote.executor import Event, LockResult, SSHExecutor
    from deploy.remote.facts import HostState

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error to stderr and exit with `code` (2: usage or configuration)."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def _config_error(exc: ConfigError) -> NoReturn:
    for problem in exc.problems:
        click.echo(click.style("error: ", fg="red", bold=True) + str(problem), err=True)
    sys.exit(2)


def handles_config_errors(func: F) -> F:
    """Turn a ConfigError into one line per problem on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _config_error(exc)

    return wrapper  # type: ignore[return-value]


def _expected_error(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code of an error that bad input or the machine causes (not a
    bug in deploy): a file that cannot be read or written, text that is not UTF-8, YAML or a
    template that does not parse, a host that cannot be reached. None for anything else."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    import jinja2
    import yaml

    from deploy.remote.executor import ConnectError

    if isinstance(exc, OSError) and exc.filename is not None:
        files = ", ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        return f"{files}: {exc.strerror or exc}", 2
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8", 2
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return f"a number has more than {sys.get_int_max_str_digits()} digits", 2
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}:{mark.line + 1}: " if mark is not None else ""
        return f"{where}this is not valid YAML: {getattr(exc, 'problem', None) or exc}", 2
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or exc.name}:{exc.lineno}: template error: {exc.message}", 2
    if isinstance(exc, jinja2.TemplateError):
        return f"template error: {exc.message or type(exc).__name__}", 2
    if isinstance(exc, ConnectError | OSError):
        return str(exc) or type(exc).__name__, 1
    return None


class Main(click.Group):
    """The top-level group: the one error boundary of every command. Expected errors end in one
    line on stderr (exit 2 for input, 1 for an unreachable host); a bug still shows its traceback,
    followed by a line saying it is one."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _config_error(exc)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            raise  # stdout closed early (| head): click ends quietly
        except Exception as exc:
            expected = _expected_error(exc)
            if expected is None:
                traceback.print_exc()
                name = type(exc).__name__
                fail(f"this is a bug in deploy ({name}); please report it with the traceback above")
            else:
                fail(one_line(expected[0]), expected[1])


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    default="deploy.yaml",
    show_default=True,
    metavar="FILE",
    help="The deploy.yaml to read.",
)
env_option = click.option(
    "-e",
    "--env",
    "environment",
    default=None,
    metavar="ENV",
    help="Overlay this entry of environments: (or 'sandbox' after 'deploy sandbox up').",
)


# --- output, signals, config and hosts ------------------------------------------------------


class Printer:
    """Progress as one line per host per step (text), or one JSON event a line (--json)."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.started = time.monotonic()
        #: push.lock_wait of the config in use, once the locks are being taken.
        self.lock_wait: int | None = None

    def _json(self, fields: dict[str, object]) -> None:
        """One JSON event a line, with the seconds since the command started."""
        click.echo(json.dumps({**fields, "elapsed": round(time.monotonic() - self.started, 3)}))

    def event(self, event: Event) -> None:
        if self.as_json:
            self._json(event.as_dict())
            return
        if event.event == "lock":
            # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
            from deploy.push.lock import lock_record

            what = "push" if event.status == "waiting" else "step"
            click.echo(
                f"{event.host}: waiting (up to {self.lock_wait}s, push.lock_wait) for an interrupted {what} "
                "to finish: "
                + (lock_record(event.detail) if event.status == "waiting" else f"step {event.detail}")
            )
            return
        if event.status == "start":
            return
        mark = click.style("ok", fg="green") if event.status == "ok" else click.style(event.status, fg="red")
        seconds = f"{event.seconds:6.2f}s" if event.seconds is not None else " " * 7
        detail = f"  {event.detail}" if event.detail and event.status != "ok" else ""
        click.echo(f"  {event.host:<18} {event.step:<14}{seconds}  {mark}{detail}")

    def say(self, message: str, **fields: object) -> None:
        if self.as_json:
            self._json({"event": "message", "message": message, **fields})
        else:
            click.echo(message)

    def result(self, payload: dict[str, object], text: str) -> None:
        if self.as_json:
            self._json({"event": "result", **payload})
        else:
            click.echo(text)

    def fail(self, message: str, code: int = 1) -> NoReturn:
        """The command ends: `message` on stderr, exit `code` (deploy.push.console.Console)."""
        fail(message, code)
        raise AssertionError("fail() exits")

    def exit(self, code: int) -> NoReturn:
        sys.exit(code)

    def show(self, steps: list[Step], title: str) -> None:
        """The steps a dry run would run, grouped by host (no host state: no file diffs)."""
        show_plan(steps, {}, self, title)


class StopSignals:
    """While a command changes hosts, SIGTERM (a cancelled CI job) and SIGHUP (a closed terminal) stop
    it exactly as Ctrl-C does: the first of any of them raises `Interrupted` in the main thread, and
    the command puts the hosts back. Signals after the first do not cut that short: each is noted
    (`say`) and otherwise ignored until the command ends (SIGKILL still ends it at once)."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.received: list[int] = []
        self._before: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
        from deploy.push.rollout import Interrupted
        from deploy.remote.executor import GATE

        self.received.append(signum)
        if len(self.received) == 1:
            # While steps run on hosts, they end first (executor.SignalGate); else it stops at once.
            if not GATE.hold(Interrupted(signum)):
                raise Interrupted(signum)
            return
        self.say(
            f"{signal.Signals(signum).name}: already stopping; deploy first finishes putting the hosts "
            "on one release and releasing the lock (a SIGKILL now would leave them as they are)"
        )

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self._before[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._before.items():
            signal.signal(number, handler)

    def defer(self) -> None:
        """From now on, a first signal too is only noted (the hosts are settled; what is left, the
        audit log, hooks and the report, finishes); `deferred` says which one came."""
        if not self.received:
            self.received.append(0)

    @property
    def deferred(self) -> Interrupted | None:
        # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
        from deploy.push.rollout import Interrupted

        late = self.received[1:]
        return Interrupted(late[0]) if late else None


#: What a command stopped by a signal before its rollout (or during setup) has changed.
STOPPED = {
    "push": "no host was changed (the deploy lock is released)",
    "setup": "the setup steps that ran stay (setup is idempotent: run it again)",
    "restore": "a restore still running on the host finishes there in its one transaction, or leaves the "
    "database as it was (see 'deploy services backups' and 'deploy status')",
}


@contextmanager
def stoppable(printer: Printer, what: str = "push") -> Iterator[StopSignals]:
    """SIGTERM, SIGHUP and Ctrl-C stop the command; outside a rollout (which handles them itself),
    it says what changed and exits 128 + the signal's number; the lock is released on the way out."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.rollout import interruption

    with StopSignals(printer.say) as stops:
        try:
            yield stops
        except KeyboardInterrupt as exc:
            stop = interruption(exc)
            fail(f"{stop.reason}: {STOPPED[what]}", stop.exit_code)


def redacts_secrets(func: F) -> F:
    """Everything the command prints, whoever prints it, goes through one redaction layer
    (`deploy.config.redact`) that knows the values of `app.secrets` found in the environment or .env.

    A config that does not load is left to the command, which reports it (exit 2)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Imported when the command runs, not when it is decorated: `deploy --help` stays fast.
        from deploy.config.loader import ConfigError, known_secrets, load
        from deploy.config.redact import redacting_output

        config_path = kwargs["config_path"]
        try:
            config = load(config_path, kwargs.get("environment"))
        except ConfigError:
            return func(*args, **kwargs)
        with redacting_output(known_secrets(config, Path(config_path).resolve().parent)):
            return func(*args, **kwargs)

    wrapper.redacts_secrets = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def load_config(config_path: str, environment: str | None) -> tuple[Config, Path]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import load

    config = load(config_path, environment)
    if not config.server.hosts:
        config_fail(
            config_path, environment, ("server", "hosts"), "expected at least one host (or use -e sandbox)"
        )
    return config, Path(config_path).resolve().parent


def config_fail(config_path: str, environment: str | None, path: tuple[str, ...], message: str) -> NoReturn:
    """Exit 2 with one line naming deploy.yaml, the line and the key `path` (or its closest parent
    written in the file), and `message`: what was expected."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import problem_at

    raise problem_at(config_path, environment, path, message)


@contextmanager
def connected(config: Config, accept_new: bool, printer: Printer) -> Iterator[SSHExecutor]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.lock import step_guard
    from deploy.remote.executor import SSHExecutor

    executor = SSHExecutor(
        config,
        config.server.hosts,
        accept_new_host_keys=accept_new,
        on_event=printer.event,
        step_guard=step_guard(config),
    )
    try:
        yield executor
    finally:
        executor.close()


def host_names(config: Config) -> list[str]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.remote.executor import host_name

    return [host_name(h) for h in config.server.hosts]


def one_host(config: Config, only: str | None, config_path: str) -> str:
    """The host `--host` names (default: the first of server.hosts); a ConfigError if it is not one."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import ConfigError, Problem, line_of

    names = host_names(config)
    if only is None:
        return names[0]
    if only in names:
        return only
    line, path = line_of(config_path, config.environment, ("server", "hosts"))
    raise ConfigError(
        [Problem(config_path, line, path, f"--host {only!r} is none of these hosts: {', '.join(names)}")]
    )


def gather(executor: SSHExecutor, config: Config, nginx_test: bool = False) -> dict[str, HostState]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.remote.executor import each
    from deploy.remote.facts import parse_state, probe_command

    command = probe_command(config, nginx_test)
    results = each(host_names(config), lambda h: parse_state(h, executor.gather(h, command)))
    errors = [str(r) for r in results.values() if isinstance(r, BaseException)]
    if errors:
        fail("cannot reach every host; nothing was changed:\n  " + "\n  ".join(errors), 1)
    return {h: r for h, r in results.items() if not isinstance(r, BaseException)}


class LockedFacts:
    """The hosts' facts, gathered while the deploy lock is taken rather than after it (one round trip
    less per push): a passive probe (`probe_command(passive=True)`) runs beside the lock's holder, and
    its facts are kept only where they are the state under the lock: no holder and no step of a push
    was on the host when the probe began, and the work file the holder emptied still had the stamp the
    probe read (every holder empties it and every step adds a line: nothing ran in between), the holder
    having neither waited nor found an interrupted push's record. Anywhere else they are gathered again."""

    def __init__(self, executor: SSHExecutor, config: Config) -> None:
        # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
        from deploy.remote.executor import each
        from deploy.remote.facts import parse_state, probe_command

        self.executor, self.config = executor, config
        command = probe_command(config, passive=True)
        self.found: dict[str, HostState | BaseException] = {}

        def probe() -> None:
            self.found = each(host_names(config), lambda h: parse_state(h, executor.gather(h, command)))

        self.thread = threading.Thread(target=probe, name="locked-facts", daemon=True)
        self.thread.start()

    def join(self) -> None:
        """Wait for the probe (before the command may exit: a thread inside paramiko must not be killed)."""
        self.thread.join()

    def states(self, locks: Mapping[str, LockResult]) -> dict[str, HostState]:
        """Each host's state under the lock just taken (`locks`: every host's)."""
        self.join()
        found = {h: f for h, f in self.found.items() if not isinstance(f, BaseException)}
        kept = {h: f for h, f in found.items() if _under(f, locks.get(h))}
        if set(kept) == set(host_names(self.config)):
            return kept
        return gather(self.executor, self.config)


def _under(found: HostState, lock: LockResult | None) -> bool:
    """Whether facts read passively are the host's state under `lock`, the lock its holder just took."""
    if lock is None or not lock.acquired or lock.waited or lock.record:
        return False
    return found.lock.quiet and found.lock.stamp is not None and lock.stamp == found.lock.stamp


def locked_states(
    executor: SSHExecutor, config: Config, take: Callable[[], Mapping[str, LockResult]]
) -> dict[str, HostState]:
    """Take the deploy lock (`take`) and gather the hosts' facts meanwhile (`LockedFacts`)."""
    facts = LockedFacts(executor, config)
    try:
        return facts.states(take())
    finally:
        facts.join()


def show_step(step: Step, state: HostState | None, printer: Printer) -> None:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.plan import Command
    from deploy.remote.commands import STAGED
    from deploy.remote.executor import display_line

    printer.say(f"  [{step.name}]")
    for action in step.actions:
        if isinstance(action, Command):
            # ("true",) stands for work that cannot be shown before it happens; its description says it.
            shown = f"({action.description})" if action.argv == ("true",) else "$ " + display_line(action)
            printer.say("    " + shown)
            continue
        owner = f"{action.owner or 'root'}:{action.group or 'root'}"
        # A staged Nginx file replaces the file without the suffix: the diff is against that one.
        target = action.remote_path.removesuffix(STAGED)
        old = None if state is None else state.files.get(target)
        if action.sensitive:
            before = None if state is None else state.secret_files.get(action.remote_path)
            same = before == hashlib.sha256(action.content).hexdigest()
            if b"-----BEGIN" in action.content:
                what = "secret, not shown"
            else:
                keys = sum(
                    1
                    for line in action.content.decode("utf-8", "replace").splitlines()
                    if line and not line.startswith("#")
                )
                what = f"secret, {keys} keys, {'unchanged' if same else 'changed'}"
            printer.say(f"    write {action.remote_path} ({action.mode:04o} {owner}) ({what})")
            continue
        printer.say(
            f"    write {action.remote_path} ({action.mode:04o} {owner}, {len(action.content)} bytes"
            + (f": {action.description})" if action.description else ")")
        )
        if state is not None and (old is not None or target in state.files):
            new_text = action.content.decode("utf-8", "replace")
            diff = list(
                difflib.unified_diff(
                    (old or "").splitlines(),
                    new_text.splitlines(),
                    f"{target} (on host)",
                    f"{target} (new)",
                    lineterm="",
                    n=2,
                )
            )
            for line in diff or ["      (no change)"]:
                printer.say("      " + line)


def show_plan(steps: list[Step], states: Mapping[str, HostState], printer: Printer, title: str) -> None:
    printer.say(title)
    hosts: dict[str, list[Step]] = {}
    for step in steps:
        hosts.setdefault(step.host, []).append(step)
    for host, host_steps in hosts.items():
        state = states.get(host)
        serving = f"serves {state.current}" if state and state.current else "no release yet"
        printer.say(f"{host} ({serving}):")
        for step in host_steps:
            show_step(step, state, printer)
