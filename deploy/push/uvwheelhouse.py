"""uv builds the wheelhouse here: one resolution for the host, then parallel downloads and builds.

`uv pip compile --python-platform ... --python-version ...` resolves the requirements for the host's
platform and full Python version (markers included) and writes a `pylock.toml` with each file's URL
and sha256. Of each distribution the wheel pip would pick for the host is then downloaded, several at
once, checked against its sha256 and kept in a store shared by every wheelhouse (a rebuild after a
requirements change downloads only what is new); those published only as a source archive are built
with `pip wheel --no-deps` meanwhile. The result is the set of wheels `pip download` gives
(deploy.push.artifact, the pip path), which stays the fallback: whenever this path cannot promise the
same set (a pip setting uv cannot be given, a source archive with compiled code, a resolution uv
refuses, a machine deploy has no uv for), `build` returns the reason and pip builds the wheelhouse.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import platform as here
import shutil
import ssl
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from deploy.push.pipconfig import UvSettings, uv_options
from deploy.push.pipwheels import Platform, build_pure_wheels, default_cache
from deploy.push.uvtool import UV_VERSION, UvError, pinned, uv_wheel

#: Files downloaded at once.
DOWNLOADS = 8
#: Source archives built at once (each is a `pip wheel` process).
BUILDS = 2


class Fallback(Exception):
    """This path cannot promise pip's set of wheels; the message says why (pip then builds it)."""


@dataclass(frozen=True)
class File:
    """One file of the resolution: its name, where it is (a URL, or a path for a local folder) and sha256."""

    name: str
    url: str
    sha256: str | None


@dataclass(frozen=True)
class Locked:
    """A distribution the host installs: its wheel for the host, or None when it has only a source archive."""

    name: str
    version: str
    wheel: File | None


def local_uv(cache: Path, say: Callable[[str], None] | None = None) -> Path:
    """The uv program for this machine: the pinned wheel deploy ships to hosts (deploy.push.uvtool),
    unpacked once into `cache` (the user's wheel cache, whatever cache a wheelhouse is built in).
    Fallback where deploy has no uv for this machine."""
    libc, version = here.libc_ver()
    if sys.platform != "linux" or libc != "glibc":
        raise Fallback(f"deploy ships uv for Linux with glibc, not {sys.platform} {libc}".rstrip())
    machine = here.machine()
    try:
        pinned(machine)
    except UvError as exc:
        raise Fallback(str(exc)) from None
    program = cache / "uv" / f"uv-{UV_VERSION}-{machine}"
    if program.is_file():
        return program
    try:
        wheel = uv_wheel(Platform(here.python_version(), machine, "glibc", version), cache, say)
    except UvError as exc:
        raise Fallback(str(exc)) from None
    with (
        tempfile.NamedTemporaryFile(dir=program.parent, delete=False) as out,
        zipfile.ZipFile(io.BytesIO(wheel.data)) as archive,
    ):
        out.write(archive.read(wheel.entry))
    os.chmod(out.name, 0o700)
    os.replace(out.name, program)
    return program


def uv_target(platform: Platform) -> str:
    """uv's `--python-platform` for the host: its machine and glibc."""
    major, _, minor = platform.libc_version.partition(".")
    if platform.libc != "glibc" or not (major.isdigit() and minor.isdigit()):
        raise Fallback(f"uv resolves for glibc hosts; this one has {platform.libc or 'no known libc'}")
    return f"{platform.machine}-manylinux_{major}_{minor}"


def supported_tags(platform: Platform) -> list[Tag]:
    """The tags a wheel for the host may carry, best first: what `pip download --python-version
    --implementation cp --abi cpXY --abi abi3 --abi none --platform ...` accepts, in pip's order."""
    minor = int(platform.python_version.split(".")[1])
    version = (3, minor)
    platforms = platform.pip_platforms()
    abis = [f"cp3{minor}", "abi3", "none"]
    tags = [*cpython_tags(version, abis, platforms), *compatible_tags(version, f"cp3{minor}", platforms)]
    return list(dict.fromkeys(tags))


def pick_wheel(names: list[str], platform: Platform, order: dict[Tag, int] | None = None) -> str | None:
    """The wheel pip picks for the host among files of one version: the one with the best tag."""
    ranks = order if order is not None else {tag: i for i, tag in enumerate(supported_tags(platform))}
    best: tuple[int, str] | None = None
    for name in names:
        try:
            tags = parse_wheel_filename(name)[3]
        except InvalidWheelFilename:
            continue
        rank = min((ranks[t] for t in tags if t in ranks), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, name)
    return best[1] if best else None


def uv_compile(
    uv: Path, requirements: Path, platform: Platform, settings: UvSettings, lock: Path
) -> subprocess.CompletedProcess[str]:
    """Resolve `requirements` for the host into `lock` (pylock.toml), as pip would resolve them: every
    index is searched for the best version (pip's way), not only the first that has the package."""
    command = [
        str(uv),
        "pip",
        "compile",
        "--quiet",
        "--no-header",
        "--format",
        "pylock.toml",
        "--python-platform",
        uv_target(platform),
        "--python-version",
        platform.python_version,
        "--index-strategy",
        "unsafe-best-match",
        *settings.options,
        "--output-file",
        str(lock),
        str(requirements),
    ]
    # Only pip's settings choose the files (uv's own configuration and UV_* variables are left out).
    kept = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k == "UV_CACHE_DIR"}
    env = {**kept, **settings.env, "UV_NO_CONFIG": "1"}
    return subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=requirements.parent, env=env
    )


def read_lock(lock: Path, platform: Platform) -> list[Locked]:
    """The distributions of `lock` whose marker holds for the host, each with the wheel pip would pick."""
    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    environment = {**platform.marker_environment(), "extra": ""}
    order = {tag: i for i, tag in enumerate(supported_tags(platform))}
    out: list[Locked] = []
    for package in data.get("packages", []):
        name, version = str(package.get("name", "")), str(package.get("version", ""))
        try:
            if "marker" in package and not Marker(str(package["marker"])).evaluate(environment):
                continue
        except InvalidMarker:
            raise Fallback(f"{name}: uv wrote a marker deploy cannot read") from None
        if not {"directory", "vcs", "archive"}.isdisjoint(package):
            raise Fallback(f"{name} is not from a package index")
        files = {}
        for wheel in package.get("wheels", []):
            where = str(wheel.get("url") or wheel.get("path") or "")
            if wheel.get("path") and not wheel.get("url"):
                where = (lock.parent / where).resolve().as_uri()
            filename = str(wheel.get("name") or urllib.parse.unquote(where.rsplit("/", 1)[-1]).split("#")[0])
            files[filename] = File(filename, where, wheel.get("hashes", {}).get("sha256"))
        chosen = pick_wheel(list(files), platform, order)
        if chosen is None and not package.get("sdist"):
            raise Fallback(f"{name} {version} has no file for the host")
        out.append(Locked(name, version, files[chosen] if chosen else None))
    return out


def fetch(file: File, store: Path, settings: UvSettings) -> Path:
    """`file` in the shared store, downloaded and checked against its sha256 unless it is there."""
    key = file.sha256 or hashlib.sha256(file.url.encode()).hexdigest()
    kept = store / key[:2] / key / file.name
    if kept.is_file():
        return kept
    if urllib.parse.urlsplit(file.url).scheme not in {"https", "http", "file"}:
        raise Fallback(f"{file.name} is at {file.url}, which deploy does not download from")
    kept.parent.mkdir(parents=True, exist_ok=True)
    context = ssl.create_default_context(cafile=settings.cert) if settings.cert else None
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=kept.parent, delete=False) as out:
        try:
            with urllib.request.urlopen(file.url, timeout=settings.timeout, context=context) as response:  # noqa: S310
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except (OSError, http.client.HTTPException) as exc:
            os.unlink(out.name)
            raise Fallback(f"downloading {file.name} failed: {exc}") from None
    if file.sha256 is not None and digest.hexdigest() != file.sha256:
        os.unlink(out.name)
        raise Fallback(f"{file.name}: sha256 {digest.hexdigest()} is not the index's {file.sha256}")
    os.replace(out.name, kept)
    return kept


def place(source: Path, folder: Path) -> None:
    """`source` into the wheelhouse `folder`: a hard link where the file system allows one."""
    target = folder / source.name
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def build(
    requirements: Path,
    platform: Platform,
    folder: Path,
    cache: Path,
    say: Callable[[str], None] | None = None,
) -> None:
    """Fill `folder` with the wheels that install `requirements` on `platform`. Raises Fallback when
    pip must do it instead (nothing of this path's is then left in `folder`)."""
    settings, why = uv_options()
    if settings is None:
        raise Fallback(why)
    uv = local_uv(default_cache(), say)
    lock = folder / ".deploy-uv" / "pylock.toml"
    lock.parent.mkdir(parents=True, exist_ok=True)
    done = uv_compile(uv, requirements, platform, settings, lock)
    if done.returncode != 0:
        raise Fallback("uv could not resolve the requirements: " + done.stderr.strip()[-300:])
    locked = read_lock(lock, platform)
    built = folder / ".built"
    try:
        with ThreadPoolExecutor(DOWNLOADS) as downloads, ThreadPoolExecutor(BUILDS) as builds:
            fetched = [downloads.submit(fetch, p.wheel, cache / "files", settings) for p in locked if p.wheel]
            sources = [p for p in locked if p.wheel is None]
            made: list[Future[bool]] = [
                builds.submit(build_pure_wheels, [f"{p.name}=={p.version}"], built, say) for p in sources
            ]
            paths = [job.result() for job in fetched]
            for job in made:
                job.result()
        have = {parse_wheel_filename(w.name)[:2] for w in built.glob("*.whl")} if sources else set()
        for item in sources:
            if (canonicalize_name(item.name), Version(item.version)) not in have:
                raise Fallback(f"{item.name} {item.version} is a source archive with compiled code")
    except Fallback:
        for stale in folder.glob("*.whl"):
            stale.unlink()
        raise
    for path in [*paths, *sorted(built.glob("*.whl"))]:
        place(path, folder)
