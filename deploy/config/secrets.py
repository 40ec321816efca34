"""Whether a secret's value is strong enough to sign sessions: shared by `deploy check` (SEC020) and
`deploy config`, which say why a key is weak without ever showing it."""

from __future__ import annotations

import re

#: Values people leave in place of a real secret (`deploy check --import` hands them to its child).
WEAK = frozenset(
    {
        "dev",
        "development",
        "secret",
        "changeme",
        "change-me",
        "default",
        "test",
        "key",
        "secret-key",
        "secretkey",
        "your-secret-key",
        "super-secret",
        "supersecret",
        "password",
        "not-so-secret",
        "notsosecret",
        "please-change-me",
        "change-this",
        "changethis",
        "insecure",
        "xxx",
    }
)
_PLACEHOLDERS = {"dev", "development", "secret", "changeme", "change-me", "default", "test", "xxx", "key"}
#: Names of secrets that sign or encrypt: SECRET_KEY, FLASK_SECRET_KEY, *_SALT, JWT_SIGNING_KEY...
_SECRET_KEY_LIKE = re.compile(r"(^|_)(SECRET|SALT|SIGNING_KEY)(_|$)|SECRET_KEY$")
MIN_SECRET_LENGTH = 32
MIN_DISTINCT = 8


def secret_weakness(value: str) -> str | None:
    """Why a secret value is weak (a placeholder word, too short, too few distinct characters), or None."""
    text = value.strip()
    if text.lower() in WEAK or text.lower() in _PLACEHOLDERS:
        return "is a well-known placeholder"
    if len(text.encode()) < MIN_SECRET_LENGTH:
        return f"has {len(text.encode())} bytes (at least {MIN_SECRET_LENGTH} random bytes are needed)"
    if len(set(text)) < MIN_DISTINCT:
        return f"has only {len(set(text))} distinct characters"
    return None


def key_weakness(name: str, value: str) -> str | None:
    """Why the value of a secret named like a signing key (SECRET_KEY, *_SALT...) is weak, or None."""
    if not _SECRET_KEY_LIKE.search(name.upper()):
        return None
    return secret_weakness(value)
