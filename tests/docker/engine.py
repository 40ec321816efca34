"""Test support for a real Docker engine: start dockerd, build a local Debian base image, run docker."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: Cached Debian root filesystem and engine log (the sandbox's host rootfs lives elsewhere under this).
CACHE = Path(os.environ.get("DEPLOY_DOCKER_CACHE", "/var/cache/deploy/docker-base"))
#: The local stand-in for python:3.11-slim-bookworm: Debian 12 with python3, python3-venv, CA certificates.
BASE_IMAGE = "deploy-test/python:3.11-bookworm"
DEBIAN_MIRROR = os.environ.get("DEPLOY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: Build arguments Docker knows without an ARG line; passed through when this machine uses a proxy.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class Unavailable(Exception):
    """The engine or the base image cannot be had on this machine; the message says why."""


def docker_binary() -> str:
    found = shutil.which("docker")
    if found is None:
        raise Unavailable("no 'docker' command: apt-get install docker.io")
    return found


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the docker client; on failure raise with its output (tests never pass secrets in args)."""
    result = subprocess.run([docker_binary(), *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:3])}... exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


@contextmanager
def cache_lock() -> Iterator[None]:
    """One process at a time starts the engine or builds the base image (pytest-xdist workers)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def engine_answers() -> bool:
    return subprocess.run([docker_binary(), "info"], capture_output=True, timeout=30).returncode == 0


def ensure_engine(wait: float = 60) -> str:
    """Start dockerd in the background unless an engine already answers; return what was done.

    A started dockerd is left running when the tests end (so parallel workers and later runs share
    it); its log is CACHE/dockerd.log.
    """
    docker_binary()
    if engine_answers():
        return "already running"
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise Unavailable("no 'dockerd': apt-get install docker.io")
    with cache_lock():
        if engine_answers():
            return "already running"
        log = open(CACHE / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
        subprocess.Popen([dockerd], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if engine_answers():
                return "started"
            time.sleep(0.5)
    raise Unavailable(f"dockerd did not answer within {wait:.0f}s; see {CACHE / 'dockerd.log'}")


def _pip_environment() -> list[str]:
    """How this machine reaches the package index, as ENV lines for the test base image.

    Only what a container can use: the CA bundle (copied into the image) and http(s) index URLs;
    local file:// indexes and find-links stay behind.
    """
    lines = [f"PIP_CERT={HOST_CA_BUNDLE}"]
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"):
        value = os.environ.get(name, "")
        kept = " ".join(v for v in value.split() if not v.startswith("file:"))
        if kept:
            lines.append(f"{name}={kept}")
    return lines


def _debootstrap(rootfs: Path) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise Unavailable("no 'debootstrap': apt-get install debootstrap")
    partial = rootfs.with_name(rootfs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [debootstrap, "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
         "bookworm", str(partial), DEBIAN_MIRROR],
        capture_output=True, text=True, timeout=900,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"debootstrap failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    partial.rename(rootfs)


def ensure_base_image() -> str:
    """Import BASE_IMAGE from a cached debootstrap root filesystem unless the engine has it."""
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    with cache_lock():
        if docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
            return BASE_IMAGE
        rootfs = CACHE / "rootfs"
        if not (rootfs / "usr/bin/python3").exists():
            shutil.rmtree(rootfs, ignore_errors=True)
            _debootstrap(rootfs)
        # pip inside the image must trust the same CAs as this machine.
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        changes: list[str] = []
        for env in ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                    *_pip_environment()]:
            changes += ["--change", f"ENV {env}"]
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--exclude=./var/cache/apt/archives/*.deb",
             "--exclude=./var/lib/apt/lists/*", "-c", "."],
            stdout=subprocess.PIPE,
        )
        imported = subprocess.run([docker_binary(), "import", *changes, "-", BASE_IMAGE],
                                  stdin=tar.stdout, capture_output=True, text=True, timeout=600)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait(timeout=60) != 0 or imported.returncode != 0:
            raise AssertionError(f"importing {BASE_IMAGE} failed: {imported.stderr[-3000:]}")
    return BASE_IMAGE


def proxy_build_args() -> list[str]:
    args: list[str] = []
    for name in PROXY_VARIABLES:
        if os.environ.get(name):
            args += ["--build-arg", name]
    return args


def build(context: Path, tag: str, base_image: str, extra: Sequence[str] = ()) -> None:
    """docker build CONTEXT with the generated Dockerfile and the local base image."""
    docker("build", "--build-arg", f"BASE_IMAGE={base_image}", *proxy_build_args(), *extra,
           "-t", tag, str(context), timeout=900)
