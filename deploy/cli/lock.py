"""`deploy lock`: who holds the deploy lock on the hosts, and releasing a stuck one."""

from __future__ import annotations

import click

from deploy.cli.common import (
    Printer,
    config_option,
    connected,
    env_option,
    fail,
    gather,
    handles_config_errors,
    load_config,
    redacts_secrets,
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
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.lock import lock_record

    config, _project = load_config(config_path, environment)
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
        states = gather(executor, config)
    for host, state in states.items():
        lock = state.lock
        if lock.held:
            age = f"; last heartbeat {lock.heartbeat_age:.0f}s ago" if lock.heartbeat_age is not None else ""
            click.echo(f"{host}: held by {lock_record(lock.record)}{age}")
        elif lock.working:
            click.echo(
                f"{host}: free, but a step ({lock.working}) of an interrupted push still runs on the host "
                f"(its lock was released by hand); the next push waits up to {config.push.lock_wait}s for it "
                "to end (push.lock_wait)"
            )
        elif lock.record:
            click.echo(
                f"{host}: free; the last holder, {lock_record(lock.record)}, was interrupted "
                "before it finished (the next push takes over and says so)"
            )
        else:
            click.echo(f"{host}: free")


def released(held: bool, record: str | None, said: str) -> str:
    """What `deploy lock release` did on a host, from the lock before and the release script's answer."""
    # Imported here, not at the top: `deploy --help` stays fast (tests/unit/test_startup.py).
    from deploy.push.lock import lock_record

    words = said.split()
    ended = words[1] if len(words) > 1 and words[0] == "ENDED" else None
    gone = words[1] if len(words) > 1 and words[0] == "GONE" else None
    if ended:
        return f"released (was held by {lock_record(record)}; ended its process on the host, pid {ended})"
    if gone:
        return (
            f"released; its holder, {lock_record(record)}, no longer runs (pid {gone} is not the "
            "process that took the lock: it ended, and its pid may belong to another process now), "
            "so nothing was signalled"
        )
    if held:
        return "released (was held by " + lock_record(record) + ")"
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
    from deploy.push.lock import lock_record
    from deploy.remote.commands import lock_release_forced
    from deploy.remote.executor import each

    config, _project = load_config(config_path, environment)
    command = lock_release_forced(layout_for(config))
    with connected(config, accept_new_host_keys, Printer(False)) as executor:
        states = gather(executor, config)
        held = {h: s.lock for h, s in states.items() if s.lock.held}
        if not held and not any(s.lock.record for s in states.values()):
            for host in states:
                click.echo(f"{host}: free; nothing to release")
            return
        if held and not yes:
            for host, lock in held.items():
                beat = lock.heartbeat_age
                age = f", last heartbeat {beat:.0f}s ago" if beat is not None else ""
                click.echo(f"{host}: held by {lock_record(lock.record)}{age}")
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
        click.echo(f"{host}: {released(before.held, before.record, result[1])}")


COMMANDS: list[click.Command] = [lock_group]
