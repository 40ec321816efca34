"""The `deploy` commands that look at hosts, or run one thing there: status, logs, exec, history."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

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
    one_host,
    redacts_secrets,
)


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
    from deploy.push.lock import lock_record
    from deploy.push.processes import instance_states
    from deploy.remote import commands as cmd
    from deploy.remote.executor import each

    config, _project = load_config(config_path, environment)
    printer = Printer(as_json)
    layout = layout_for(config)
    with connected(config, accept_new_host_keys, printer) as executor:
        states = gather(executor, config)

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
                ("held by " + lock_record(lock.record))
                if lock.held
                else (
                    "free (an interrupted push left " + lock_record(lock.record) + ")"
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

    config, _project = load_config(config_path, environment)
    layout = layout_for(config)
    if process is not None and process not in config.processes:
        known = ", ".join(config.processes) or "none in deploy.yaml"
        fail(f"--process {process!r} is not one of the processes ({known})", 2)
    runs_on = config.process_hosts(process) if process is not None else []
    host = one_host(config, only if only or not runs_on else runs_on[0], config_path)
    argv = ["journalctl", "--no-pager", "-n", str(lines), *(a for s in SLOTS for a in ("-u", layout.unit(s)))]
    if process is not None:
        argv = list(journal_argv(layout, process, lines, False))
    if follow:
        argv.append("-f")
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
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

    config, _project = load_config(config_path, environment)
    layout = layout_for(config)
    host = one_host(config, only, config_path)
    printer = Printer(False)
    with connected(config, accept_new_host_keys, printer) as executor:
        states = gather(executor, config)
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

    config, _project = load_config(config_path, environment)
    layout = layout_for(config)
    command = Command(
        ("sh", "-c", 'test ! -e "$1" || tail -n "$2" -- "$1"', "history", layout.history, str(lines)),
        "read the audit log",
        sudo=True,
    )
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
        results = each(host_names(config), lambda h: executor.run(h, command, timeout=30))
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


COMMANDS: list[click.Command] = [status, logs, exec_command, history]
