"""The `deploy` commands that change what hosts run: setup, push, rollback. They parse options, call
deploy.push (which does the work), and print; `common` holds what they share with the other commands."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from deploy.cli.common import (
    Printer,
    config_option,
    connected,
    env_option,
    fail,
    gather,
    handles_config_errors,
    host_names,
    load_config,
    locked_states,
    redacts_secrets,
    show_plan,
    stoppable,
)

if TYPE_CHECKING:
    from deploy.config.model import Config
    from deploy.push.artifact import Artifact
    from deploy.push.plan_types import PushPlan
    from deploy.remote.executor import SSHExecutor
    from deploy.remote.facts import HostState
    from deploy.tls.steps import TLSFiles


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

    Each service change says what it costs the app before and after it runs (a Postgres reload or
    restart, a Redis restart). When the service URLs in the app's env file change, the app starts again
    as a rollback switches (the other slot, health-gated: no downtime); a setup interrupted before
    that start leaves a marker on the host, and the next setup does it. A service removed from
    deploy.yaml keeps running with its data: setup says where, and how to remove it.

    Idempotent: only what differs from the host is changed, and a second run changes nothing.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.lock import take_locks
    from deploy.push.plan_setup import refuse_hosts, setup_plan
    from deploy.push.plan_types import PlanError
    from deploy.push.service_changes import ServiceChanges
    from deploy.push.service_env import service_env

    config, project = load_config(config_path, environment)
    printer = Printer(as_json)
    secrets = _secrets(config, project, config_path)
    tls_files = None
    if config.server.tls is not False:
        from deploy.tls.files import read_tls_files

        # Own certificate files are checked before any host is touched (a ConfigError exits 2).
        tls_files = read_tls_files(config, config_path)
    with (
        stoppable(printer, "setup"),
        connected(config, accept_new_host_keys, printer) as executor,
        ExitStack() as hide,
    ):
        if not dry_run:
            # The lock lives in base_dir/.deploy: make it only in a folder deploy may take.
            try:
                refuse_hosts(config, gather(executor, config))
            except PlanError as exc:
                fail(f"nothing was changed: {exc}", 1)
            take_locks(executor, config, printer, "setup", "-", create=True)
        secrets = {
            **secrets,
            **service_env(config, executor, printer, hide, "dry-run" if dry_run else "setup"),
        }
        states = gather(executor, config, nginx_test=True)
        _connection_budget(config, project, states, printer)
        changes = ServiceChanges.learn(executor, config, list(states))
        changes.say_removed(config, printer.say)
        try:
            rendered = _render(config, states, project)
            owed = changes.owed(config, secrets, states)
            plan = setup_plan(config, states, rendered, secrets, _project_identity(project), owed)
        except PlanError as exc:
            fail(f"nothing was changed: {exc}", 1)
        if dry_run:
            if not plan.steps:
                printer.say("dry run: every host is already set up; nothing would change")
            else:
                show_plan(list(plan.steps), states, printer, "dry run: nothing is changed. Setup would:")
            if tls_files is not None:
                _show_https(config, states, tls_files, project, printer)
            changes.restart(executor, config, lambda: states, secrets, printer, dry_run=True)
            return

        def restart() -> None:
            changes.restart(executor, config, lambda: gather(executor, config), secrets, printer)

        _run_setup(config, executor, plan.for_host, states, tls_files, project, printer, restart)


def _show_https(
    config: Config, states: Mapping[str, HostState], tls_files: TLSFiles, project: Path, printer: Printer
) -> None:
    """In a dry run: the HTTPS steps setup would run after the app's, in order."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.render.render import render
    from deploy.tls.certs import planned_steps

    steps = planned_steps(
        config,
        [h for h in states if config.runs_web(h)],
        tls_files,
        {h: s.facts for h, s in states.items() if config.runs_web(h)},
        lambda facts: render(config, facts, project),
    )
    show_plan(steps, states, printer, "then HTTPS (certificates), in this order:")


def _run_setup(
    config: Config,
    executor: SSHExecutor,
    for_host: Callable[[str], Any],
    states: Mapping[str, HostState],
    tls_files: TLSFiles | None,
    project: Path,
    printer: Printer,
    restart: Callable[[], None],
) -> None:
    """Run each host's setup steps (hosts at once), report what changed, start the app again where its
    service URLs changed (`restart`), then HTTPS."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.remote.executor import each

    started = time.monotonic()

    def run(host: str) -> str | None:
        for step in for_host(host):
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
        changed = [s.name for s in for_host(host)]
        printer.result(
            {"host": host, "changed": changed},
            f"{host}: " + (f"changed {', '.join(changed)}" if changed else "already set up; nothing changed"),
        )
    restart()
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


def _connection_budget(
    config: Config, project: Path, states: Mapping[str, HostState], printer: Printer
) -> None:
    """Warn when the app's processes can open more Postgres connections than max_connections (XL034)."""
    if config.services.postgres is None:
        return
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.project.pools import budget
    from deploy.project.scan import scan

    cores = max((s.cores for s in states.values() if s.cores), default=None)
    found = budget(config, scan(project).python, cores)
    if found is not None and found.over:
        printer.say(
            f"warning: Postgres connections: {found.message()}; raise services.postgres.max_connections "
            "or lower the workers, threads or pool (deploy explain XL034)"
        )


def _rollback_contract(
    project: Path, plan: PushPlan, states: Mapping[str, HostState], printer: Printer
) -> None:
    """Warn when the release rolled back to maps what a migration of the live release dropped."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.contract import rollback_warnings

    for host in plan.changed_hosts:
        infos = {r.id: r.info or {} for r in states[host.host].releases}
        live, target = host.previous, host.release
        commits = (infos.get(live or "", {}).get("commit"), infos.get(target, {}).get("commit"))
        if live and isinstance(commits[0], str) and isinstance(commits[1], str):
            for line in rollback_warnings(project, (live, commits[0]), (target, commits[1])):
                printer.say(line)
            return


def _expand_contract(
    artifact: Artifact, states: Mapping[str, HostState], printer: Printer, allowed: bool
) -> None:
    """Warn about the migrations of this push that drop or rename; refuse one the pushed code contradicts."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.contract import contract

    found = contract(artifact, states)
    for line in found.warnings():
        printer.say(line)
    refusal = found.refusal()
    if refusal and not allowed:
        fail(f"nothing was changed: {refusal}", 1)


@click.command()
@_rollout_options
@click.option("--allow-dirty", is_flag=True, help="Ship the working tree even if it has uncommitted changes.")
@click.option(
    "--allow-breaking-migrations",
    is_flag=True,
    help="Push even when a new migration drops or renames a column or table the pushed code still uses.",
)
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
    allow_breaking_migrations: bool,
) -> None:
    """Ship the committed HEAD to every host with zero downtime, behind a health gate.

    Each host starts the new release beside the live one, probes app.health, and switches Nginx to
    it atomically; if any host fails, every host goes back to its previous release. A project with
    a pyproject.toml [project], setup.py or setup.cfg gets its own distribution's metadata shipped
    beside its code (importlib.metadata.version and entry points work; the code is not installed).

    Alembic migrations new in the push that drop or rename a column or table are warned about (the
    running release still uses the old schema: expand/contract); one whose table or column the pushed
    code still maps is refused unless --allow-breaking-migrations.

    The wheels a host needs are built here, once per Python version and platform: uv resolves them
    for the host and they download in parallel (DEPLOY_WHEELHOUSE=pip: pip download instead); they
    are kept in $DEPLOY_WHEEL_CACHE (default ~/.cache/deploy/wheels); hosts fill venvs from them with
    uv (push.installer). An old pinned package with a companion it cannot import (Flask 2.1 with
    Werkzeug 3: check DEP008) stops the push before any host changes, naming the line to add.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.build import release_id, wheels_for, with_own_distribution, with_uv
    from deploy.push.finish import RolloutRun, finish
    from deploy.push.lock import take_locks, who
    from deploy.push.plan_push import push_plan
    from deploy.push.plan_types import Build, PlanError
    from deploy.push.rollout import BatchError, batches
    from deploy.push.service_env import service_env

    started = time.monotonic()
    config, project = load_config(config_path, environment)
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
        stoppable(printer) as stops,
        connected(config, accept_new_host_keys, printer) as executor,
        ExitStack() as hide,
    ):
        artifact = with_own_distribution(
            config, project, _pack(config, project, executor, allow_dirty, printer), printer
        )
        release = release_id(artifact.short)
        if dry_run:
            states = gather(executor, config)
        else:
            states = locked_states(
                executor, config, lambda: take_locks(executor, config, printer, "push", release)
            )
        secrets = {**secrets, **service_env(config, executor, printer, hide, "push")}
        _expand_contract(artifact, states, printer, allow_breaking_migrations)
        _connection_budget(config, project, states, printer)
        wheels = wheels_for(config, states, artifact.requirement_set, printer)
        uv = with_uv(config, states, wheels, printer)
        build = Build(
            artifact, release, wheels, who(), env_name, _project_identity(project), config.push.installer, uv
        )
        try:
            plan = push_plan(config, states, _render(config, states, project), secrets, build)
        except PlanError as exc:
            fail(f"nothing was changed: {exc}", 1)
        if _nothing_to_do(plan, states, dry_run, printer):
            return
        run = RolloutRun(env_name, started, batch, failures_allowed, secrets, stops, verbose)
        finish(config, executor, plan, printer, run)


def _pack(config: Config, project: Path, executor: SSHExecutor, allow_dirty: bool, printer: Printer) -> Any:
    """The artifact of the committed HEAD (or the working tree), packed while the hosts connect."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.artifact import ArtifactError, pack
    from deploy.remote.executor import each

    # Connect to the hosts while git packs the artifact (errors surface again on first use).
    warmup = threading.Thread(target=each, args=(host_names(config), executor.connection), daemon=True)
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
    return artifact


def _nothing_to_do(plan: PushPlan, states: Mapping[str, HostState], dry_run: bool, printer: Printer) -> bool:
    """Print what a dry run would do, or that every host serves the build already (True: stop here);
    else say what each host gets (False: roll out)."""
    release = plan.release
    if dry_run:
        if not plan.changed_hosts:
            printer.say("dry run: every host already serves this build; a push would change nothing")
            return True
        show_plan(
            list(plan.as_plan().steps),
            states,
            printer,
            f"dry run: nothing is changed. A push of {release} would run:",
        )
        return True
    if not plan.changed_hosts:
        serving = ", ".join(f"{h.host} ({h.release})" for h in plan.hosts)
        printer.result(
            {"action": "push", "ok": True, "unchanged": [h.host for h in plan.hosts]},
            f"nothing to push: every host already serves this build: {serving}",
        )
        return True
    for host_push in plan.changed_hosts:
        venv = "reused" if host_push.venv_reused else f"new, {host_push.wheels_sent} wheel(s) sent"
        printer.say(
            f"{host_push.host}: {host_push.previous or 'no release'} -> {release} "
            f"({host_push.files_sent} file(s) sent, {host_push.files_deleted} deleted, venv {venv})"
        )
    return False


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
    goes to A, never to B that was rolled away from. A rollback runs no downgrade migration: it warns
    when the release it goes back to maps a column or table a migration of the live release dropped.
    """
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.config.loader import known_secrets
    from deploy.push.finish import RolloutRun, finish
    from deploy.push.lock import take_locks
    from deploy.push.plan_rollback import rollback_plan
    from deploy.push.plan_types import PlanError

    started = time.monotonic()
    config, project = load_config(config_path, environment)
    printer = Printer(as_json)
    batch = batch or config.push.batch
    failures_allowed = config.push.max_failures if max_failures is None else max_failures
    env_name = environment or "default"
    # A rollback needs no secret; those it can read are still kept out of what it prints.
    secrets = known_secrets(config, project)
    with stoppable(printer) as stops, connected(config, accept_new_host_keys, printer) as executor:
        if dry_run:
            states = gather(executor, config)
        else:
            states = locked_states(
                executor,
                config,
                lambda: take_locks(executor, config, printer, "rollback", release or "(previous)"),
            )
        try:
            plan = rollback_plan(config, states, release)
        except PlanError as exc:
            fail(f"nothing was changed: {exc}", 1)
        _rollback_contract(project, plan, states, printer)
        for note in plan.notes:
            printer.say(f"note: {note}")
        if dry_run:
            show_plan(
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
        finish(config, executor, plan, printer, run)


COMMANDS: list[click.Command] = [setup, push, rollback]
