"""The processes beside web in a push or rollback: start the new slot's instances, wait until they are
ready, stop the old slot's with their warm shutdown; a singleton's old instance stops before its new
one starts. Pure: builds steps, runs nothing."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping

from deploy.config.model import Config, Process
from deploy.layout import Layout
from deploy.plan import Command, Step, Upload
from deploy.remote import commands as cmd
from deploy.remote.scripts import script

#: Runs on the host (python3, as root): stops a singleton's old instance, starts the new instances and
#: waits until each is ready (see the file).
PROCESS_READY = script("process_ready.py")

#: The framework probes: the words of the process's command they copy (its broker and its app).
_RQ_OPTIONS = ("--url", "-u", "--config", "-c")
#: The `rq` probe, after `out=$(rq info --only-workers --raw ...)`: ready once a worker registered by
#: this host and the instance's main process is listed. RQ names a worker with a random uuid unless told
#: otherwise, so the instance is found by what RQ records with the name: `NAME (HOST PID)`, or
#: `NAME (HOST IP PID)` since RQ 1.16. DEPLOY_MAIN_PID is the unit's main process, which process_ready.py
#: sets for each probe (the unit execs the command: `rq worker` is that process).
_RQ_OWN = (
    ' || { printf "%s\\n" "$out"; exit 1; }; host=$(hostname); '
    'printf "%s\\n" "$out" | grep -Eq "^worker [^ ]+ \\($host( [^ ]+)? $DEPLOY_MAIN_PID\\) " && exit 0; '
    'echo "no RQ worker of this instance (host $host, pid $DEPLOY_MAIN_PID) is registered yet"; exit 1'
)
_CELERY_OPTIONS = ("-A", "--app", "-b", "--broker")
#: Celery's node name option (`-n worker-$DEPLOY_INSTANCE@%h`) and the words it expands (celery's
#: `host_format`: the host's full name, the name before its first dot, the domain after it).
_CELERY_NODE = ("-n", "--hostname")
_CELERY_EXPANDS = {
    "%h": "$(hostname)",
    "%n": "$(hostname | cut -d . -f 1)",
    "%d": "$(hostname | cut -s -d . -f 2-)",
}


def _copied_options(command: str, options: tuple[str, ...]) -> list[str]:
    """The options of `command` (with their values) that name its broker or app."""
    try:
        words = shlex.split(command)
    except ValueError:
        return []
    out: list[str] = []
    for i, word in enumerate(words):
        if word in options and i + 1 < len(words):
            out += [word, words[i + 1]]
        elif word.startswith(tuple(f"{o}=" for o in options if o.startswith("--"))):
            out.append(word)
    return out


def celery_node(command: str) -> str:
    """The node name a Celery worker started by `command` answers to, as a shell word: its `-n`
    (its %h, %n, %d expanded on the host, its $VARIABLEs by the shell), or Celery's default
    `celery@<host name>`. A name without `@` is `<name>@<host name>`, as in Celery."""
    given = _copied_options(command, _CELERY_NODE)
    name = given[-1].split("=", 1)[-1] if given and given[-1].startswith("--hostname=") else None
    if name is None and len(given) >= 2:
        name = given[-1]
    name = name or "celery@%h"
    if "@" not in name:
        name = f"{name}@%h"
    parts: list[str] = []
    for piece in re.split(r"(%%|%[hnd])", name):
        if piece == "%%":
            parts.append("%")
        elif piece in _CELERY_EXPANDS:
            parts.append(_CELERY_EXPANDS[piece])
        else:
            parts.append(piece.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`"))
    return '"' + "".join(parts) + '"'


def _shell_word(word: str) -> str:
    """One word for sh: quoted, but a `$VARIABLE` in it still expands (as in the process's command)."""
    if "$" not in word:
        return shlex.quote(word)
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'


def probe_command(process: Process) -> str | None:
    """The shell command that says a new instance is ready (exit 0); None for settle, notify, heartbeat."""
    kind = process.ready.kind
    if kind == "command":
        return process.ready.command
    if kind == "rq":
        words = ["rq", "info", "--only-workers", "--raw", *_copied_options(process.command, _RQ_OPTIONS)]
        return ': "${DEPLOY_MAIN_PID:?}"; out=$(' + " ".join(map(_shell_word, words)) + ")" + _RQ_OWN
    if kind == "celery":
        # This instance's node only (not any worker of the app: the old slot's answer too).
        options = _copied_options(process.command, _CELERY_OPTIONS)
        ping = " ".join(map(_shell_word, ["celery", *options, "inspect", "ping", "--timeout", "5"]))
        return f"{ping} --destination {celery_node(process.command)}"
    return None


def fingerprint(config: Config) -> list[str]:
    """What a release's fingerprint adds for the processes (none: nothing, as before they existed): a
    change of instances or hosts, which no unit file shows, is a change to push."""
    return [
        "process:" + json.dumps([name, process.model_dump(mode="json"), config.process_hosts(name)])
        for name, process in config.processes.items()
    ]


def on_host(config: Config, host: str) -> list[str]:
    """The processes that run on `host`, in deploy.yaml's order."""
    return [name for name in config.processes if host in config.process_hosts(name)]


def units(config: Config, layout: Layout, host: str, slot: str) -> list[str]:
    """Every instance of every process `host` runs in `slot`."""
    return [
        layout.process_unit(name, slot, index)
        for name in on_host(config, host)
        for index in range(1, config.processes[name].instances + 1)
    ]


def _singletons(config: Config, host: str) -> list[str]:
    return [name for name in on_host(config, host) if config.processes[name].singleton]


def _probe_argv(
    config: Config, layout: Layout, name: str, probe: str, slot: str, index: int, release: str
) -> tuple[str, ...]:
    """The probe of one instance, run as the app in the slot's release with the instance's own
    DEPLOY_PROCESS and DEPLOY_INSTANCE (as its unit has them: its Celery node name may use them)."""
    env = {**config.app.env, "DEPLOY_PROCESS": name, "DEPLOY_INSTANCE": f"{slot}-{index}"}
    return cmd.run_in_release(
        layout,
        layout.slot(slot),
        probe,
        release,
        config.environment or "default",
        env,
        f"probe {name}",
        slot_env=layout.slot_env(slot),
    ).argv


def start_step(
    config: Config,
    layout: Layout,
    host: str,
    old_slot: str | None,
    new_slot: str,
    release: str,
) -> tuple[Step, ...]:
    """Start the new slot's instances on `host` and wait until they are ready (after the web health)."""
    names = on_host(config, host)
    if not names:
        return ()
    checks = []
    for name in names:
        process = config.processes[name]
        probe = probe_command(process)
        checks += [
            {
                "unit": layout.process_unit(name, new_slot, index),
                "kind": process.ready.kind,
                "settle": process.settle,
                "probe": probe and _probe_argv(config, layout, name, probe, new_slot, index, release),
                "heartbeat": process.ready.heartbeat,
            }
            for index in range(1, process.instances + 1)
        ]
    singletons = [
        [layout.process_unit(name, old_slot, 1), layout.process_unit(name, new_slot, 1)]
        for name in _singletons(config, host)
        if old_slot is not None
    ]
    stop_budget = max(config.processes[name].stop_timeout for name in names) + 10
    plan = {
        "stale": [layout.process_units(name, new_slot) for name in names],
        "singletons": singletons,
        "checks": checks,
        "settle": max(config.processes[name].settle for name in names),
        # A worker's broker may answer later than a web app's import: at least 30 s after settling.
        "timeout": max(config.processes[name].settle for name in names) + max(30, config.push.health_timeout),
        "stop_budget": stop_budget,
    }
    shown = ", ".join(f"{n} x{config.processes[n].instances}" for n in names)
    # The plan travels as a file (root's, in the state folder): the failure line stays readable.
    plan_file = f"{layout.state}/processes-{new_slot}.json"
    return (
        Step(
            "processes",
            host,
            (
                Upload(
                    plan_file,
                    (json.dumps(plan, sort_keys=True, indent=1) + "\n").encode(),
                    0o600,
                    "root",
                    "root",
                    description=f"what the new {shown} must do to count as ready",
                ),
                Command(
                    ("python3", "-c", PROCESS_READY, plan_file),
                    f"start {shown} in slot {new_slot} (release {release}) and wait until ready",
                    sudo=True,
                ),
            ),
        ),
    )


def at_boot(config: Config, layout: Layout, host: str, new_slot: str) -> tuple[Command, ...]:
    """The switch: the new slot's instances start at boot (the old slot's stop doing so at finish)."""
    new = units(config, layout, host, new_slot)
    if not new:
        return ()
    return (
        cmd.systemctl(
            "enable",
            "--quiet",
            "--no-reload",
            *new,
            description=f"start {len(new)} process instance(s) of slot {new_slot} at boot",
        ),
    )


def stop_old(config: Config, layout: Layout, old_slot: str | None) -> tuple[Command, ...]:
    """Finish: every process's instances in the old slot get their stop signal (systemd waits up to
    their stop timeout, then kills what is left) and no longer start at boot. On every host, for every
    process: one that moved to other hosts stops here as well."""
    if old_slot is None or not config.processes:
        return ()
    patterns = [layout.process_units(name, old_slot) for name in config.processes]
    return (
        cmd.systemctl(
            "stop",
            "--no-block",
            *patterns,
            description=f"stop the processes of slot {old_slot}: their warm shutdown (up to "
            f"{max(p.stop_timeout for p in config.processes.values())}s), carried out by systemd",
        ),
        unboot(layout, patterns, f"the processes of slot {old_slot} do not start at boot"),
    )


#: Removes the links in the folder "$1" that match each pattern after it (a pattern is expanded by the
#: shell, in that folder only; one that matches nothing removes nothing).
_UNBOOT = 'cd "$1" && shift && for pattern; do rm -f -- $pattern; done'


def unboot(layout: Layout, patterns: list[str], description: str) -> Command:
    """The instances matching `patterns` (`<app>-<process>@<slot>-*.service`) no longer start at boot:
    their links in multi-user.target.wants go (systemctl disable takes no pattern)."""
    wants = f"{layout.unit_dir}/multi-user.target.wants"
    return Command(("sh", "-c", _UNBOOT, "sh", wants, *patterns), description, sudo=True)


def back(
    config: Config,
    layout: Layout,
    host: str,
    old_slot: str | None,
    new_slot: str,
    services: Mapping[str, str],
) -> tuple[Command, ...]:
    """After a failure (abort before the switch, revert after it): stop the new slot's instances, then
    start again the old slot's singletons that ran before the push (`services`: the units' states
    then); their new instance is stopped first: never two at once."""
    names = on_host(config, host)
    if not names:
        return ()
    out: list[Command] = [
        cmd.systemctl(
            "stop",
            *[layout.process_units(name, new_slot) for name in names],
            description=f"stop the processes of slot {new_slot}",
            check=False,
        )
    ]
    if old_slot is not None:
        old = [
            unit
            for unit in (layout.process_unit(name, old_slot, 1) for name in _singletons(config, host))
            if services.get(unit) == "active"
        ]
        if old:
            out.append(cmd.systemctl("start", *old, description=f"start {', '.join(old)} again"))
    return tuple(out)


def instance_states(
    config: Config, layout: Layout, host: str, services: Mapping[str, str], live: str | None
) -> list[dict[str, str]]:
    """For `deploy status`: each instance `host` runs in the live slot, and any other instance of the
    app's processes that is not stopped (an old one in its warm shutdown, one left by a failed push)."""
    out: list[dict[str, str]] = []
    for name, process in config.processes.items():
        for slot in cmd.SLOTS:
            for index in range(1, process.instances + 1):
                unit = layout.process_unit(name, slot, index)
                state = services.get(unit, "unknown")
                expected = slot == live and host in config.process_hosts(name)
                if expected or state not in ("inactive", "unknown"):
                    out.append({"process": name, "unit": unit, "state": state})
    return out


def journal_argv(layout: Layout, process: str, lines: int, follow: bool) -> tuple[str, ...]:
    """`deploy logs --process NAME`: the journal of every instance of one process, both slots."""
    return (
        "journalctl",
        "--no-pager",
        "-n",
        str(lines),
        "-u",
        f"{layout.app}-{process}@*.service",
        *(("-f",) if follow else ()),
    )
