"""One redaction layer: every line deploy prints or writes passes through it once secrets are known.

A `Redactor` replaces each secret value, and each common encoding of it, by the secret's name in
angle brackets (`<SECRET_KEY>`): the value as is, shell-quoted (`shlex.quote`), JSON-escaped,
`repr()`-escaped, percent-encoded (`quote`, `quote_plus`), and base64 (standard and URL-safe, with
or without padding, at any of the three byte offsets a value can have inside a longer base64 text).
Each line of a multi-line value (a PEM key) counts as a value of its own.

`redacting_output` puts it in front of standard output and standard error for the rest of a
command: progress lines, --json events, error messages, hook output and setup failures all reach
the terminal through it, whichever code printed them. What deploy writes on hosts (the audit log)
goes through the same `Redactor` before it is sent.

Values shorter than `MIN_SECRET_LENGTH` characters cannot be kept out of output without mangling
it (a 2-character value is in half the words printed), so `deploy.config.loader.read_secrets` refuses them.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO
from urllib.parse import quote, quote_plus

#: Secret values shorter than this are refused when loaded (see the module's docstring).
MIN_SECRET_LENGTH = 4
#: A base64 fragment of a value inside a longer base64 text is searched for only from this length
#: (shorter fragments would match unrelated base64).
MIN_BASE64_FRAGMENT = 8


def _base64_forms(value: bytes) -> set[str]:
    """The value in base64 on its own, and the part of it that is the same wherever it sits in a
    longer base64 text (at byte offset 0, 1 or 2 of a 3-byte group)."""
    out: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(value).decode()
        out |= {whole, whole.rstrip("=")}
        for offset in range(3):
            text = encode(b"\0" * offset + value).decode().rstrip("=")
            size = offset + len(value)
            # Characters that also depend on the bytes before or after the value are left out.
            start = (0, 2, 3)[offset]
            end = 4 * (size // 3) + (0, 1, 2)[size % 3]
            fragment = text[start:end]
            if len(fragment) >= MIN_BASE64_FRAGMENT:
                out.add(fragment)
    return out


def forms(value: str) -> set[str]:
    """Every text that stands for `value` in output: the value and its common encodings."""
    out = {
        value,
        shlex.quote(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
    }
    # One level of nesting: a JSON text inside JSON (a --json event quoting a tool's JSON output).
    out |= {json.dumps(form)[1:-1] for form in list(out)}
    out |= _base64_forms(value.encode())
    return {form for form in out if len(form) >= MIN_SECRET_LENGTH}


class Redactor:
    """Replaces secret values (and their encodings) by `<NAME>`; longer forms first."""

    def __init__(self, secrets: Mapping[str, str]):
        pairs: dict[str, str] = {}
        for name, value in secrets.items():
            parts = [value, *(line.strip() for line in value.splitlines() if "\n" in value)]
            for part in parts:
                if len(part) < MIN_SECRET_LENGTH:
                    continue
                for form in forms(part):
                    pairs.setdefault(form, f"<{name}>")
        self._names = pairs
        ordered = sorted(pairs, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(f) for f in ordered)) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda match: self._names[match.group(0)], text)

    def unsure_tail(self, text: str) -> int:
        """How many characters at the end of `text` may be the start of a secret (or of a form of
        one) that the next piece of text completes: they are held back until it comes."""
        longest = max((len(form) for form in self._names), default=0)
        for size in range(min(len(text), longest), 0, -1):
            tail = text[-size:]
            if any(form.startswith(tail) for form in self._names):
                return size
        return 0


class RedactingStream(io.TextIOBase):
    """A text stream that redacts what is written to `target`, a whole line at a time (a value split
    over two writes of one line is still found); `flush` writes an unfinished line up to where a
    secret might begin."""

    def __init__(self, target: TextIO, redactor: Redactor):
        self.target = target
        self.redactor = redactor
        self._pending = ""
        # Re-entrant: a signal handler (deploy's StopSignals) may print while the main thread writes.
        self._lock = threading.RLock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.target, "errors", None)

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            done, newline, rest = self._pending.rpartition("\n")
            if newline:
                self._pending = rest
                self.target.write(self.redactor(done + newline))
        return len(text)

    def flush(self) -> None:
        """Write what is pending of an unfinished line (a prompt, a chunk of a streamed log), except
        an end that may be the start of a secret: that waits for the rest of its line."""
        with self._lock:
            keep = self.redactor.unsure_tail(self._pending)
            ready = self._pending[: len(self._pending) - keep]
            if ready:
                self.target.write(self.redactor(ready))
                self._pending = self._pending[len(ready) :]
        self.target.flush()

    def close_pending(self) -> None:
        """Write whatever is still pending (the stream is given back)."""
        with self._lock:
            if self._pending:
                self.target.write(self.redactor(self._pending))
                self._pending = ""
        self.target.flush()


@contextmanager
def redacting_output(secrets: Mapping[str, str]) -> Iterator[Redactor]:
    """Redact standard output and standard error (whoever writes to them) until the block ends."""
    redactor = Redactor(secrets)
    if not redactor:
        yield redactor
        return
    before = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(before[0], redactor)
    sys.stderr = RedactingStream(before[1], redactor)
    try:
        yield redactor
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, RedactingStream):
                stream.close_pending()
        sys.stdout, sys.stderr = before
