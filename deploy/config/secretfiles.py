"""Secret files: the one list of file names that hold credentials, for every path that ships files.

A push never ships them (tracked or untracked, with or without --allow-dirty), the rendered
.dockerignore keeps them out of a Docker build context, the Dockerfile's guard stops a build that
has one anyway, and `deploy check` never copies one when it imports the app. Each pattern is a shell
pattern matched against every component of a path (a file, or a folder whose whole content is
secret), case-sensitively, as Docker and `find -name` match them.
"""

from __future__ import annotations

import re
from fnmatch import translate
from functools import lru_cache

#: Files and folders that hold secrets.
PATTERNS: tuple[str, ...] = (
    # Environment files: dotenv, per-environment variants, direnv.
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    # Keys and certificates with their keys, key stores, password vaults.
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.ppk",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    # Credentials of tools: HTTP/FTP, PostgreSQL, npm, PyPI, git, basic auth.
    ".netrc",
    "_netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    # Cloud credentials and secrets files.
    "credentials.json",
    "client_secret*.json",
    "secrets.json",
    "secrets.yaml",
    "secrets.yml",
    "secrets.toml",
    "secrets.ini",
    "*.tfvars",
    "*.tfstate",
    "*.tfstate.*",
    # Folders of secrets: SSH, AWS, GnuPG, Docker/Compose secrets.
    ".ssh",
    ".aws",
    ".gnupg",
    "secrets",
)

#: Templates of environment files, committed on purpose to show which variables exist: not secrets.
NOT_SECRETS: tuple[str, ...] = (".env.example", ".env.sample", ".env.template", ".env.dist")


#: Every pattern in one expression (fnmatch.fnmatchcase per pattern cost a push of a 1,600-file app 0.5 s).
_SECRET = re.compile("|".join(f"(?:{translate(pattern)})" for pattern in PATTERNS))


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether one path component names a secret file or folder."""
    return name not in NOT_SECRETS and _SECRET.match(name) is not None


def is_secret(path: str) -> bool:
    """Whether a relative path ("a/b/c", "/" separated) is, or lies in, a secret file or folder."""
    return any(is_secret_name(part) for part in path.split("/"))


def withheld_warning(paths: tuple[str, ...] | list[str]) -> str:
    """What push says about secret files git tracks: they are not shipped, but they are in git."""
    shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
    return (
        f"WARNING: {len(paths)} secret file(s) tracked by git are NOT shipped: {shown}. They are in the "
        "repository's history: untrack them (git rm --cached FILE; add them to .gitignore) and rotate "
        "the secrets they hold"
    )
