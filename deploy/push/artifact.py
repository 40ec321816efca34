"""The artifact of a push: the project at its committed HEAD, content hashes, and wheels per host platform.

Files come from `git archive` (or, with --allow-dirty, from the working tree as git sees it). Every
file gets a SHA-256, so a host is sent only the files that differ from its current release. Wheels
are downloaded on this machine for each host's Python version and platform, so hosts need no index
(the pip command lines and the wheel cache: deploy.push.pipwheels).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from deploy.config.secretfiles import is_secret
from deploy.project.files import NEVER_SHIPPED
from deploy.project.requirements import RequirementsError, RequirementSet, resolve
from deploy.push import gittree

# Platform, default_cache and download_command live in deploy.push.pipwheels; push and its tests
# import them from here.
from deploy.push.pipwheels import Platform as Platform
from deploy.push.pipwheels import default_cache as default_cache
from deploy.push.pipwheels import download_command as download_command

#: Bump when the way a virtualenv is built changes: every host then builds a fresh one.
VENV_RECIPE = "1"


class ArtifactError(Exception):
    """The project cannot be packed (not a git repository, dirty tree, wheels unavailable)."""


#: Modes of shipped files: readable by root and the app's group only, never by other users...
PRIVATE_MODES = (0o640, 0o750)
#: ...but the files under app.static.dir, which Nginx (another user) serves to anyone.
PUBLIC_MODES = (0o644, 0o755)


class FileEntry:
    """One file of the artifact: its bytes and mode, or the target of a symbolic link.

    The bytes may be read only when first needed (`load`) and the SHA-256 be known without them
    (`sha256`, from deploy.push.gittree's cache): a push reads only the files it sends.
    """

    __slots__ = ("_data", "_digest", "_load", "link", "mode")

    def __init__(
        self,
        data: bytes = b"",
        mode: int = 0o640,
        link: str | None = None,
        *,
        load: Callable[[], bytes] | None = None,
        sha256: str | None = None,
    ) -> None:
        self._data: bytes | None = None if load is not None else data
        self._load = load
        self._digest = sha256
        self.mode = mode
        self.link = link

    @property
    def data(self) -> bytes:
        if self._data is None:
            assert self._load is not None
            self._data = self._load()
            self._load = None
        return self._data

    @property
    def loaded(self) -> bool:
        """Whether the bytes were read (a file whose SHA-256 came from the cache and was never sent: no)."""
        return self._data is not None

    @property
    def digest(self) -> str:
        if self._digest is None:
            payload = b"link:" + self.link.encode() if self.link is not None else self.data
            self._digest = hashlib.sha256(payload).hexdigest()
        return self._digest

    @property
    def manifest_entry(self) -> list[object]:
        return [self.digest, "link" if self.link is not None else f"{self.mode:o}"]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileEntry):
            return NotImplemented
        return (self.digest, self.mode, self.link) == (other.digest, other.mode, other.link)

    def __hash__(self) -> int:
        return hash((self.digest, self.mode, self.link))

    def __repr__(self) -> str:
        return f"FileEntry(sha256={self.digest[:12]}, mode={self.mode:o}, link={self.link!r})"


@dataclass(frozen=True)
class Artifact:
    """What a push ships: files keyed by relative path, the commit, and the requirements."""

    commit: str
    dirty: bool
    files: dict[str, FileEntry]
    requirements_path: str
    #: Modification time of every shipped file (the commit's time): Nginx derives ETags from it.
    timestamp: int = 0
    #: Secret files (deploy.config.secretfiles) that git tracks: left out of the artifact, to be warned about.
    withheld: tuple[str, ...] = ()

    @cached_property
    def manifest(self) -> dict[str, list[object]]:
        return {path: entry.manifest_entry for path, entry in sorted(self.files.items())}

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()

    def read(self, path: str) -> bytes | None:
        """A shipped file's bytes (a symbolic link inside the project is followed once)."""
        entry = self.files.get(path)
        if entry is not None and entry.link is not None:
            target = os.path.normpath(os.path.join(os.path.dirname(path), entry.link))
            entry = self.files.get(target)
        return entry.data if entry is not None and entry.link is None else None

    @property
    def requirement_set(self) -> RequirementSet:
        """The requirements files (with includes) or pyproject.toml dependencies the venv installs."""
        try:
            return resolve(self.requirements_path, self.read)
        except RequirementsError as exc:
            raise ArtifactError(str(exc)) from None

    @property
    def requirements(self) -> bytes:
        """What the virtualenv's key covers (every requirements file involved, or the dependency list)."""
        return self.requirement_set.key

    @property
    def short(self) -> str:
        return self.commit[:7] + ("-dirty" if self.dirty else "")


def requirements_hash(
    requirements: bytes, python_version: str, platform_tag: str, installer: str = "pip"
) -> str:
    """The key of a virtualenv: the same requirements on the same Python and platform share one.

    The full Python version counts (3.11.2, not 3.11): markers such as `python_full_version <=
    "3.11.2"` make the set of wheels depend on it. A venv uv made has its own key (pip's keys stay
    as they were): switching push.installer builds a new venv with the chosen installer.
    """
    digest = hashlib.sha256()
    for part in (VENV_RECIPE.encode(), python_version.encode(), platform_tag.encode(), requirements):
        digest.update(part + b"\0")
    if installer != "pip":
        digest.update(installer.encode() + b"\0")
    return digest.hexdigest()[:16]


def _git(project: Path, *args: str) -> bytes:
    try:
        result = subprocess.run(["git", *args], cwd=project, capture_output=True, check=False)
    except FileNotFoundError:
        raise ArtifactError("git is not installed on this machine") from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        if "not a git repository" in message:
            raise ArtifactError(
                f"{project} is not in a git repository: deploy ships the committed HEAD "
                "(run 'git init' and commit, or push from the repository)"
            )
        raise ArtifactError(f"git {' '.join(args)} failed: {message}")
    return result.stdout


def project_identity(project: Path) -> str | None:
    """The project's git root commits (sorted, comma-separated): the same in every clone of it, so a
    host can tell this project's app from another project's app of the same name. None outside git,
    and in a shallow clone (whose oldest commit there is not the root)."""
    try:
        if _git(project, "rev-parse", "--is-shallow-repository").strip() != b"false":
            return None
        roots = _git(project, "rev-list", "--max-parents=0", "HEAD").decode().split()
    except ArtifactError:
        return None
    return ",".join(sorted(roots)) or None


def _under(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _excluded(path: str, extra: tuple[str, ...] = ()) -> bool:
    parts = path.split("/")
    if _under(path, extra) or is_secret(path):
        return True
    return any(part in NEVER_SHIPPED for part in parts) or parts[-1].endswith((".pyc", ".pyo"))


def _mode(path: str, executable: bool, public: tuple[str, ...]) -> int:
    private, world = PUBLIC_MODES if _under(path, public) else PRIVATE_MODES
    return world if executable else private


def pack(
    project: Path,
    requirements_path: str,
    allow_dirty: bool = False,
    exclude: tuple[str, ...] = (),
    public: tuple[str, ...] = (),
) -> Artifact:
    """Read the project's files at HEAD (or the working tree with `allow_dirty`), refusing a dirty tree.

    `exclude` names paths never shipped (the app's shared paths: they live on the host); secret files
    are never shipped, and the tracked ones are named in `Artifact.withheld`. Files are readable by
    root and the app's group only (`PRIVATE_MODES`), but those under a `public` folder (the static
    files Nginx serves) are readable by everyone.
    """
    try:
        # One git process for all four (each process costs time on every push).
        top_line, prefix, commit, attributes = (
            _git(
                project,
                "rev-parse",
                "--show-toplevel",
                "--show-prefix",
                "HEAD",
                "--git-path",
                "info/attributes",
            )
            .decode()
            .split("\n")[:4]
        )
        top = Path(top_line)
    except (ArtifactError, ValueError):
        # Not a repository, or no commit yet: ask one question at a time to say which.
        top = Path(_git(project, "rev-parse", "--show-toplevel").decode().strip())
        prefix = _git(project, "rev-parse", "--show-prefix").decode().strip()
        try:
            commit = _git(project, "rev-parse", "HEAD").decode().strip()
        except ArtifactError:
            raise ArtifactError(
                f"{project}: the git repository has no commit yet; commit the project first"
            ) from None
        attributes = _git(project, "rev-parse", "--git-path", "info/attributes").decode().strip()
    changed = [path for path in _status(project) if not _excluded(path, exclude)]
    dirty = bool(changed)
    if dirty and not allow_dirty:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise ArtifactError(
            f"the working tree has uncommitted changes ({shown}): deploy ships the committed HEAD; "
            "commit them, or pass --allow-dirty to ship the working tree as it is"
        )
    files, withheld = (
        _working_tree(project, exclude, public)
        if dirty
        else _committed(top, prefix, project / attributes, exclude, public)
    )
    if requirements_path not in files:
        raise ArtifactError(
            f"{requirements_path} (app.requirements) is not in the "
            f"{'working tree' if dirty else 'commit'}: add and commit it"
        )
    timestamp = int(_git(project, "log", "-1", "--format=%ct").decode().strip() or 0)
    if dirty:
        timestamp = int(time.time())
    artifact = Artifact(
        commit=commit,
        dirty=dirty,
        files=files,
        requirements_path=requirements_path,
        timestamp=timestamp,
        withheld=tuple(sorted(withheld)),
    )
    _ = artifact.requirement_set  # an unreadable requirements file stops here, before any host
    return artifact


def _status(project: Path) -> list[str]:
    """The paths git status reports changed or untracked (each file of a new folder), unquoted; a
    rename or copy counts by its new path and its old one."""
    raw = _git(project, "status", "--porcelain", "-z", "--untracked-files=all", "--", ".")
    entries = raw.decode("utf-8", "surrogateescape").split("\0")
    paths: list[str] = []
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC" or entry[1] in "RC":
            paths.append(entries[index])  # the path it was renamed or copied from
            index += 1
    return paths


def _committed(
    top: Path, prefix: str, attributes: Path, exclude: tuple[str, ...], public: tuple[str, ...]
) -> tuple[dict[str, FileEntry], list[str]]:
    """The files of HEAD from git's tree and the hash cache (deploy.push.gittree), each file's bytes
    read when needed; from `git archive` when attributes or core.autocrlf could change them."""
    entries, attribute_blobs = gittree.ls_tree(
        _git(top, "ls-tree", "-r", "-z", "--full-tree", "HEAD"), prefix
    )
    blobs = gittree.Blobs(top)
    if any(gittree.changes_bytes(blobs.read(b)) for b in attribute_blobs) or gittree.configured(
        top, attributes
    ):
        return _archive(top, prefix, exclude, public)
    cache = gittree.hash_cache()
    known, new = gittree.load_cache(cache), dict[str, str]()
    files: dict[str, FileEntry] = {}
    withheld: list[str] = []
    for raw, mode, blob in entries:
        name = _utf8_name(top, raw)
        if _excluded(name, exclude):
            if is_secret(name) and not _under(name, exclude):
                withheld.append(name)
        elif mode == gittree.LINK:
            files[name] = FileEntry(b"", 0o777, link=blobs.read(blob).decode("utf-8", "surrogateescape"))
        elif mode in (gittree.FILE, gittree.EXECUTABLE):
            digest, data = gittree.sha256_of(blobs, blob, known, new)
            file_mode = _mode(name, mode == gittree.EXECUTABLE, public)
            if data is not None:
                files[name] = FileEntry(data, file_mode, sha256=digest)
            else:
                files[name] = FileEntry(
                    mode=file_mode, load=functools.partial(blobs.read, blob), sha256=digest
                )
    gittree.save_cache(cache, known, new, {blob for _, _, blob in entries})
    return files, withheld


def _archive(
    top: Path, prefix: str, exclude: tuple[str, ...], public: tuple[str, ...]
) -> tuple[dict[str, FileEntry], list[str]]:
    """The files of HEAD, and the committed secret files left out."""
    raw = _git(top, "archive", "--format=tar", f"HEAD:{prefix}")
    files: dict[str, FileEntry] = {}
    withheld: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar.getmembers():
            name = _utf8_name(top, member.name.removeprefix("./"))
            if member.isdir():
                continue
            if _excluded(name, exclude):
                if is_secret(name) and not _under(name, exclude):
                    withheld.append(name)
                continue
            if member.issym():
                files[name] = FileEntry(b"", 0o777, link=member.linkname)
            elif member.isfile():
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                files[name] = FileEntry(data, _mode(name, bool(member.mode & 0o111), public))
    return files, withheld


def _utf8_name(project: Path, name: str) -> str:
    """`name` (surrogate-escaped, as tarfile and os.fsdecode give it); ArtifactError for a name that is
    not UTF-8, which could not be written on a host."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise ArtifactError(
            f'{project}: the file name "{shown}" is not UTF-8; rename it (git mv) to ship it'
        ) from None
    return name


def _working_tree(
    project: Path, exclude: tuple[str, ...], public: tuple[str, ...]
) -> tuple[dict[str, FileEntry], list[str]]:
    """The files of the working tree as git sees it, and the tracked secret files left out."""
    # -t tags each name: "H " (and other letters) tracked, "? " untracked.
    listing = _git(project, "ls-files", "-z", "-t", "--cached", "--others", "--exclude-standard", "--", ".")
    files: dict[str, FileEntry] = {}
    withheld: list[str] = []
    for raw in listing.split(b"\0"):
        tag, name = raw[:2].decode(), _utf8_name(project, os.fsdecode(raw[2:]))
        if not name:
            continue
        if _excluded(name, exclude):
            if tag != "? " and is_secret(name) and not _under(name, exclude):
                withheld.append(name)
            continue
        path = project / name
        if path.is_symlink():
            files[name] = FileEntry(b"", 0o777, link=os.readlink(path))
        elif path.is_file():
            files[name] = FileEntry(path.read_bytes(), _mode(name, bool(path.stat().st_mode & 0o111), public))
    return files, withheld


def changes(artifact: Artifact, remote: dict[str, list[object]] | None) -> tuple[list[str], list[str]]:
    """(files to send, files to delete) for a host whose current release has manifest `remote`."""
    if remote is None:
        return sorted(artifact.files), []
    new = artifact.manifest
    send = sorted(path for path, entry in new.items() if remote.get(path) != entry)
    delete = sorted(path for path in remote if path not in new)
    return send, delete


def tarball(files: dict[str, FileEntry], names: list[str], mtime: int = 0, group: str = "root") -> bytes:
    """A tar of the named files, byte-stable (one fixed time, owner root, group `group` by name: the
    host's tar, run as root, gives them that group)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            entry = files[name]
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname, info.gname = "root", group
            if entry.link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = entry.link
                tar.addfile(info)
            else:
                info.mode = entry.mode
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()

