"""The committed files of a push read from git's index of them, not from `git archive` (issue #19).

`git ls-tree` names every file of HEAD with its mode and its blob id in one fast call. The SHA-256 of
a blob's bytes (what the release manifest holds) is kept in a cache keyed by the blob id: a blob id
names exactly one content, so the cache can never be stale. A file's bytes are read from git only
when something needs them (the files a host is sent, the requirements), through one
`git cat-file --batch` process. A push of a 1,000-file app with one changed file reads one file.

`git archive` applies .gitattributes (export-ignore, export-subst, end-of-line conversion, filters)
and core.autocrlf; a repository using any of them is packed by `git archive` as before
(`tree_files` returns None).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import weakref
from pathlib import Path

#: Kept at most this many entries; a longer cache file is rewritten with the current files only.
CACHE_LIMIT = 200_000

#: Git modes of a tree entry: a regular file, an executable one, a symbolic link (others: submodules).
FILE, EXECUTABLE, LINK = "100644", "100755", "120000"


def hash_cache() -> Path:
    """Where blob SHA-256s are kept between pushes: $DEPLOY_HASH_CACHE or ~/.cache/deploy/blob-sha256."""
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("DEPLOY_HASH_CACHE") or cache_home / "deploy" / "blob-sha256")


class Blobs:
    """Reads blobs of one repository through one `git cat-file --batch` process, started on first use
    and ended when the reader is garbage-collected (or the interpreter exits)."""

    def __init__(self, top: Path) -> None:
        self._top = top
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            ["git", "cat-file", "--batch"],
            cwd=self._top,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        weakref.finalize(self, _stop, process)
        return process

    def read(self, blob: str) -> bytes:
        """The bytes of blob `blob` (a 40 or 64 hex digit id); OSError when git does not have it."""
        with self._lock:
            if self._process is None:
                self._process = self._start()
            stdin, stdout = self._process.stdin, self._process.stdout
            assert stdin is not None and stdout is not None
            stdin.write(blob.encode() + b"\n")
            stdin.flush()
            header = stdout.readline().split()
            if len(header) != 3 or header[1] != b"blob":
                raise OSError(f"git cat-file: no blob {blob}")
            size = int(header[2])
            data = stdout.read(size + 1)[:size]
        if len(data) != size:
            raise OSError(f"git cat-file: blob {blob} cut short")
        return data


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def load_cache(path: Path) -> dict[str, str]:
    """Blob id -> SHA-256 hex; malformed lines (a write cut short) are ignored."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 2 and len(parts[0]) in (40, 64) and len(parts[1]) == 64:
            out[parts[0]] = parts[1]
    return out


def save_cache(path: Path, known: dict[str, str], new: dict[str, str], current: set[str]) -> None:
    """Append the `new` entries; past CACHE_LIMIT entries, keep only those of the `current` blobs."""
    if not new:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(known) + len(new) > CACHE_LIMIT:
            kept = {blob: digest for blob, digest in {**known, **new}.items() if blob in current}
            temporary = path.with_name(f"{path.name}.{os.getpid()}")
            temporary.write_text("".join(f"{b} {d}\n" for b, d in kept.items()), encoding="ascii")
            temporary.replace(path)
            return
        # One write of whole lines in append mode: pushes running at once never mix their lines.
        with path.open("a", encoding="ascii") as handle:
            handle.write("".join(f"{b} {d}\n" for b, d in new.items()))
    except OSError:
        pass  # the cache only saves time


#: (name, git mode, blob id) of each file of a tree.
TreeEntry = tuple[str, str, str]

#: Attributes with which `git archive` changes a file's bytes or leaves it out.
ARCHIVE_ATTRIBUTES = frozenset(
    {"text", "eol", "crlf", "filter", "ident", "export-ignore", "export-subst", "working-tree-encoding"}
)


def ls_tree(listing: bytes, prefix: str) -> tuple[list[TreeEntry], list[str]]:
    """The files under `prefix` of `git ls-tree -r -z --full-tree HEAD` (names relative to it), and the
    blob ids of every .gitattributes file of the tree."""
    entries: list[TreeEntry] = []
    attributes: list[str] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_name = record.partition(b"\t")
        mode, kind, blob = meta.decode().split(" ")
        name = os.fsdecode(raw_name)
        if name.rsplit("/", 1)[-1] == ".gitattributes":
            attributes.append(blob)
        if kind == "blob" and name.startswith(prefix):
            entries.append((name[len(prefix) :], mode, blob))
    return entries, attributes


def changes_bytes(attributes: bytes) -> bool:
    """Whether a .gitattributes text sets an attribute with which `git archive` changes or drops files."""
    for line in attributes.decode("utf-8", "replace").splitlines():
        if line.lstrip().startswith("#"):
            continue
        for token in line.split()[1:]:
            if token.lstrip("-!").split("=", 1)[0] in ARCHIVE_ATTRIBUTES:
                return True
    return False


def configured(project: Path, attributes_file: Path) -> bool:
    """Whether git's configuration or an attributes file outside the tree (`attributes_file`: the
    repository's info/attributes) could change archived bytes."""
    result = subprocess.run(
        ["git", "config", "--get-regexp", r"^core\.(autocrlf|attributesfile|eol)$"],
        cwd=project,
        capture_output=True,
        check=False,
    )
    if result.stdout.strip():
        return True
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return any(_non_empty(path) for path in (attributes_file, home / "git" / "attributes"))


def _non_empty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def sha256_of(
    blobs: Blobs, blob: str, known: dict[str, str], new: dict[str, str]
) -> tuple[str, bytes | None]:
    """The SHA-256 of `blob` from the cache, or read and hashed (then also its bytes, to keep)."""
    digest = known.get(blob) or new.get(blob)
    if digest is not None:
        return digest, None
    data = blobs.read(blob)
    digest = hashlib.sha256(data).hexdigest()
    new[blob] = digest
    return digest, data
