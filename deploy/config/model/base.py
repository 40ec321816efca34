"""The building blocks of the deploy.yaml model: value types (names, domains, paths, sizes), the
helpers their validators share, and `Model`, the base of every section.

Values that reach a config file (domains, paths, sizes, header values) are validated here, so
templates never see a value that could break out of a directive or a line.
"""

from __future__ import annotations

import re
import types
import typing
import unicodedata
from collections.abc import Iterator
from typing import Annotated, Any, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from deploy.config import csp

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$")
_IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
_URL_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
_REL_PATH = re.compile(r"^(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._@+-][A-Za-z0-9._@+/-]*$")
_ABS_PATH = re.compile(r"^/(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._@+/-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^[0-9]{1,6}[kKmMgG]?$")
_WSGI = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
    r":[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\([^\n\r;`$]*\))?$"
)
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[a-f0-9]{64})?$")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
_PROCESS_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_MEMORY = re.compile(r"^[0-9]{1,12}[KMGT]?$|^[0-9]{1,2}%$|^100%$|^infinity$")
_CPU_QUOTA = re.compile(r"^[1-9][0-9]{0,4}%$")


def _matches(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        # fullmatch: `match` with `$` also accepts "value\n" (`$` matches before a final newline).
        if not pattern.fullmatch(value):
            raise ValueError(f"expected {what}, got {value!r}")
        return value

    return check


#: Unicode categories no deploy.yaml string may hold: control characters (Cc: newlines, tab, NUL, DEL,
#: ESC, U+0085), format characters (Cf: U+200B, U+202E, U+FEFF, which hide or reorder text), lone
#: surrogates (Cs: cannot be written as UTF-8) and the line and paragraph separators (Zl, Zp). Any of
#: them ends or breaks a line in an Nginx site, a systemd unit, a Dockerfile, an env file or a command.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_CONTROL_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}


def control_character(text: str) -> str | None:
    """What the first control character of `text` is and where (never the text itself); None if none."""
    for index, char in enumerate(text):
        if unicodedata.category(char) in _CONTROL_CATEGORIES:
            name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "a control character").lower()
            return f"U+{ord(char):04X} ({name}) at character {index + 1}"
    return None


def _alternatives(annotation: Any) -> list[Any]:
    """The types an annotation allows, without Annotated, Optional and None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [alt for arg in get_args(annotation) for alt in _alternatives(arg)]
    return [] if annotation is type(None) else [annotation]


def _strings(
    value: Any, annotation: Any, loc: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string in a field's validated value, keys of mappings included, with its location.

    Sections (models) check their own fields; values typed Any (an environment's overlay) are
    checked when they are overlaid and validated as a whole config."""
    alternatives = _alternatives(annotation)
    if Any in alternatives or isinstance(value, BaseModel):
        return
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, list | tuple):
        item = next((get_args(a)[0] for a in alternatives if get_origin(a) is list), object)
        for index, entry in enumerate(value):
            yield from _strings(entry, item, (*loc, index))
    elif isinstance(value, dict):
        key_type, value_type = next(
            (get_args(a) for a in alternatives if get_origin(a) is dict), (object, object)
        )
        for key, entry in value.items():
            yield from _strings(key, key_type, (*loc, key))
            yield from _strings(entry, value_type, (*loc, key))


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"{item!r} is listed twice")
        seen.add(item)
    return items


def _domain(value: str) -> str:
    # Checked as written, before lowercasing: str.lower() maps some non-ASCII look-alikes to ASCII
    # letters (the Kelvin sign K becomes k), and `$` would let a trailing newline through.
    if (
        not value.isascii()
        or not _DOMAIN.fullmatch(value)
        or len(value) > 253
        or (value.startswith("*.") and "." not in value[2:])
    ):
        raise ValueError(
            "expected a domain name (letters, digits, hyphens and dots, such as app.example.com; "
            f"a wildcard only as the first label of a name with two more), got {value!r}"
        )
    return value.lower()


def _host_address(value: str) -> str:
    m = _IPV4.fullmatch(value)
    if m:
        if all(0 <= int(g) <= 255 for g in m.groups()):
            return value
        raise ValueError(f"expected an IPv4 address or a host name, got {value!r}")
    if value.startswith("[") and value.endswith("]") and re.fullmatch(r"[0-9a-fA-F:.]+", value[1:-1]):
        return value
    return _domain(value)


#: Names of system services and accounts an app must not take over: the app's name becomes a
#: systemd unit, /etc/<name>, /run/<name> and a Unix user.
RESERVED_NAMES = frozenset(
    {
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "nobody",
        "systemd",
        "systemd-network",
        "systemd-resolve",
        "systemd-timesync",
        "systemd-journal",
        "messagebus",
        "dbus",
        "polkitd",
        "ssh",
        "sshd",
        "nginx",
        "apache2",
        "httpd",
        "certbot",
        "letsencrypt",
        "postgres",
        "postgresql",
        "mysql",
        "mysqld",
        "mariadb",
        "redis",
        "redis-server",
        "memcached",
        "docker",
        "containerd",
        "cron",
        "rsyslog",
        "syslog",
        "ntp",
        "chrony",
        "ufw",
        "snapd",
        "sudo",
        "network",
        "networking",
        "getty",
        "login",
        "init",
        "kernel",
        "udev",
    }
)


def _not_reserved(value: str) -> str:
    if value in RESERVED_NAMES or value.startswith("systemd-"):
        raise ValueError(f"{value!r} is the name of a system service or account; choose another name")
    return value


AppName = Annotated[
    str,
    AfterValidator(
        _matches(_APP_NAME, "a short lower-case name: letters, digits and hyphens, starting with a letter")
    ),
    AfterValidator(_not_reserved),
]
UnixName = Annotated[str, AfterValidator(_matches(_UNIX_NAME, "a Unix user name such as 'deploy'"))]
Domain = Annotated[str, AfterValidator(_domain)]
UrlPath = Annotated[
    str, AfterValidator(_matches(_URL_PATH, "a URL path starting with '/' (letters, digits, . _ ~ - /)"))
]
RelPath = Annotated[
    str,
    AfterValidator(_matches(_REL_PATH, "a relative path inside the project (no '..', no spaces or quotes)")),
]
AbsPath = Annotated[
    str, AfterValidator(_matches(_ABS_PATH, "an absolute path (no '..', no spaces or quotes)"))
]
EnvName = Annotated[
    str, AfterValidator(_matches(_ENV_NAME, "an environment variable name such as LOG_LEVEL"))
]
Size = Annotated[str, AfterValidator(_matches(_SIZE, "an Nginx size such as 16m, 512k or 1g"))]
#: Free text (commands, env values, paths on this machine): one line, like every string (see Model).
SafeText = str
Version = Annotated[str, AfterValidator(_matches(_VERSION, "a version such as 1.22 or 1.25.1"))]
ProcessName = Annotated[
    str,
    AfterValidator(
        _matches(
            _PROCESS_NAME, "a short lower-case name: letters, digits and hyphens, starting with a letter"
        )
    ),
]


def _header_value(value: str) -> str:
    if '"' in value or "\\" in value or "$" in value:
        raise ValueError('a header value must not contain double quotes, backslashes or "$"')
    return value


HeaderValue = Annotated[str, AfterValidator(_header_value)]


def _csp_directive(value: str) -> str:
    if value not in csp.FALLBACK:
        raise ValueError(f"expected a CSP directive ({', '.join(csp.FALLBACK)}), got {value!r}")
    return value


def _csp_source(value: str) -> str:
    problem = csp.source_problem(value)
    if problem is not None:
        raise ValueError(f"expected {problem}, got {value!r}" if problem.startswith("a CSP") else problem)
    return value


CspDirective = Annotated[str, AfterValidator(_csp_directive)]
CspSource = Annotated[str, AfterValidator(_csp_source)]


def invalid(title: str, problems: list[tuple[tuple[str | int, ...], str]]) -> ValidationError:
    """An error for each (location below the field or model being validated, message): raised from
    a validator, it names the key that is wrong, not the section that holds it."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("invalid_value", "{message}", {"message": message}),
                loc=loc,
                input="",
            )
            for loc, message in problems
        ],
    )


class Model(BaseModel):
    """Base for every section: unknown keys are errors, instances are immutable, and every string in
    it (keys of mappings and items of lists included) is one line without control characters."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)

    @field_validator("*")
    @classmethod
    def _one_line(cls, value: Any, info: ValidationInfo) -> Any:
        assert info.field_name is not None
        annotation = cls.model_fields[info.field_name].annotation
        problems = [
            (loc, f"must be one line of plain text; found {found}")
            for loc, text in _strings(value, annotation, ())
            if (found := control_character(text)) is not None
        ]
        if problems:
            raise invalid(cls.__name__, problems)
        return value
