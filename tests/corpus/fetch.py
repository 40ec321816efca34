"""Fetch the real-app corpus (tests/corpus/apps.json) into a cache, through pip, never into the repo.

Each app is a published sdist, pinned by version and sha256. `pip download --no-deps --no-binary :all:`
fetches it (pip's own index, proxy and certificate settings apply), the sha256 is checked against
apps.json, and the sdist is unpacked into `~/.cache/deploy-corpus/<name>-<version>/` ($DEPLOY_CORPUS_CACHE
overrides the folder). Fetching again is a no-op once an app is unpacked with the pinned hash.

    python -m tests.corpus.fetch            # every app (what .ci/setup runs)
    python -m tests.corpus.fetch flaskbb    # only these
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS_FILE = HERE / "apps.json"
LABELS_DIR = HERE / "labels"
#: Written last into an unpacked app's folder: the sha256 of the sdist it came from.
MARKER = ".deploy-corpus-sha256"


class FetchError(Exception):
    """An app could not be fetched, verified or unpacked (the message says which and why)."""


@dataclass(frozen=True)
class App:
    name: str
    version: str
    sdist: str
    sha256: str
    root: str
    labeller: str

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


def load_apps(path: Path = APPS_FILE) -> list[App]:
    rows = json.loads(path.read_text())
    return [App(**{k: str(v) for k, v in row.items()}) for row in rows]


def cache_root() -> Path:
    override = os.environ.get("DEPLOY_CORPUS_CACHE", "").strip()
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "deploy-corpus"


def app_dir(app: App) -> Path:
    """The folder the sdist is unpacked into (it holds the sdist's own top folder, `app.root`)."""
    return cache_root() / app.key


def project_dir(app: App) -> Path:
    """The app's project root inside the cache."""
    return app_dir(app) / app.root


def is_fetched(app: App) -> bool:
    marker = app_dir(app) / MARKER
    return marker.is_file() and marker.read_text().strip() == app.sha256 and project_dir(app).is_dir()


def fetch_command(names: list[str] | None = None) -> str:
    """The command that fetches the corpus (for skip messages)."""
    return "python -m tests.corpus.fetch" + ("" if not names else " " + " ".join(names))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip_download(app: App, dest: Path) -> Path:
    """Download the pinned sdist with pip into `dest` and return its path."""
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "-q", "-d", str(dest), f"{app.name}=={app.version}"]
    # pip prepares an sdist's metadata after downloading it; with build isolation it fetches the build
    # backend. Should that fail (an offline index without the backend), retry with the installed one.
    errors = []
    for extra in ([], ["--no-build-isolation"]):
        result = subprocess.run(base + extra, capture_output=True, text=True, check=False)
        found = dest / app.sdist
        if found.is_file():
            return found
        errors.append((result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"])
    reason = "; ".join(line[0] for line in errors)
    raise FetchError(f"{app.key}: pip download did not produce {app.sdist}: {reason}")


def _unpack(archive: Path, dest: Path) -> None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                target = (dest / member).resolve()
                if not target.is_relative_to(dest.resolve()):
                    raise FetchError(f"{archive.name}: member {member!r} escapes the folder")
            zipped.extractall(dest)
        return
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def fetch(app: App) -> Path:
    """Make sure `app` is unpacked in the cache; return its project root. Idempotent."""
    if is_fetched(app):
        return project_dir(app)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{app.key}-", dir=root) as tmp:
        work = Path(tmp)
        sdist = _pip_download(app, work / "dl")
        actual = sha256_of(sdist)
        if actual != app.sha256:
            raise FetchError(f"{app.key}: sha256 of {app.sdist} is {actual}, apps.json pins {app.sha256}")
        unpacked = work / "unpacked"
        unpacked.mkdir()
        _unpack(sdist, unpacked)
        if not (unpacked / app.root).is_dir():
            raise FetchError(f"{app.key}: {app.sdist} has no folder {app.root}/ (apps.json 'root')")
        (unpacked / MARKER).write_text(app.sha256 + "\n")
        final = app_dir(app)
        if final.exists():
            shutil.rmtree(final)
        unpacked.rename(final)
    return project_dir(app)


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    apps = load_apps()
    known = {app.name for app in apps}
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(sorted(known))
        print(f"unknown app(s): {', '.join(unknown)} (apps.json has {listed})", file=sys.stderr)
        return 2
    failed = 0
    for app in apps:
        if names and app.name not in names:
            continue
        try:
            path = fetch(app)
        except FetchError as exc:
            print(f"FAILED {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{app.key}: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
