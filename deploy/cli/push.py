"""The `deploy` commands that act on hosts: setup, push, rollback, status, logs, exec, lock, history."""

from __future__ import annotations

import difflib
import functools
import getpass
import json
import os
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from deploy.cli.common import config_option, env_option, fail, handles_config_errors

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from deploy.config.model import Config
    from deploy.plan import Command, Step
    from deploy.project.requirements import RequirementSet
    from deploy.push.artifact import Artifact
    from deploy.push.plans import PushPlan
    from deploy.push.rollout import Interrupted
    from deploy.remote.executor import Event, SSHExecutor
    from deploy.remote.facts import HostState


# --- output --------------------------------------------------------------------------------------


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
            what = "push" if event.status == "waiting" else "step"
            click.echo(
                f"{event.host}: waiting (up to {self.lock_wait}s, push.lock_wait) for an interrupted {what} "
                "to finish: "
                + (_lock_record(event.detail) if event.status == "waiting" else f"step {event.detail}")
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
_STOPPED = {
    "push": "no host was changed (the deploy lock is released)",
    "setup": "the setup steps that ran stay (setup is idempotent: run it again)",
    "restore": "a restore still running on the host finishes there in its one transaction, or leaves the "
    "database as it was (see 'deploy services backups' and 'deploy status')",
}


@contextmanager
def _stoppable(printer: Printer, what: str = "push") -> Iterator[StopSignals]:
    """SIGTERM, SIGHUP and Ctrl-C stop the command; outside a rollout (which handles them itself),
    it says what changed and exits 128 + the signal's number; the lock is released on the way out."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.rollout import interruption

    with StopSignals(printer.say) as stops:
        try:
            yield stops
        except KeyboardInterrupt as exc:
            stop = interruption(exc)
            fail(f"{stop.reason}: {_STOPPED[what]}", stop.exit_code)


def _who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- shared plumbing ---------------------------------------------------------------------------


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


def _load(config_path: str, environment: str | None) -> tuple[Config, Path]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import load

    config = load(config_path, environment)
    if not config.server.hosts:
        fail(f"{config_path}: server.hosts is empty: name at least one host (or use -e sandbox)", 2)
    return config, Path(config_path).resolve().parent


@contextmanager
def _connected(config: Config, accept_new: bool, printer: Printer) -> Iterator[SSHExecutor]:
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


def _host_names(config: Config) -> list[str]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.remote.executor import host_name

    return [host_name(h) for h in config.server.hosts]


def _one_host(config: Config, only: str | None, config_path: str) -> str:
    """The host `--host` names (default: the first of server.hosts); a ConfigError if it is not one."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import ConfigError, Problem, line_of

    names = _host_names(config)
    if only is None:
        return names[0]
    if only in names:
        return only
    line, path = line_of(config_path, config.environment, ("server", "hosts"))
    raise ConfigError(
        [Problem(config_path, line, path, f"--host {only!r} is none of these hosts: {', '.join(names)}")]
    )


def _gather(executor: SSHExecutor, config: Config, nginx_test: bool = False) -> dict[str, HostState]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.remote.executor import each
    from deploy.remote.facts import parse_state, probe_command

    command = probe_command(config, nginx_test)
    results = each(_host_names(config), lambda h: parse_state(h, executor.gather(h, command)))
    errors = [str(r) for r in results.values() if isinstance(r, BaseException)]
    if errors:
        fail("cannot reach every host; nothing was changed:\n  " + "\n  ".join(errors), 1)
    return {h: r for h, r in results.items() if not isinstance(r, BaseException)}


def _render(config: Config, states: Mapping[str, HostState], project: Path) -> dict[str, dict[str, str]]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.render.render import render

    return {host: render(config, state.facts, project) for host, state in states.items()}


def _project_identity(project: Path) -> str | None:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.artifact import project_identity

    return project_identity(project)


def _secrets(config: Config, project: Path, config_path: str) -> dict[str, str]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import read_secrets

    return read_secrets(config, project, config_path)


def _services_env(
    config: Config,
    executor: SSHExecutor,
    hosts: list[str],
    printer: Printer,
    stack: ExitStack,
    mode: str,
) -> tuple[dict[str, str], list[Step]]:
    """The app's service variables (REDIS_URL), read from the service host into memory only; from
    here on, everything printed hides them. `mode` setup: set the services up first; dry-run: plan
    that (the steps it returns); push: the services must be set up already."""
    if config.services.redis is None:
        return {}, []
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.redact import redacting_output
    from deploy.push.services_redis import RedisError, prepare_redis, redactions, require_credentials
    from deploy.remote.executor import ConnectError

    def run(step: Step) -> str:
        result = executor.run_step(step.host, step)
        if not result.ok:
            fail(
                f"setup failed: {step.host}: {step.name}: {result.failed} (exit {result.exit_code})\n    "
                + "\n    ".join(result.output.strip().splitlines()[-12:]),
                1,
            )
        said = [line for line in result.output.splitlines() if line.startswith("redis-server ")]
        printer.say(f"{step.host}: {step.name}" + (f": {'; '.join(said)}" if said else ""))
        return result.output

    steps: list[Step] = []
    try:
        if mode == "push":
            env = require_credentials(config, executor)
        else:
            prepared = prepare_redis(config, executor, hosts, mode == "setup", run)
            env, steps = prepared.env, prepared.steps
    except (RedisError, ConnectError) as exc:
        fail(f"nothing was changed: {exc}" if mode == "push" else f"Redis: {exc}", 1)
        raise  # fail() has exited
    if mode == "setup" and not steps:
        printer.say("Redis: already set up; nothing changed")
    stack.enter_context(redacting_output(redactions(env)))
    return env, steps


def _show_step(step: Step, state: HostState | None, printer: Printer) -> None:
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
            import hashlib

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


def _show_plan(steps: list[Step], states: Mapping[str, HostState], printer: Printer, title: str) -> None:
    printer.say(title)
    hosts: dict[str, list[Step]] = {}
    for step in steps:
        hosts.setdefault(step.host, []).append(step)
    for host, host_steps in hosts.items():
        state = states.get(host)
        serving = f"serves {state.current}" if state and state.current else "no release yet"
        printer.say(f"{host} ({serving}):")
        for step in host_steps:
            _show_step(step, state, printer)


def _lock_record(record: str | None) -> str:
    if not record:
        return "an unknown holder"
    try:
        data = json.loads(record.strip().splitlines()[0])
    except (ValueError, IndexError):
        return record.strip()[:200]
    action = data.get("action", "push")
    what = "setup" if action == "setup" else f"{action} of release {data.get('release', '?')}"
    text = f"{data.get('by', '?')} (pid {data.get('pid', '?')}, {what}, since {data.get('since', '?')})"
    if data.get("draining"):
        text += (
            f", which was interrupted: its last step ({data['draining']}) is still finishing on the "
            "host, and the lock frees itself when it ends"
        )
    return text


def _take_locks(
    executor: SSHExecutor,
    config: Config,
    printer: Printer,
    action: str,
    release: str,
    create: bool = False,
) -> None:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.layout import layout_for
    from deploy.push.plans import LOCK_LEASE_SECONDS
    from deploy.remote.commands import lock_holder
    from deploy.remote.executor import each

    layout = layout_for(config)
    record: dict[str, object] = {
        "by": _who(),
        "pid": os.getpid(),
        "since": _now(),
        "action": action,
        "release": release,
        "lease_seconds": LOCK_LEASE_SECONDS,
    }
    printer.lock_wait = config.push.lock_wait
    command = lock_holder(layout, record, LOCK_LEASE_SECONDS, config.push.lock_wait, create)
    # The first host first, alone: of two concurrent pushes only one gets past it, so the loser never
    # holds a lock on another host that would make the winner fail too.
    names = _host_names(config)
    results = each(names[:1], lambda h: executor.acquire_lock(h, command))
    first = results[names[0]]
    if not isinstance(first, BaseException) and first.acquired:
        results.update(each(names[1:], lambda h: executor.acquire_lock(h, command)))
    problems: list[str] = []
    for host, result in results.items():
        if isinstance(result, BaseException):
            text = str(result)
            if "exit 70" in text:
                text = f"{host}: cannot open the lock file {layout.lock_file}: run 'deploy setup' first"
            problems.append(text)
        elif result.still_running:
            problems.append(
                f"{host}: a step ({result.still_running}) of an earlier, interrupted push is still running "
                "on the host (its lock was released by hand); it did not end within "
                f"{config.push.lock_wait}s (push.lock_wait). Try again when it has finished, or wait "
                "longer with a higher push.lock_wait; see 'deploy lock status'"
            )
        elif not result.acquired:
            problems.append(
                f"{host}: the deploy lock is held by {_lock_record(result.record)}; "
                "wait for it to finish, or see 'deploy lock status'"
            )
        elif result.record:
            printer.say(
                f"note: {host}: an earlier push did not finish: {_lock_record(result.record)} was "
                "interrupted (its process ended without releasing the lock, which freed itself); "
                "taking the lock over. "
                + (
                    "The restore was one transaction (the database is whole); the app it stopped stays "
                    "stopped until a restore or push starts it."
                    if '"action": "restore"' in result.record
                    else "The host kept serving its live release."
                )
            )
    if problems:
        for host, result in results.items():
            if not isinstance(result, BaseException) and result.acquired:
                executor.release_lock(host)
        fail("\n  ".join(["nothing was changed:", *problems]), 1)


def _runner(executor: SSHExecutor, command: Command, timeout: float) -> Callable[[str], tuple[int, str]]:
    return lambda host: executor.run(host, command, timeout=timeout)


def _run_hooks(
    config: Config,
    executor: SSHExecutor | None,
    hooks: list[Any],
    env: Mapping[str, str],
    printer: Printer,
    stage: str,
    verbose: bool = False,
) -> list[str]:
    """Run hooks in order, up to the first that fails; what failed (which hook, where, its exit code
    and its last lines of output), else []. `verbose` shows a hook's output when it succeeds too."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.layout import layout_for
    from deploy.push.rollout import remote_hook
    from deploy.remote.executor import each, run_local

    layout = layout_for(config)
    for hook in hooks:
        started = time.monotonic()
        results: dict[str, tuple[int, str] | BaseException]
        if hook.on == "local":
            results = {"local": run_local(hook.run, env)}
        else:
            assert executor is not None
            command = remote_hook(layout, hook.run, env)
            results = dict(each(_host_names(config), _runner(executor, command, 600)))
        seconds = time.monotonic() - started
        failed: list[str] = []
        for where, result in results.items():
            code, output = (255, str(result)) if isinstance(result, BaseException) else result
            lines = output.strip().splitlines()
            if code != 0:
                failed.append(
                    f"{stage} hook failed on {where} (exit {code}): {hook.run}"
                    + "".join(f"\n    {line}" for line in lines[-10:])
                )
            elif verbose and lines:
                printer.say(f"  {stage} hook output on {where}:" + "".join(f"\n    {line}" for line in lines))
        if failed:
            for text in failed:
                printer.say(text)
            return failed
        printer.say(f"  {stage} hook ({hook.on}) {seconds:.2f}s ok: {hook.run}")
    return []


def _services(
    executor: SSHExecutor, config: Config, printer: Printer, dry_run: bool, hide: ExitStack
) -> dict[str, str]:
    """Set the services up (or, in a dry run, show what would change) before the app; the values the
    app's env file gets from them (DATABASE_URL), redacted from all output from here on."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.redact import redacting_output
    from deploy.push import services

    try:
        planned = services.plan(config, executor)
        if planned.pg is None:
            return {}
        host = planned.pg.host_name
        if dry_run:
            if planned.steps:
                _show_plan(list(planned.steps), {}, printer, "dry run: nothing is changed. Services would:")
            else:
                printer.say(f"dry run: {host}: postgres is already set up; nothing would change")
        else:
            services.run(executor, planned.steps, printer.say)
            if not planned.steps:
                printer.say(f"{host}: postgres already set up; nothing changed")
        try:
            env, secret = services.app_env(config, executor)
        except services.ServiceError:
            if dry_run:
                return {}
            raise
        hide.enter_context(redacting_output(secret))
        ca = services.ca_plan(config, executor)
        if dry_run and ca:
            _show_plan(ca, {}, printer, "then deploy's Postgres CA on the app hosts:")
        elif ca:
            services.run(executor, ca, printer.say)
            printer.say("postgres: deploy's CA certificate on " + ", ".join(s.host for s in ca))
        return env
    except services.ServiceError as exc:
        fail(f"setup stopped: {exc}", 1)
        raise


def _service_env(executor: SSHExecutor, config: Config, hide: ExitStack) -> dict[str, str]:
    """The values the app's env file gets from the services, read from their hosts (push)."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.redact import redacting_output
    from deploy.push import services

    if config.services.postgres is None:
        return {}
    try:
        env, secret = services.app_env(config, executor)
    except services.ServiceError as exc:
        fail(f"nothing was changed: {exc}", 1)
    hide.enter_context(redacting_output(secret))
    return env


# --- setup ---------------------------------------------------------------------------------------


@click.command()
@config_option
@env_option
@click.option("--dry-run", is_flag=True, help="Print what would change on each host; change nothing.")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@click.option("--json", "as_json", is_flag=True, help="Emit progress as JSON events, one per line.")
@handles_config_errors
@redacts_secrets
def setup(
    config_path: str, environment: str | None, dry_run: bool, accept_new_host_keys: bool, as_json: bool
) -> None:
    """Prepare hosts: packages, app user, directories, env file, systemd unit, Nginx site, and the
    services of deploy.yaml (services.postgres: set up first, its DATABASE_URL into the env file).

    With services.redis in deploy.yaml, Redis first (its ACL user and password made on its host,
    persistence, TLS; a changed setting restarts redis-server), and REDIS_URL into the env file.

    Idempotent: only what differs from the host is changed, and a second run changes nothing.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.plans import PlanError, refuse_hosts, setup_plan
    from deploy.remote.executor import each

    config, project = _load(config_path, environment)
    printer = Printer(as_json)
    secrets = _secrets(config, project, config_path)
    tls_files = None
    if config.server.tls is not False:
        from deploy.tls.files import read_tls_files

        # Own certificate files are checked before any host is touched (a ConfigError exits 2).
        tls_files = read_tls_files(config, config_path)
    with (
        _stoppable(printer, "setup"),
        _connected(config, accept_new_host_keys, printer) as executor,
        ExitStack() as hide,
    ):
        if not dry_run:
            # The lock lives in base_dir/.deploy: make it only in a folder deploy may take.
            try:
                refuse_hosts(config, _gather(executor, config))
            except PlanError as exc:
                fail(f"nothing was changed: {exc}", 1)
            _take_locks(executor, config, printer, "setup", "-", create=True)
        secrets = {**secrets, **_services(executor, config, printer, dry_run, hide)}
        states = _gather(executor, config, nginx_test=True)
        services, service_steps = _services_env(
            config, executor, list(states), printer, hide, "dry-run" if dry_run else "setup"
        )
        secrets = {**secrets, **services}
        try:
            plan = setup_plan(
                config, states, _render(config, states, project), secrets, _project_identity(project)
            )
        except PlanError as exc:
            fail(f"nothing was changed: {exc}", 1)
        if dry_run:
            if service_steps:
                _show_plan(service_steps, states, printer, "dry run: nothing is changed. Services would:")
            if not plan.steps:
                printer.say("dry run: every host is already set up; nothing would change")
            else:
                _show_plan(list(plan.steps), states, printer, "dry run: nothing is changed. Setup would:")
            if tls_files is not None:
                from deploy.render.render import render
                from deploy.tls.certs import planned_steps

                steps = planned_steps(
                    config,
                    [h for h in states if config.runs_web(h)],
                    tls_files,
                    {h: s.facts for h, s in states.items() if config.runs_web(h)},
                    lambda facts: render(config, facts, project),
                )
                _show_plan(steps, states, printer, "then HTTPS (certificates), in this order:")
            return
        started = time.monotonic()

        def run(host: str) -> str | None:
            for step in plan.for_host(host):
                result = executor.run_step(host, step)
                if not result.ok:
                    return (
                        f"{host}: {step.name} failed: {result.failed} (exit {result.exit_code})\n    "
                        + "\n    ".join(result.output.strip().splitlines()[-10:])
                    )
            return None

        results = each(list(states), run)
        problems = [str(r) for r in results.values() if r is not None]
        if problems:
            fail("setup failed:\n  " + "\n  ".join(problems), 1)
        for host in states:
            changed = [s.name for s in plan.for_host(host)]
            printer.result(
                {"host": host, "changed": changed},
                f"{host}: "
                + (f"changed {', '.join(changed)}" if changed else "already set up; nothing changed"),
            )
        if tls_files is not None:
            from deploy.tls.certs import CertsError, https_on_hosts

            printer.say("HTTPS: certificates (the HTTP site serves the ACME challenge first)")
            try:
                # Only where Nginx serves the site: a worker-only host has neither.
                web = {h: s.facts for h, s in states.items() if config.runs_web(h)}
                https_on_hosts(config, executor, web, tls_files, project, printer.say)
            except CertsError as exc:
                fail(str(exc))
        printer.say(f"setup done in {time.monotonic() - started:.2f}s")


# --- push ----------------------------------------------------------------------------------------


def _release_id(short: str) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + short


def _wheels_for(
    config: Config, states: Mapping[str, HostState], requirements: RequirementSet, printer: Printer
) -> dict[str, dict[str, bytes]]:
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.artifact import ArtifactError, Platform, default_cache, requirements_hash, wheelhouse
    from deploy.push.plans import platform_tag
    from deploy.push.wheels import worker_problem

    out: dict[str, dict[str, bytes]] = {}
    # One wheelhouse per Python version and platform: markers may depend on the full version.
    cache: dict[Platform, dict[str, bytes]] = {}
    for host, state in states.items():
        tag = platform_tag(state)
        if requirements_hash(requirements.key, state.python_version or "", tag) in state.venvs:
            continue
        platform = Platform(
            state.python_version or "", state.machine or "", state.libc or "", state.libc_version or ""
        )
        if platform not in cache:
            started = time.monotonic()
            try:
                files = wheelhouse(requirements, platform, default_cache(), printer.say)
            except ArtifactError as exc:
                fail(f"{host}: {exc}", 1)
            problem = worker_problem(config.gunicorn.worker_class, files, config.app.requirements)
            if problem is not None:
                fail(f"nothing was changed: {problem}", 1)
            cache[platform] = {name: path.read_bytes() for name, path in files.items()}
            printer.say(f"  wheels for {tag}: {len(files)} ({time.monotonic() - started:.2f}s)")
        out[host] = cache[platform]
    return out


def _with_own_distribution(config: Config, project: Path, artifact: Artifact, printer: Printer) -> Artifact:
    """The artifact with the project's own distribution metadata beside its code (deploy.push.owndist)."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.project.requirements import src_root
    from deploy.push.artifact import default_cache
    from deploy.push.owndist import checkout_of, own_distribution

    python_root = src_root(frozenset(artifact.files), config.app.wsgi)
    # The committed project, unless the working tree is shipped (--allow-dirty): its files then.
    checkout = None if artifact.dirty else checkout_of(project, artifact.commit)
    extra = own_distribution(artifact.files, python_root, default_cache(), printer.say, checkout)
    return replace(artifact, files={**artifact.files, **extra}) if extra else artifact


@dataclass(frozen=True)
class RolloutRun:
    """How `_finish` runs a push or rollback: its options, and what it keeps out of output."""

    environment: str
    started: float
    batch: str | None
    max_failures: int
    secrets: Mapping[str, str]
    stops: StopSignals
    verbose: bool = False


def _finish(config: Config, executor: SSHExecutor, plan: PushPlan, printer: Printer, run: RolloutRun) -> None:
    """Run the rollout with hooks, write the audit log, report, exit non-zero on failure.

    What a failure quotes from a host (a command's output, the app's log), and the audit log written
    on the hosts, show the values of `secrets` (and their encodings) by their names; everything
    printed goes through the same redaction (`redacts_secrets`, around every command here).
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.redact import Redactor
    from deploy.layout import layout_for
    from deploy.push.applog import is_traceback
    from deploy.push.rollout import (
        DIAGNOSED_STEPS,
        Failure,
        Rollout,
        history_commands,
        hook_environment,
        interruption,
    )
    from deploy.remote.executor import each

    environment, started, batch, max_failures = run.environment, run.started, run.batch, run.max_failures
    secrets, stops, verbose = run.secrets, run.stops, run.verbose
    layout = layout_for(config)
    hooks = config.hooks.pre_push if plan.action == "push" else config.hooks.pre_rollback
    post = config.hooks.post_push if plan.action == "push" else config.hooks.post_rollback
    env = hook_environment(plan, environment, config.app.name)
    if _run_hooks(config, executor, hooks, env, printer, f"pre-{plan.action}", verbose):
        fail(f"a pre-{plan.action} hook failed: nothing was changed", 1)
    rollout = Rollout(executor, plan, layout, batch=batch, max_failures=max_failures, say=printer.say)
    stop: Interrupted | None = None
    try:
        outcome = rollout.run()
    except KeyboardInterrupt as exc:
        stop = interruption(exc)
        outcome = rollout.outcome
    stops.defer()
    redact = Redactor(secrets)
    outcome.failures = [Failure(f.host, f.step, redact(f.reason), redact(f.log)) for f in outcome.failures]
    # The audit log on the hosts goes through the same redaction as everything printed.
    entries = {
        host: replace(command, argv=tuple(redact(a) for a in command.argv))
        for host, command in history_commands(
            layout, outcome, plan, time=_now(), who=_who(), environment=environment
        ).items()
    }
    each(list(entries), lambda h: executor.run(h, entries[h], timeout=30))
    result = "ok" if outcome.ok else "failed"
    hook_failures = _run_hooks(
        config, executor, post, {**env, "DEPLOY_RESULT": result}, printer, f"post-{plan.action}", verbose
    )
    elapsed = time.monotonic() - started
    payload: dict[str, object] = {
        "action": plan.action,
        "release": plan.release,
        "ok": outcome.ok,
        "seconds": round(elapsed, 3),
        "switched": outcome.switched,
        "reverted": outcome.reverted,
        "unchanged": outcome.unchanged,
        "failures": [
            {"host": f.host, "step": f.step, "reason": f.reason, "log": f.log} for f in outcome.failures
        ],
    }
    stop = stop or stops.deferred
    if stop is not None:
        _report_interrupted(executor, config, plan, printer, payload, stop)
    if hook_failures:
        payload["hook_failures"] = hook_failures
    if outcome.ok:
        verb = "is live on" if plan.action == "push" else "serves again on"
        done = f"release {plan.release} {verb} {', '.join(outcome.switched)} ({elapsed:.2f}s)"
        if not hook_failures:
            printer.result(payload, done)
            return
        # The release stays: the hook ran after the switch. The command still fails, and says why.
        payload["ok"] = False
        payload["message"] = f"{done}; the release stays, but a post-{plan.action} hook failed"
        printer.result(payload, str(payload["message"]))
        if printer.as_json:
            sys.exit(1)
        # Each failure was printed with its output above; the error names them again, one line each.
        named = [text.splitlines()[0] for text in hook_failures]
        fail("\n".join([f"a post-{plan.action} hook failed (the release stays as it is):", *named]), 1)
    lines = []
    for failure in outcome.failures:
        lines.append(f"{failure.host}: {failure.step} failed: {failure.reason}")
        if failure.log:
            shown = failure.log.splitlines()
            if failure.step in DIAGNOSED_STEPS and is_traceback(failure.log):
                title = "the app's traceback, from its log since the slot started"
            else:
                title = "last lines of the app's log"
                shown = shown[-15:]
            lines.append(f"  {title}:\n    " + "\n    ".join(shown))
    if outcome.completed:
        lines.append(
            f"release {plan.release} is live on {', '.join(outcome.switched)}; "
            f"{len(outcome.failures)} host(s) failed within the allowed {max_failures}"
        )
    else:
        # A host whose revert failed may still serve the new release: never said to be back.
        unknown = [f.host for f in outcome.failures if f.step == "revert"]
        back = ", ".join(h.host for h in plan.changed_hosts if h.host not in unknown)
        if back:
            lines.append(f"nothing switched for good: {back} serve(s) the previous release")
        option = f" -e {environment}" if config.environment else ""
        lines += [
            f"{host}: state unknown after the failed revert: see 'deploy status{option}'" for host in unknown
        ]
    payload["message"] = "\n".join(lines)
    if printer.as_json:
        printer.result(payload, "")
        sys.exit(1)
    fail(f"{plan.action} of {plan.release} failed ({elapsed:.2f}s):\n" + "\n".join(lines), 1)


def _report_interrupted(
    executor: SSHExecutor,
    config: Config,
    plan: PushPlan,
    printer: Printer,
    payload: dict[str, object],
    stop: Interrupted,
) -> None:
    """After a signal: what each host serves now (asked of the host), whether that is one release, exit."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.remote.executor import each
    from deploy.remote.facts import parse_state, probe_command

    command = probe_command(config)
    results = each(_host_names(config), lambda h: parse_state(h, executor.gather(h, command)).current)
    serving = {
        host: (f"unknown ({result})" if isinstance(result, BaseException) else result or "no release")
        for host, result in results.items()
    }
    before = {h.host: h.previous or "no release" for h in plan.hosts}
    lines = [f"{stop.reason}; each host now:"]
    for host, release in serving.items():
        if release == plan.release and before.get(host) != plan.release:
            what = f"serves {release} (the new release)"
        elif release == before.get(host):
            what = f"serves {release} (as before the {plan.action})"
        else:
            what = f"serves {release}"
        lines.append(f"  {host}: {what}")
    releases = set(serving.values())
    if len(releases) == 1 and not next(iter(releases)).startswith("unknown"):
        lines.append(f"every host serves one release: {next(iter(releases))}")
    else:
        lines.append("the hosts do NOT all serve one release: see above, then push or roll back again")
    payload.update({"interrupted": stop.name, "hosts": serving, "message": "\n".join(lines)})
    printer.result(payload, "\n".join(lines))
    sys.exit(stop.exit_code)


def _rollout_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            config_option,
            env_option,
            click.option(
                "--dry-run",
                is_flag=True,
                help="Print every command and config diff per host; change nothing.",
            ),
            click.option(
                "--batch",
                default=None,
                metavar="N|P%",
                help="Roll out N hosts (or P% of them) at a time instead of all at once.",
            ),
            click.option(
                "--max-failures",
                type=click.IntRange(0),
                default=None,
                help="Hosts allowed to fail before every host goes back (default: push.max_failures, 0).",
            ),
            click.option(
                "--accept-new-host-keys",
                is_flag=True,
                help="Trust hosts whose key is not in known_hosts yet.",
            ),
            click.option(
                "--json", "as_json", is_flag=True, help="Emit progress as JSON events, one per line."
            ),
            click.option(
                "-v", "--verbose", is_flag=True, help="Show each hook's output, also when it succeeds."
            ),
        ]
    ):
        func = option(func)
    return func


@click.command()
@_rollout_options
@click.option("--allow-dirty", is_flag=True, help="Ship the working tree even if it has uncommitted changes.")
@handles_config_errors
@redacts_secrets
def push(
    config_path: str,
    environment: str | None,
    dry_run: bool,
    batch: str | None,
    max_failures: int | None,
    accept_new_host_keys: bool,
    as_json: bool,
    verbose: bool,
    allow_dirty: bool,
) -> None:
    """Ship the committed HEAD to every host with zero downtime, behind a health gate.

    Each host starts the new release beside the live one, probes app.health, and switches Nginx to
    it atomically; if any host fails, every host goes back to its previous release. A project with
    a pyproject.toml [project], setup.py or setup.cfg gets its own distribution's metadata shipped
    beside its code (importlib.metadata.version and entry points work; the code is not installed).
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.artifact import ArtifactError, pack
    from deploy.push.plans import Build, PlanError, push_plan
    from deploy.push.rollout import BatchError, batches
    from deploy.remote.executor import each

    started = time.monotonic()
    config, project = _load(config_path, environment)
    printer = Printer(as_json)
    batch = batch or config.push.batch
    failures_allowed = config.push.max_failures if max_failures is None else max_failures
    try:
        batches(["x"], batch)
    except BatchError as exc:
        fail(str(exc), 2)
    env_name = environment or "default"
    secrets = _secrets(config, project, config_path)
    with (
        _stoppable(printer) as stops,
        _connected(config, accept_new_host_keys, printer) as executor,
        ExitStack() as hide,
    ):
        # Connect to the hosts while git packs the artifact (errors surface again on first use).
        warmup = threading.Thread(target=each, args=(_host_names(config), executor.connection), daemon=True)
        warmup.start()
        try:
            try:
                artifact = pack(
                    project,
                    config.app.requirements,
                    allow_dirty,
                    exclude=tuple(config.app.shared),
                    public=(config.app.static.dir,) if config.app.static else (),
                )
            except ArtifactError as exc:
                fail(str(exc), 2 if "uncommitted" in str(exc) or "git" in str(exc) else 1)
        finally:
            # Never exit while it connects: the interpreter would kill the thread inside paramiko
            # and abort ("FATAL: exception not rethrown", exit 134) instead of exiting with the error.
            warmup.join()
        if artifact.withheld:
            from deploy.config.secretfiles import withheld_warning

            printer.say(withheld_warning(artifact.withheld), withheld=list(artifact.withheld))
        artifact = _with_own_distribution(config, project, artifact, printer)
        release = _release_id(artifact.short)
        if not dry_run:
            _take_locks(executor, config, printer, "push", release)
        secrets = {**secrets, **_service_env(executor, config, hide)}
        states = _gather(executor, config)
        secrets = {**secrets, **_services_env(config, executor, list(states), printer, hide, "push")[0]}
        wheels = _wheels_for(config, states, artifact.requirement_set, printer)
        build = Build(artifact, release, wheels, _who(), env_name, _project_identity(project))
        try:
            plan = push_plan(config, states, _render(config, states, project), secrets, build)
        except PlanError as exc:
            fail(f"nothing was changed: {exc}", 1)
        if dry_run:
            if not plan.changed_hosts:
                printer.say("dry run: every host already serves this build; a push would change nothing")
                return
            _show_plan(
                list(plan.as_plan().steps),
                states,
                printer,
                f"dry run: nothing is changed. A push of {release} would run:",
            )
            return
        if not plan.changed_hosts:
            serving = ", ".join(f"{h.host} ({h.release})" for h in plan.hosts)
            printer.result(
                {"action": "push", "ok": True, "unchanged": [h.host for h in plan.hosts]},
                f"nothing to push: every host already serves this build: {serving}",
            )
            return
        for host_push in plan.changed_hosts:
            venv = "reused" if host_push.venv_reused else f"new, {host_push.wheels_sent} wheel(s) sent"
            printer.say(
                f"{host_push.host}: {host_push.previous or 'no release'} -> {release} "
                f"({host_push.files_sent} file(s) sent, {host_push.files_deleted} deleted, venv {venv})"
            )
        run = RolloutRun(env_name, started, batch, failures_allowed, secrets, stops, verbose)
        _finish(config, executor, plan, printer, run)


@click.command()
@_rollout_options
@click.argument("release", required=False)
@handles_config_errors
@redacts_secrets
def rollback(
    config_path: str,
    environment: str | None,
    dry_run: bool,
    batch: str | None,
    max_failures: int | None,
    accept_new_host_keys: bool,
    as_json: bool,
    verbose: bool,
    release: str | None,
) -> None:
    """Go back to the previous release (or RELEASE), with the same zero-downtime switch and health gate.

    The previous release is the one that served before the current one, from the host's history
    (each release records the one it replaced): after push A, push B, rollback, push C, a rollback
    goes to A, never to B that was rolled away from.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.plans import PlanError, rollback_plan

    started = time.monotonic()
    config, project = _load(config_path, environment)
    printer = Printer(as_json)
    batch = batch or config.push.batch
    failures_allowed = config.push.max_failures if max_failures is None else max_failures
    env_name = environment or "default"
    from deploy.config.loader import known_secrets

    # A rollback needs no secret; those it can read are still kept out of what it prints.
    secrets = known_secrets(config, project)
    with _stoppable(printer) as stops, _connected(config, accept_new_host_keys, printer) as executor:
        if not dry_run:
            _take_locks(executor, config, printer, "rollback", release or "(previous)")
        states = _gather(executor, config)
        try:
            plan = rollback_plan(config, states, release)
        except PlanError as exc:
            fail(f"nothing was changed: {exc}", 1)
        for note in plan.notes:
            printer.say(f"note: {note}")
        if dry_run:
            _show_plan(
                list(plan.as_plan().steps),
                states,
                printer,
                "dry run: nothing is changed. A rollback would run:",
            )
            return
        if not plan.changed_hosts:
            printer.result({"action": "rollback", "ok": True}, f"every host already serves {plan.release}")
            return
        for host_push in plan.changed_hosts:
            printer.say(f"{host_push.host}: {host_push.previous} -> {host_push.release}")
        run = RolloutRun(env_name, started, batch, failures_allowed, secrets, stops, verbose)
        _finish(config, executor, plan, printer, run)


# --- status, logs, exec, history, lock ---------------------------------------------------------


@click.command()
@config_option
@env_option
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handles_config_errors
@redacts_secrets
def status(config_path: str, environment: str | None, accept_new_host_keys: bool, as_json: bool) -> None:
    """Per host: the current release, its service state, health, each process instance's state, and the
    deploy lock's holder."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.layout import layout_for
    from deploy.push.processes import instance_states
    from deploy.remote import commands as cmd
    from deploy.remote.executor import each

    config, _project = _load(config_path, environment)
    printer = Printer(as_json)
    layout = layout_for(config)
    with _connected(config, accept_new_host_keys, printer) as executor:
        states = _gather(executor, config)

        def health(host: str) -> str:
            slot = states[host].live_slot
            if slot is None:
                return "no release"
            if not config.runs_web(host):
                return "no web process here (its roles leave out web)"
            probe = cmd.health_probe(layout, slot, config.primary_domain, config.app.health, 3, "")
            code, output = executor.run(host, probe, timeout=20)
            return (
                "healthy"
                if code == 0
                else output.strip().splitlines()[-1]
                if output.strip()
                else f"exit {code}"
            )

        healths = each(list(states), health)
        rows = []
        instances = {
            host: instance_states(config, layout, host, state.services, state.live_slot)
            for host, state in states.items()
        }
        for host, state in states.items():
            slot = state.live_slot
            web = slot if slot and config.runs_web(host) else None
            service = state.services.get(layout.unit(web), "unknown") if web else "-"
            lock = state.lock
            holder = (
                ("held by " + _lock_record(lock.record))
                if lock.held
                else (
                    "free (an interrupted push left " + _lock_record(lock.record) + ")"
                    if lock.record
                    else "free"
                )
            )
            result = healths[host]
            rows.append(
                {
                    "host": host,
                    "release": state.current,
                    "slot": slot,
                    "service": service,
                    "health": str(result),
                    "lock": holder,
                    "releases": list(state.complete_releases),
                }
            )
        if as_json:
            shown = [{**row, "processes": instances[h]} for h, row in zip(states, rows, strict=True)]
            click.echo(json.dumps(shown, indent=2))
            return
        for row in rows:
            click.echo(
                f"{row['host']}:\n  release  {row['release'] or '(none)'} (slot {row['slot'] or '-'})\n"
                f"  service  {row['service']}\n  health   {row['health']}\n  lock     {row['lock']}\n"
                f"  releases {', '.join(row['releases'] or []) or '(none)'}"
            )
            for instance in instances[str(row["host"])]:
                click.echo(f"  process  {instance['unit'].removesuffix('.service')} {instance['state']}")


@click.command()
@config_option
@env_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="How many recent lines.")
@click.option("--host", "only", default=None, help="Only this host (default: the first that runs it).")
@click.option("--process", default=None, metavar="NAME", help="One of deploy.yaml's processes, not web.")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@handles_config_errors
@redacts_secrets
def logs(
    config_path: str,
    environment: str | None,
    follow: bool,
    lines: int,
    only: str | None,
    process: str | None,
    accept_new_host_keys: bool,
) -> None:
    """The app's journal (both slots) on a host; with --process NAME, every instance of that process."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.layout import layout_for
    from deploy.plan import Command
    from deploy.push.processes import journal_argv
    from deploy.remote.commands import SLOTS

    config, _project = _load(config_path, environment)
    layout = layout_for(config)
    if process is not None and process not in config.processes:
        known = ", ".join(config.processes) or "none in deploy.yaml"
        fail(f"--process {process!r} is not one of the processes ({known})", 2)
    runs_on = config.process_hosts(process) if process is not None else []
    host = _one_host(config, only if only or not runs_on else runs_on[0], config_path)
    argv = ["journalctl", "--no-pager", "-n", str(lines), *(a for s in SLOTS for a in ("-u", layout.unit(s)))]
    if process is not None:
        argv = list(journal_argv(layout, process, lines, False))
    if follow:
        argv.append("-f")
    with _connected(config, accept_new_host_keys, Printer(False)) as executor:
        try:
            code = executor.stream(
                host, Command(tuple(argv), "app log", sudo=True), lambda text: click.echo(text, nl=False)
            )
        except KeyboardInterrupt:
            code = 0
    sys.exit(code)


@click.command(name="exec", context_settings={"ignore_unknown_options": True})
@config_option
@env_option
@click.option("--host", "only", default=None, help="Run on this host (default: the first).")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@handles_config_errors
@redacts_secrets
def exec_command(
    config_path: str,
    environment: str | None,
    only: str | None,
    accept_new_host_keys: bool,
    argv: tuple[str, ...],
) -> None:
    """Run a one-off command in the current release's environment: deploy exec -- flask init-db."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.layout import layout_for
    from deploy.remote.commands import run_in_release

    config, _project = _load(config_path, environment)
    layout = layout_for(config)
    host = _one_host(config, only, config_path)
    printer = Printer(False)
    with _connected(config, accept_new_host_keys, printer) as executor:
        states = _gather(executor, config)
        state = states[host]
        if state.current is None:
            fail(f"{host}: no release yet; run 'deploy push' first", 1)
        command = run_in_release(
            layout,
            layout.paths.current,
            shlex.join(argv),
            state.current or "",
            environment or "default",
            dict(config.app.env),
            "deploy exec",
            slot_env=layout.slot_env(state.live_slot) if state.live_slot else None,
        )
        code = executor.stream(host, command, lambda text: click.echo(text, nl=False))
    sys.exit(code)


@click.command()
@config_option
@env_option
@click.option("-n", "--lines", default=20, show_default=True, help="How many entries per host.")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handles_config_errors
@redacts_secrets
def history(
    config_path: str, environment: str | None, lines: int, accept_new_host_keys: bool, as_json: bool
) -> None:
    """The audit log of every host: who pushed or rolled back which release, when, and the result."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.layout import layout_for
    from deploy.plan import Command
    from deploy.remote.executor import each

    config, _project = _load(config_path, environment)
    layout = layout_for(config)
    command = Command(
        ("sh", "-c", 'test ! -e "$1" || tail -n "$2" -- "$1"', "history", layout.history, str(lines)),
        "read the audit log",
        sudo=True,
    )
    with _connected(config, accept_new_host_keys, Printer(False)) as executor:
        results = each(_host_names(config), lambda h: executor.run(h, command, timeout=30))
    out: dict[str, list[dict[str, Any]]] = {}
    for host, result in results.items():
        if isinstance(result, BaseException):
            fail(str(result), 1)
            return
        entries = []
        for line in result[1].splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        out[host] = entries
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for host, entries in out.items():
        click.echo(f"{host}:")
        if not entries:
            click.echo("  (no pushes yet)")
        for e in entries:
            reason = f"  ({e['reason']})" if e.get("reason") else ""
            click.echo(
                f"  {e.get('time', '?'):<21} {e.get('action', '?'):<9} {e.get('release', '?'):<28} "
                f"{e.get('result', '?'):<12} by {e.get('by', '?')}{reason}"
            )


@click.group(name="lock")
def lock_group() -> None:
    """The deploy lock on the hosts: who holds it, and releasing a stuck one."""


@lock_group.command(name="status")
@config_option
@env_option
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@handles_config_errors
@redacts_secrets
def lock_status(config_path: str, environment: str | None, accept_new_host_keys: bool) -> None:
    """Who holds the deploy lock on each host (and since when)."""
    config, _project = _load(config_path, environment)
    with _connected(config, accept_new_host_keys, Printer(False)) as executor:
        states = _gather(executor, config)
    for host, state in states.items():
        lock = state.lock
        if lock.held:
            age = f"; last heartbeat {lock.heartbeat_age:.0f}s ago" if lock.heartbeat_age is not None else ""
            click.echo(f"{host}: held by {_lock_record(lock.record)}{age}")
        elif lock.working:
            click.echo(
                f"{host}: free, but a step ({lock.working}) of an interrupted push still runs on the host "
                f"(its lock was released by hand); the next push waits up to {config.push.lock_wait}s for it "
                "to end (push.lock_wait)"
            )
        elif lock.record:
            click.echo(
                f"{host}: free; the last holder, {_lock_record(lock.record)}, was interrupted "
                "before it finished (the next push takes over and says so)"
            )
        else:
            click.echo(f"{host}: free")


def _released(held: bool, record: str | None, said: str) -> str:
    """What `deploy lock release` did on a host, from the lock before and the release script's answer."""
    words = said.split()
    ended = words[1] if len(words) > 1 and words[0] == "ENDED" else None
    gone = words[1] if len(words) > 1 and words[0] == "GONE" else None
    if ended:
        return f"released (was held by {_lock_record(record)}; ended its process on the host, pid {ended})"
    if gone:
        return (
            f"released; its holder, {_lock_record(record)}, no longer runs (pid {gone} is not the "
            "process that took the lock: it ended, and its pid may belong to another process now), "
            "so nothing was signalled"
        )
    if held:
        return "released (was held by " + _lock_record(record) + ")"
    return "was free" + ("; removed the record of an interrupted push" if record else "")


@lock_group.command(name="release")
@config_option
@env_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--accept-new-host-keys", is_flag=True, help="Trust hosts whose key is not in known_hosts yet.")
@handles_config_errors
@redacts_secrets
def lock_release(config_path: str, environment: str | None, yes: bool, accept_new_host_keys: bool) -> None:
    """End whatever holds the deploy lock and remove its record (use only when that push is gone).

    Asks first when a push holds the lock (--yes skips the question).
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.layout import layout_for
    from deploy.remote.commands import lock_release_forced
    from deploy.remote.executor import each

    config, _project = _load(config_path, environment)
    command = lock_release_forced(layout_for(config))
    with _connected(config, accept_new_host_keys, Printer(False)) as executor:
        states = _gather(executor, config)
        held = {h: s.lock for h, s in states.items() if s.lock.held}
        if not held and not any(s.lock.record for s in states.values()):
            for host in states:
                click.echo(f"{host}: free; nothing to release")
            return
        if held and not yes:
            for host, lock in held.items():
                beat = lock.heartbeat_age
                age = f", last heartbeat {beat:.0f}s ago" if beat is not None else ""
                click.echo(f"{host}: held by {_lock_record(lock.record)}{age}")
            try:
                sure = click.confirm(
                    "End the push that holds the lock? Do this only if that push is gone", default=False
                )
            except click.Abort:
                sure = False
            if not sure:
                fail("nothing was changed (pass --yes to release without this question)", 1)
        results = each(list(states), lambda h: executor.run(h, command, timeout=30))
    for host, result in results.items():
        before = states[host].lock
        if isinstance(result, BaseException) or result[0] != 0:
            fail(f"{host}: could not release the lock: {result}", 1)
            return
        click.echo(f"{host}: {_released(before.held, before.record, result[1])}")


COMMANDS: list[click.Command] = [setup, push, rollback, status, logs, exec_command, history, lock_group]
