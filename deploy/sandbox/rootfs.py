"""Build and cache the Debian 12 root filesystem that sandbox hosts boot from, and write into it safely.

The cache is keyed by the package list: change `PACKAGES` and the next `deploy sandbox up` builds a new
root filesystem beside the old one. Files are written into a root filesystem without ever following a
symbolic link, so an absolute link inside it cannot redirect a write to this machine's own files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: Debian release the hosts run.
SUITE = "bookworm"

#: Every Debian package a sandbox host has. The hosts have no route to the outside world, so whatever
#: `deploy` needs on a server must be here. Extend this tuple; the cache key follows it.
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "nginx-light",
    "iproute2",
    "certbot",
    # debootstrap does not resolve virtual packages: python3-cryptography (for certbot) needs the
    # python3-cffi-backend-api-* that this package provides.
    "python3-cffi-backend",
    "ca-certificates",
    "sudo",
    "rsync",
    "procps",
    "curl",
    "less",
    # Services deploy sets up beside the app (services: in deploy.yaml).
    "postgresql",
    "redis-server",
)

#: Bump when the preparation below changes in a way that needs a rebuilt cache.
RECIPE_VERSION = 1

#: Units that would only try to reach the outside world from a host that has no route there.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "apt-daily.service",
    "apt-daily-upgrade.service",
)

#: Services whose packages are installed (a host has no route to a mirror) but which a fresh server
#: would not run yet: `deploy setup` enables them when deploy.yaml asks for them.
DISABLED_UNITS = (
    "multi-user.target.wants/postgresql.service",
    "multi-user.target.wants/redis-server.service",
)

#: sshd settings for every host: only the host key we generate, keys only.
SSHD_CONFIG = """\
# Written by deploy sandbox: the host key is generated per host before boot.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
"""

DEFAULT_MIRROR = "http://deb.debian.org/debian"

Progress = Callable[[str], None]


class SandboxError(Exception):
    """Something the sandbox cannot do; `code` 2 means a missing prerequisite, 1 a failure."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def cache_dir() -> Path:
    """Where built root filesystems are kept: $DEPLOY_CACHE_DIR, or /var/cache/deploy."""
    return Path(os.environ.get("DEPLOY_CACHE_DIR") or "/var/cache/deploy")


def cache_key(packages: tuple[str, ...], suite: str = SUITE) -> str:
    """A short digest of what goes into the root filesystem."""
    recipe = json.dumps(
        {
            "suite": suite,
            "packages": sorted(set(packages)),
            "recipe": RECIPE_VERSION,
            "sshd": SSHD_CONFIG,
            "masked": MASKED_UNITS,
            "disabled": DISABLED_UNITS,
        },
        sort_keys=True,
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def debian_mirror() -> str:
    """The Debian mirror: $DEPLOY_DEBIAN_MIRROR, else the first one apt on this machine uses."""
    configured = os.environ.get("DEPLOY_DEBIAN_MIRROR")
    if configured:
        return configured
    sources: list[Path] = [Path("/etc/apt/sources.list")]
    sources += sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    sources += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for source in sources:
        try:
            text = source.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            match = re.match(r"^URIs:\s*(https?://\S+)", line) or re.match(
                r"^deb\s+(?:\[[^]]*\]\s+)?(https?://\S+)", line
            )
            if match and "security" not in match.group(1) and "debian" in match.group(1):
                return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_rootfs(
    packages: tuple[str, ...] = PACKAGES, cache: Path | None = None, progress: Progress | None = None
) -> Path:
    """Return the cached root filesystem for `packages`, building it with debootstrap if missing."""
    say = progress or (lambda _message: None)
    cache = cache or cache_dir()
    target = cache / f"rootfs-{SUITE}-{cache_key(packages)}"
    with locked(cache / ".build.lock"):
        if (target / "usr/lib/os-release").exists():
            say(f"root filesystem: cached at {target}")
            return target
        for stale in cache.glob(f"rootfs-{SUITE}-*.partial"):
            say(f"root filesystem: removing an unfinished build {stale}")
            shutil.rmtree(stale)
        partial = target.with_name(target.name + ".partial")
        mirror = debian_mirror()
        say(f"root filesystem: building Debian {SUITE} with debootstrap from {mirror} (about a minute, once)")
        started = time.monotonic()
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(packages)}",
            SUITE,
            str(partial),
            mirror,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = (result.stdout + result.stderr).strip().splitlines()[-15:]
            shutil.rmtree(partial, ignore_errors=True)
            raise SandboxError("debootstrap failed:\n  " + "\n  ".join(log))
        prepare_rootfs(partial)
        partial.rename(target)
        say(f"root filesystem: built in {time.monotonic() - started:.0f}s at {target}")
        return target


def prepare_rootfs(root: Path) -> None:
    """Make a fresh debootstrap tree fit to boot as a sandbox host (done once, in the cache)."""
    for key in root.joinpath("etc/ssh").glob("ssh_host_*"):
        key.unlink()
    write_inside(root, "etc/ssh/sshd_config.d/deploy-sandbox.conf", SSHD_CONFIG)
    for unit in MASKED_UNITS:
        symlink_inside(root, f"etc/systemd/system/{unit}", "/dev/null")
    for link in DISABLED_UNITS:
        remove_inside(root, f"etc/systemd/system/{link}")
    remove_inside(root, "etc/resolv.conf")
    write_inside(root, "etc/machine-id", "")
    for deb in root.joinpath("var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def _open_dir(root: Path, parts: list[str], create: bool) -> int:
    """Open the directory root/parts without following any symbolic link; return its descriptor."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags)
    try:
        for part in parts:
            if part in ("", ".", ".."):
                raise SandboxError(f"refusing a path with {part!r} inside {root}")
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                raise SandboxError(
                    f"{root}/{'/'.join(parts)}: {part} is not a plain directory ({exc.strerror})"
                ) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_inside(
    root: Path, relative: str, content: str, mode: int = 0o644, dir_mode: int | None = None
) -> None:
    """Write a file at `relative` inside `root`, never following a symbolic link on the way."""
    *parents, name = relative.strip("/").split("/")
    fd = _open_dir(root, parents, create=True)
    try:
        if dir_mode is not None:
            os.chmod(fd, dir_mode)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=fd)
        out = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd
        )
        try:
            os.fchmod(out, mode)
            os.fchown(out, 0, 0)
            os.write(out, content.encode())
        finally:
            os.close(out)
    finally:
        os.close(fd)


def symlink_inside(root: Path, relative: str, target: str) -> None:
    """Create (or replace) the symbolic link `relative` inside `root`, pointing at `target`."""
    *parents, name = relative.strip("/").split("/")
    fd = _open_dir(root, parents, create=True)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)
        os.symlink(target, name, dir_fd=fd)
    finally:
        os.close(fd)


def remove_inside(root: Path, relative: str) -> None:
    """Remove the file or link `relative` inside `root` if it is there."""
    *parents, name = relative.strip("/").split("/")
    fd = _open_dir(root, parents, create=False)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
