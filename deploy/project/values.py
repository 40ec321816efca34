"""What an expression in the source is worth without running it (`evaluate`), and whether a literal
is a label or a secret (`label_value`)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

from deploy.project.source import (
    _dotted,
)

_SECRET_NAME = re.compile(
    r"(?i)(passw(or)?d|secret|token|api_?key|private_?key|access_?key|auth_?key|credential)"
)
_URL_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]+:[^@/\s]+@", re.I)
#: Lower-case words joined by separators, no digits: `invalid_credentials`, `x-kobo-synctoken`, `a=b-c`.
_WORDS_ONLY = re.compile(r"[a-z]+(?:[-_.=:/][a-z]+)*")
#: Words in a constant's name that say its value is a name or a label, not a credential.
_LABEL_NAME_WORDS = frozenset(
    {
        "header",
        "headers",
        "scope",
        "scopes",
        "status",
        "name",
        "field",
        "param",
        "label",
        "kind",
        "type",
        "prefix",
        "suffix",
        "cookie",
        "attr",
        "attribute",
        "column",
        "env",
        "var",
        "claim",
        "message",
        "msg",
        "error",
        "event",
        "endpoint",
        "route",
        "url",
        "path",
        "method",
        "methods",
    }
)
#: Values that stand in for a real one (`changeme`, `<your-token>`, `${TOKEN}`, `xxxx`).
_PLACEHOLDER = re.compile(
    r"(?i)(<[^<>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|%\([a-z_]+\)s|x{3,}|\*{3,}|\.{3,}|"
    r"change[-_ ]?me|replace[-_ ]?me|your[-_ ].*|todo|fixme|placeholder|example|dummy|redacted)"
)


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def _names_part(words: list[str], value: list[str]) -> bool:
    """Whether `value` is a run of the name's words at or after its credential word.

    `ACCESS_TOKEN_SCOPE_SYNC = "sync"` names a part of itself; `ADMIN_PASSWORD = "admin"` does not (the
    run comes before "password": it is the admin's password).
    """
    joined = "_".join(words)
    starts = [m.start() for m in _SECRET_NAME.finditer(joined)]
    if not starts or not value:
        return False
    first = joined[: starts[-1]].count("_")
    n = len(value)
    return any(words[i : i + n] == value for i in range(first, len(words) - n + 1))


def label_value(name: str, text: str) -> bool:
    """Whether the string bound to a credential-looking `name` is a name, label or placeholder, not a secret.

    Labels: the value spells (part of) the name (`ACCESS_TOKEN_SCOPE_SYNC = "sync"`), a header name
    (`x-kobo-synctoken`, `Authorization`), an HTTP(S) address with no credential or token-like part in it,
    or lower-case words under a name that says it holds a name (`..._HEADER`, `..._SCOPE_...`,
    `..._METHOD`). Placeholders: `changeme`, `<token>`, `${TOKEN}`.
    Values with digits, mixed case or symbols (`admin123`, `SparkleAndShine`) stay secrets.
    """
    value = text.strip()
    if _PLACEHOLDER.fullmatch(value):
        return True
    words = _name_words(name)
    lowered = value.lower()
    if re.sub(r"[^a-z0-9]", "", lowered) == "".join(words):
        return True  # the value spells the name
    if _WORDS_ONLY.fullmatch(lowered) and _names_part(words, re.split(r"[^a-z]+", lowered)):
        return True  # "invalid_credentials" in AUTH_STATUS_INVALID_CREDENTIALS
    if re.fullmatch(r"(?i)x-[a-z]+(-[a-z]+)*|authorization|proxy-authorization|cookie|set-cookie", value):
        return True  # an HTTP header name
    if re.fullmatch(r"(?i)https?://[^\s@?#]+", value) and not re.search(r"[\w-]{20,}", value.split("://")[1]):
        return True  # an endpoint's address (`https://github.com/login/oauth/access_token`): no token in it
    return bool(_WORDS_ONLY.fullmatch(value) and _LABEL_NAME_WORDS & set(words))


# --- values --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """What an expression in the source evaluates to, as far as can be told without running it."""

    kind: Literal["literal", "env", "other"]
    literal: object = None
    env_name: str | None = None
    #: For an environment read with a fallback (`os.environ.get("X", "dev")`): the fallback literal.
    default: object = None
    has_default: bool = False
    #: For a bare name or attribute (`NullPool`, `config.X`): its dotted name.
    ref: str | None = None

    @property
    def is_true(self) -> bool:
        return self.kind == "literal" and self.literal is True

    @property
    def is_false(self) -> bool:
        return self.kind == "literal" and self.literal is False


#: String methods that leave an environment read the variable's value, reshaped
#: (`os.environ.get("DATABASE_URL", "").replace("postgres://", "postgresql://")`).
_STR_METHODS = {"replace", "strip", "lstrip", "rstrip", "lower", "upper", "removeprefix", "removesuffix"}


def _env_read(node: ast.AST) -> tuple[str, bool, object] | None:
    """(name, has_default, default) if `node` reads an environment variable (maybe through string
    methods that reshape its value)."""
    while (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _STR_METHODS
    ):
        node = node.func.value
    if isinstance(node, ast.Subscript) and _dotted(node.value) in ("os.environ", "environ"):
        index = node.slice
        if isinstance(index, ast.Constant) and isinstance(index.value, str):
            return index.value, False, None
    if isinstance(node, ast.Call):
        name = _dotted(node.func)
        key = node.args[0] if node.args else None
        if (
            name in ("os.environ.get", "environ.get", "os.getenv", "getenv", "os.environ.setdefault")
            and isinstance(key, ast.Constant)
            and isinstance(key.value, str)
        ):
            default = node.args[1] if len(node.args) > 1 else None
            if isinstance(default, ast.Constant) and default.value is not None:
                return key.value, True, default.value
            return key.value, False, None
    return None


def evaluate(node: ast.AST) -> Value:
    """Classify an expression: a literal, an environment read (maybe with a fallback), or other."""
    env = _env_read(node)
    if env is not None:
        return Value("env", env_name=env[0], has_default=env[1], default=env[2])
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and len(node.values) == 2:
        left = _env_read(node.values[0])
        right = node.values[1]
        if left is not None and isinstance(right, ast.Constant):
            return Value("env", env_name=left[0], has_default=right.value is not None, default=right.value)
        if left is not None:
            # `os.environ.get("X") or "sqlite:///" + path`: a fallback built at run time, value unknown.
            return Value("env", env_name=left[0], has_default=True)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        # `os.environ.get("X", "true") == "true"` is a flag read from the environment.
        env = _env_read(node.left)
        if env is not None:
            return Value("env", env_name=env[0])
    try:
        return Value("literal", literal=ast.literal_eval(node))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    number = _arithmetic(node)
    if number is not None:
        return Value("literal", literal=number)
    if isinstance(node, ast.Name | ast.Attribute):
        return Value("other", ref=_dotted(node) or None)
    return Value("other")


def _arithmetic(node: ast.AST, depth: int = 0) -> int | None:
    """The value of small integer arithmetic such as `16 * 1024 * 1024` (no evaluation of code)."""
    if depth > 10:
        return None
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add | ast.Sub | ast.Pow):
        left, right = _arithmetic(node.left, depth + 1), _arithmetic(node.right, depth + 1)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Pow):
            return left**right if 0 <= right <= 64 and abs(left) <= 1024 else None
        result = (
            left * right
            if isinstance(node.op, ast.Mult)
            else left + right
            if isinstance(node.op, ast.Add)
            else left - right
        )
        return result if abs(result) < 2**63 else None
    return None
