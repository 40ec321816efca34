"""Pure builders of the remote commands a push, rollback or setup runs: argument tuples, never strings.

Every builder returns a `Command` whose argv is quoted in exactly one place (`Command.line`).
Shell snippets appear only as fixed `sh -c` programs whose variable parts arrive as positional
arguments ("$1", "$2"), so no value from deploy.yaml is ever spliced into shell text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from deploy.config.model import Config
from deploy.layout import Layout, layout_for
from deploy.plan import Action, Command, Upload
from deploy.remote.scripts import script

#: Slot names of the blue/green pair on every host.
SLOTS = ("blue", "green")

#: Suffix of temporary names that are renamed over their target (atomic switch).
TMP = ".deploy-tmp"


def other_slot(slot: str | None) -> str:
    """The idle slot when `slot` is live (blue when nothing is live yet)."""
    return "green" if slot == "blue" else "blue"


#: Runs on the host (python3, as root) for every directory deploy makes and every path it removes or
#: writes into: root never follows a link the app user could have made. A symlink is followed only if
#: root owns it and it sits in a folder only root can change (e.g. Debian's /var/run -> /run);
#: everything else is reached through file descriptors opened with O_NOFOLLOW, so a link or a hard
#: link planted in a folder the app owns (shared/...) can never redirect a chown, chmod or rm.
#:   dir PATH OWNER GROUP MODE   make PATH (and missing parents, root 0755); set its owner and mode
#:   file PATH OWNER GROUP MODE  make the file PATH if missing (never emptied; its folder must exist); set
#:                               its owner and mode
#:   rm ROOT REL...              remove ROOT/REL, only the release's own copy: nothing is removed
#:                               through a link (a link itself is removed, never what it points at)
#:   check PATH                  refuse unless every folder on the way to PATH only root can change
#:   write PATH MODE OWNER GROUP SHA256 [base64]
#:                               (after check) standard input to PATH under a temporary name, renamed
#:                               over PATH once its bytes have SHA256 (exit 74 and nothing replaced if not)
#:   link TARGET PATH            (after check) PATH becomes a link to TARGET, renamed over the old one
#: It prints "deploy: refused: ..." and exits 73 when a path is not safe to touch.
SAFE_FS = script("safe_fs.py")


# --- files and links ------------------------------------------------------------------------------


def make_dir(
    path: str, owner: str = "root", group: str = "root", mode: int = 0o755, description: str = ""
) -> Command:
    """Make `path` (and missing parents, root 0755) and set its owner and mode, never through a link."""
    return Command(
        ("python3", "-I", "-S", "-c", SAFE_FS, "dir", path, owner, group, f"{mode:04o}"),
        description or f"directory {path}",
        sudo=True,
    )


def make_file(path: str, owner: str, group: str, mode: int = 0o600, description: str = "") -> Command:
    """Make the empty file `path` if it is missing (an existing one keeps its contents) and set its owner
    and mode, never through a link."""
    return Command(
        ("python3", "-I", "-S", "-c", SAFE_FS, "file", path, owner, group, f"{mode:04o}"),
        description or f"file {path}",
        sudo=True,
    )


def remove_tree(path: str, description: str = "") -> Command:
    """Remove `path` (a link itself, never what it points at)."""
    folder, name = path.rstrip("/").rsplit("/", 1)
    return remove_paths(folder or "/", [name], description or f"remove {path}")


def root_writes(path: str, argv: tuple[str, ...]) -> tuple[str, ...]:
    """`argv`, run once `SAFE_FS check` showed that only root can change the folders on the way to `path`."""
    guard = 'python3 -I -S -c "$1" check "$2" && shift 2 && exec "$@"'
    return ("sh", "-c", guard, "safe", SAFE_FS, path, *argv)


def symlink(target: str, link: str, description: str = "") -> Command:
    """Point `link` at `target` atomically: a new link under a temporary name, renamed over the old
    (in a folder only root can change, as `root_writes`)."""
    return Command(
        ("python3", "-I", "-S", "-c", SAFE_FS, "link", target, link),
        description or f"{link} -> {target}",
        sudo=True,
    )


def write_stdin_argv(
    path: str, mode: int, owner: str, group: str, sha256: str, decode: bool = False
) -> tuple[str, ...]:
    """The command that writes its standard input (base64 if `decode`) to `path` atomically.

    The bytes written must have the SHA-256 `sha256` (which also pins their length) before the
    temporary file is renamed into place: input cut short (a connection lost while a script or an
    upload was sent) never replaces a file, and the partial file is removed (exit 74). Nothing is
    written in a folder a user other than root can change (exit 73), and the temporary file is made
    anew (never through a link) and given its owner and mode before the rename. One program on the
    host does all of it (`SAFE_FS write`).
    """
    encoding = ("base64",) if decode else ()
    mode_text = f"{mode:04o}"
    return ("python3", "-I", "-S", "-c", SAFE_FS, "write", path, mode_text, owner, group, sha256, *encoding)


def link_release_files(previous: str, release: str) -> Command:
    """Hard-link every file of the previous release into the new one (unchanged files are not sent again)."""
    return Command(
        root_writes(f"{release}/.", ("cp", "-al", "--", f"{previous}/.", release)),
        "reuse unchanged files of the previous release (hard links)",
        sudo=True,
    )


def remove_paths(root: str, relative: list[str], description: str) -> Command:
    """Remove `root`'s own `relative` paths: never through a link (a path under one is not `root`'s)."""
    return Command(("python3", "-I", "-S", "-c", SAFE_FS, "rm", root, *relative), description, sudo=True)


def prune_empty_dirs(root: str) -> Command:
    """Remove the folders under `root` that are empty (bottom-up, never through a link)."""
    return Command(
        ("python3", "-I", "-S", "-c", SAFE_FS, "prune", root), "drop folders left empty", sudo=True
    )


def extract_tar(archive: str, directory: str, description: str) -> Command:
    """Unpack a tar into `directory`, unlinking each file first (hard-linked files are never changed).

    Each file gets the mode, owner and group the archive names (`artifact.tarball`: owner root, the
    group by name), and the folders tar creates are not writable by others (umask 022).
    """
    return Command(
        root_writes(
            f"{directory}/.",
            (
                "sh",
                "-c",
                'umask 022 && tar -x -U --same-owner --same-permissions -f "$1" -C "$2" && rm -f -- "$1"',
                "untar",
                archive,
                directory,
            ),
        ),
        description,
        sudo=True,
    )


def append_line(path: str, line: str, description: str) -> Command:
    return Command(
        root_writes(path, ("sh", "-c", 'printf "%s\\n" "$2" >> "$1"', "append", path, line)),
        description,
        sudo=True,
    )


# --- packages and users ---------------------------------------------------------------------------


def apt_install(packages: list[str]) -> Command:
    return Command(
        (
            "sh",
            "-c",
            "export DEBIAN_FRONTEND=noninteractive && apt-get update -q && "
            'apt-get install -y -q --no-install-recommends -- "$@"',
            "apt",
            *packages,
        ),
        f"install Debian packages: {' '.join(packages)}",
        sudo=True,
    )


def create_system_user(user: str, home: str) -> Command:
    return Command(
        (
            "useradd",
            "--system",
            "--user-group",
            "--home-dir",
            home,
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ),
        f"system user {user}",
        sudo=True,
    )


# --- python environments --------------------------------------------------------------------------


def pip_install(
    venv: str, pip_wheel: str, wheels: str, requirements: str, compile_bytecode: bool = False
) -> Command:
    """Fill `venv` from the shipped wheels; its bytecode compiled later (deploy.remote.bytecode) unless
    `compile_bytecode` (push.bytecode: install)."""
    return Command(
        (
            f"{venv}/bin/python",
            f"{pip_wheel}/pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--compile" if compile_bytecode else "--no-compile",
            "--no-index",
            "--find-links",
            wheels,
            "-r",
            requirements,
        ),
        "install the requirements from the shipped wheels",
        sudo=True,
    )


def new_venv(venv: str, python: str = "python3") -> Command:
    return Command(
        ("sh", "-c", 'rm -rf -- "$1" && "$2" -m venv --without-pip "$1"', "venv", venv, python),
        f"new virtualenv {venv}",
        sudo=True,
    )


def mark_complete(venv: str) -> Command:
    marker = f"{venv}/.deploy-complete"
    return Command(root_writes(marker, ("touch", "--", marker)), "mark the virtualenv complete", sudo=True)


# --- services ------------------------------------------------------------------------------------


def systemctl(*args: str, description: str = "", check: bool = True) -> Command:
    return Command(("systemctl", *args), description or f"systemctl {' '.join(args)}", sudo=True, check=check)


def daemon_reload() -> Command:
    return systemctl("daemon-reload", description="reload systemd units")


#: Suffix of a new Nginx file uploaded beside the file it replaces, until `NGINX_APPLY` puts it in place.
STAGED = ".deploy-new"

#: Runs on the host (python3, as root): puts staged Nginx files in place, points links, removes files,
#: then runs `nginx -t`. If Nginx rejects the result, every path touched is put back exactly as it
#: was (bytes, mode, owner; a link's target; a path that did not exist is removed) and Nginx is not
#: reloaded, so no later restart, reboot or certbot reload meets a broken configuration. Signals that
#: end a push (SIGHUP from a lost connection, SIGTERM, SIGINT) wait until it is done.
#: Arguments: operations, each "file PATH" (PATH + STAGED -> PATH), "link PATH TARGET", "remove PATH".
NGINX_APPLY = script("nginx_apply.py").replace("@STAGED@", STAGED)


#: Debian's own site claims the default server on port 80, as deploy's catch-all does.
DEBIAN_DEFAULT_SITE = "/etc/nginx/sites-enabled/default"


def nginx_link(config: Config) -> tuple[str, str]:
    """(target, link) that enables the app's Nginx site."""
    layout = layout_for(config)
    return layout.paths.nginx_site, layout.sites_enabled


def nginx_change(
    files: Sequence[tuple[str, bytes, str]],
    links: Sequence[tuple[str, str]] = (),
    removals: Sequence[str] = (),
    description: str = "",
) -> tuple[Action, ...]:
    """Change Nginx's configuration as one unit: new files (path, content, description) are uploaded
    beside their targets (`STAGED`), then `NGINX_APPLY` puts them, the `links` (target, link) and the
    `removals` in place, tests, and reloads, or puts every previous file back when the test fails."""
    actions: list[Action] = [
        Upload(f"{path}{STAGED}", content, 0o644, "root", "root", description=what)
        for path, content, what in files
    ]
    ops: list[str] = []
    for path, _content, _what in files:
        ops += ["file", path]
    for target, link in links:
        ops += ["link", link, target]
    for path in removals:
        ops += ["remove", path]
    actions.append(
        Command(
            ("python3", "-c", NGINX_APPLY, *ops),
            description
            or "check the new Nginx configuration, then reload Nginx (graceful); "
            "the previous files come back if the check fails",
            sudo=True,
        )
    )
    return tuple(actions)


def run_in_release(
    layout: Layout,
    directory: str,
    command: str,
    release_id: str,
    environment: str,
    env: Mapping[str, str],
    description: str,
    python_path: str | None = None,
    slot_env: str | None = None,
    unit: str | None = None,
) -> Command:
    """Run a shell command as the app user in a release, with the app's environment (systemd-run).

    `python_path` is put on PYTHONPATH (a src/ layout); `slot_env` is a slot's environment file to
    read as well (what the serving slot was started with). `unit` names the transient unit: systemd
    runs it outside the step's process tree, so a push's release commands are named units that the
    deploy lock's holder can wait for even if the waiting `systemd-run` client is gone.
    """
    setenv = [f"--setenv={key}={value}" for key, value in sorted(env.items())]
    if python_path:
        setenv.append(f"--setenv=PYTHONPATH={python_path}")
    extra = ["--property", f"EnvironmentFile=-{slot_env}"] if slot_env else []
    return Command(
        (
            "systemd-run",
            "--quiet",
            "--wait",
            "--pipe",
            "--collect",
            *([f"--unit={unit}"] if unit else []),
            "--service-type=exec",
            "--property",
            f"User={layout.user}",
            "--property",
            f"Group={layout.user}",
            "--property",
            f"WorkingDirectory={directory}",
            "--property",
            f"EnvironmentFile=-{layout.paths.env_file}",
            *extra,
            f"--setenv=PATH={directory}/.venv/bin:/usr/local/bin:/usr/bin:/bin",
            f"--setenv=VIRTUAL_ENV={directory}/.venv",
            f"--setenv=DEPLOY_RELEASE={release_id}",
            f"--setenv=DEPLOY_ENVIRONMENT={environment}",
            *setenv,
            "--",
            "/bin/sh",
            "-c",
            command,
        ),
        description,
        sudo=True,
    )


#: Runs on the host with python3: waits until the slot answers the health path with 200, and proves
#: the slot's Gunicorn runs the expected release (its working directory), or says why not.
HEALTH_PROBE = script("health_probe.py")


def health_probe(
    layout: Layout, slot: str, domain: str, health_path: str, timeout: int, release_id: str
) -> Command:
    return Command(
        (
            "python3",
            "-c",
            HEALTH_PROBE,
            layout.paths.slot_socket(slot),
            domain,
            health_path,
            str(timeout),
            layout.unit(slot),
            release_id,
        ),
        f"wait until {layout.unit(slot)} answers {health_path} with 200 (up to {timeout}s)",
        sudo=True,
    )


#: Reads a slot's journal since the push last started it: the start step writes the slot's env file
#: just before it restarts the unit, so earlier runs (and earlier pushes' errors) are left out.
SLOT_LOG = (
    'since=$(stat -c %Y -- "$1" 2>/dev/null) || since=0; '
    'exec journalctl --no-pager --quiet -o short-unix -n "$3" --since "@$since" -u "$2"'
)


def slot_log(layout: Layout, slot: str, lines: int = 400) -> Command:
    """The slot's log since its last start (each line naming its process, for `deploy.push.applog`)."""
    return Command(
        ("sh", "-c", SLOT_LOG, "sh", layout.slot_env(slot), layout.unit(slot), str(lines)),
        f"{layout.unit(slot)}'s log since the push started it (at most {lines} lines)",
        sudo=True,
        check=False,
    )


def drain_unit(layout: Layout, slot: str) -> str:
    """The transient unit that stops a slot a little after it stopped taking new connections."""
    return f"{layout.app}-drain-{slot}"


def stop_after_drain(layout: Layout, slot: str, drain_seconds: float) -> Command:
    """Stop a slot that no longer takes new connections, once those already queued were accepted.

    A transient systemd timer on the host does it, so the push need not wait, and a push killed right
    after its switch still stops the old slot. It never stops a slot that `live.sock` points at.
    """
    unit = drain_unit(layout, slot)
    stop = 'test "$(readlink -- "$1")" = "$2" || exec systemctl stop -- "$3"'
    return Command(
        (
            "systemd-run",
            "--quiet",
            "--collect",
            f"--unit={unit}",
            f"--on-active={drain_seconds:g}s",
            "--timer-property=AccuracySec=100ms",
            "/bin/sh",
            "-c",
            stop,
            "drain",
            layout.paths.upstream_socket,
            layout.paths.slot_socket(slot),
            layout.unit(slot),
        ),
        f"stop {layout.unit(slot)} {drain_seconds:g}s from now (connections already queued are served first)",
        sudo=True,
    )


def start_at_boot(layout: Layout, slot: str) -> tuple[Command, Command]:
    """Start `slot` when the host boots, and not the other one (the live slot must come back by itself).

    `--no-reload`: only the boot-time links change, nothing needs the running manager to know.
    """
    other = other_slot(slot)
    return (
        systemctl(
            "enable",
            "--quiet",
            "--no-reload",
            layout.unit(slot),
            description=f"start {layout.unit(slot)} at boot",
        ),
        systemctl(
            "disable",
            "--quiet",
            "--no-reload",
            layout.unit(other),
            description=f"do not start {layout.unit(other)} at boot",
            check=False,
        ),
    )


def cancel_drain(layout: Layout, slot: str) -> Command:
    """Cancel a pending stop of `slot` (it is about to serve again)."""
    unit = drain_unit(layout, slot)
    return Command(
        ("systemctl", "stop", f"{unit}.timer", f"{unit}.service"),
        f"cancel any pending stop of {layout.unit(slot)}",
        sudo=True,
        check=False,
    )


# --- audit, pruning ------------------------------------------------------------------------------


def history_entry(layout: Layout, entry: dict[str, object]) -> Command:
    return append_line(layout.history, json.dumps(entry, sort_keys=True), "append to the audit log")


def prune(layout: Layout, releases: list[str]) -> Command:
    return remove_paths(layout.paths.releases, releases, f"remove old releases: {', '.join(releases)}")


# --- the deploy lock ------------------------------------------------------------------------------

#: Holds the deploy lock for as long as the pushing process keeps this command's input open: an `flock`
#: on the lock file, plus a JSON record of the holder. The holder sends "beat" lines; "release" ends it
#: cleanly and removes the record. If the input closes or no beat arrives within the lease (the pushing
#: process was killed, or its network is gone), the record stays behind, so the next push can say which
#: push was interrupted.
#:
#: The lock is never free while work of its push still runs on the host. Every step holds a shared
#: flock on the work file ($6) for its whole life, inherited by pip, release commands and every other
#: child; release commands also run as transient units named after $7. Before it ends, however it
#: ends, the holder takes an exclusive flock on the work file (so every step has exited) and waits
#: until no release unit is active; meanwhile its record says "draining" and names the step that
#: was running (the guard writes it into the work file). A push that finds the lock draining waits up
#: to $8 seconds for it. A new holder also checks the work file (its previous holder may have been
#: ended by `deploy lock release`) and waits up to $8 seconds before it takes over.
#:
#: It answers on its output: "WAITING <record>" (waiting for a draining holder), "BUSY" + the record
#: (held), "WORKING <step>" (an earlier push's step still runs), "STILLWORKING <step>" (it still ran
#: after the wait: nothing taken), "STALE <record>" (taken over from an interrupted push), "LOCKED <pid>
#: <stamp>" (the work file's inode, size, mtime and ctime before the holder emptied it: facts gathered
#: while the lock was taken still hold if the file had that stamp when they were read).
LOCK_HOLDER = script("lock_holder.sh")


def lock_holder(
    layout: Layout, record: dict[str, object], lease_seconds: int, wait_seconds: int, create: bool = False
) -> Command:
    """Take the deploy lock; `create` makes its directory first (setup, on a host not set up yet).

    `wait_seconds`: how long to wait for an interrupted push's last step to finish before giving up.
    """
    return Command(
        (
            "bash",
            "-c",
            LOCK_HOLDER,
            "lock",
            layout.lock_file,
            layout.lock_info,
            json.dumps(record, sort_keys=True),
            str(lease_seconds),
            "create" if create else "exists",
            layout.work_file,
            layout.release_units,
            str(wait_seconds),
        ),
        "take the deploy lock (held while this push runs)",
        sudo=True,
    )


#: Runs before every step (and every command) of a push that holds the lock: a shared flock on the
#: work file for the step's whole life (the command replaces this shell, so it and all its children
#: inherit it), "<pid> <step>" appended to that file (the holder empties it when it takes the lock),
#: and a check that the lock is still this push's:
#: its holder ($3) runs, the record is its own and not draining (released by `deploy lock release`,
#: or the lease ran out). Otherwise nothing of the step runs and it exits 75.
STEP_GUARD = script("step_guard.sh")

#: The exit code of a step that did not run because the push no longer holds the lock.
LOST_LOCK = 75


def guarded(layout: Layout, holder_pid: int, step: str, argv: tuple[str, ...]) -> tuple[str, ...]:
    """`argv` run under `STEP_GUARD`: only while holder `holder_pid` holds the lock, and never orphaned."""
    return ("sh", "-c", STEP_GUARD, "guard", layout.work_file, layout.lock_info, str(holder_pid), step, *argv)


#: Prints the pid of the lock's holder when the record's process still runs: the pid's start time
#: (field 22 of /proc/<pid>/stat; the fields after the parenthesised name count from 3) and the
#: SHA-256 of its command line must both be those the holder recorded. A pid that ended and was
#: reused by another process fails the check: that process is never signalled.
HOLDER_CHECK = script("holder_check.sh")


def lock_release_forced(layout: Layout) -> Command:
    """End the holder of the lock (if the record's process is still that holder) and remove its record.

    Prints "ENDED <pid>" when it signalled the holder, "GONE <pid>" when the record names a process
    that is no longer the holder (it ended; its pid may belong to another process now: nothing is
    signalled), nothing when there was no record.
    """
    script = HOLDER_CHECK + (
        'if [ -e "$2" ]; then\n'
        '  if pid=$(holder "$2"); then kill -TERM "$pid" 2>/dev/null; echo "ENDED $pid"; '
        'else echo "GONE $pid"; fi\n'
        "fi\n"
        'rm -f -- "$2"; flock -w 5 "$1" true\n'
    )
    return Command(
        ("sh", "-c", script, "unlock", layout.lock_file, layout.lock_info),
        "end the lock holder (its pid, start time and command line checked), remove the lock record",
        sudo=True,
    )
