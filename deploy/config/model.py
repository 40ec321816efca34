"""The typed model of deploy.yaml: every key, its type, its default, and what a valid value is.

Values that reach a config file (domains, paths, sizes, header values) are validated here, so
templates never see a value that could break out of a directive or a line.
"""

from __future__ import annotations

import re
import types
import typing
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

# --- value types -------------------------------------------------------------------------------
from deploy.config import csp, folders, schedule
from deploy.config import workers as worker_classes
from deploy.config.flask_version import declared_flask, flask_has_app_option

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


# --- app ---------------------------------------------------------------------------------------


class Static(Model):
    """Static files that Nginx serves directly, with long caching."""

    url: UrlPath = Field(
        "/static",
        description="The URL prefix Nginx serves the static files under (not `/`, not under "
        "`/.well-known`).",
    )
    dir: RelPath = Field(
        "static",
        description="The folder of static files, relative to the project: public files only (not the "
        "root, the code, `instance/` or a shared path; no `.py`, `.db`, `.env`).",
    )
    max_age: Annotated[int, Field(ge=0, le=63072000)] = Field(
        31536000,
        description="Cache-Control max-age of the static files, in seconds (default one year).",
    )

    @field_validator("url")
    @classmethod
    def _a_prefix_of_its_own(cls, url: str) -> str:
        if url.strip("/") == "":
            raise ValueError("static.url must be a prefix such as /static, not '/': it would hide the app")
        if url.rstrip("/") == "/.well-known" or url.startswith("/.well-known/"):
            raise ValueError("static.url must not be under /.well-known (certificates are validated there)")
        return url


class App(Model):
    """The application: what to run, what it needs, and what it keeps across releases."""

    name: AppName = Field(
        description="Lower-case letters, digits and hyphens; names the systemd unit, `/etc/<name>` and "
        "the app's folders (never a system service's name).",
    )
    wsgi: Annotated[
        str,
        AfterValidator(_matches(_WSGI, "'module:app' or a factory call such as 'flaskr:create_app()'")),
    ] = Field(description="What Gunicorn runs: `module:app` or a factory call such as `module:create_app()`.")
    requirements: RelPath = Field(
        "requirements.txt",
        description="The pinned requirements file (or `pyproject.toml`), relative to the project.",
    )
    python: Version | None = Field(
        None,
        description="The Python the hosts run, such as `3.11`; default: whatever `python3` they have.",
    )
    static: Static | None = Field(
        None,
        description="Static files Nginx serves straight from the release, not through Python.",
    )
    health: UrlPath = Field(
        "/health",
        description="The URL that must answer 200 before a release takes traffic.",
    )
    env: dict[EnvName, SafeText] = Field(
        default_factory=dict,
        description="Plain settings, written into the systemd unit; never secrets.",
    )
    secrets: list[EnvName] = Field(
        default_factory=list,
        description="Names of secret settings only; their values come from the environment or a local "
        "`.env` at push time, into an env file of mode 0600.",
    )
    shared: list[RelPath] = Field(
        default_factory=list,
        description="Folders kept across releases (linked into every release): none inside another, none "
        "of them code or deploy's own.",
    )
    shared_files: list[RelPath] = Field(
        default_factory=list,
        description="Files kept across releases (a generated key, an SQLite file at the project root): "
        "created empty (mode 0600, owned by the app user) on first setup and linked into every release; "
        "never a file committed in the project.",
    )
    release: list[SafeText] = Field(
        default_factory=list,
        description="Commands run once per push on one host, before any host switches (migrations).",
    )
    port: Annotated[int, Field(ge=1024, le=65535)] = Field(
        8000,
        description="The port Gunicorn listens on inside a container.",
    )

    @field_validator("env")
    @classmethod
    def _no_debug_in_env(cls, env: dict[str, str]) -> dict[str, str]:
        for key in ("FLASK_DEBUG", "DEBUG"):
            if key in env and env[key].strip().lower() not in ("", "0", "false", "no", "off"):
                raise ValueError(f"{key}={env[key]!r} turns on the debugger in production; remove it")
        if env.get("FLASK_ENV", "").strip().lower() == "development":
            raise ValueError("FLASK_ENV=development turns on the debugger in production; remove it")
        return env

    @field_validator("secrets", "release")
    @classmethod
    def _no_duplicates(cls, items: list[str]) -> list[str]:
        return _unique(items)

    @field_validator("shared")
    @classmethod
    def _shared_folders(cls, shared: list[str], info: ValidationInfo) -> list[str]:
        """Plain folder names, none inside another, none of them deploy's, git's or the code's
        (see deploy.config.folders); kept normalized ('instance/' is 'instance')."""
        wsgi = info.data.get("wsgi", "")
        problems = folders.shared_by_name(shared, wsgi, info.data.get("requirements", ""))
        project_dir = (info.context or {}).get("project_dir")
        if not problems and project_dir is not None:
            problems = folders.shared_by_contents(shared, Path(project_dir))
        if problems:
            raise invalid("App", [((index,), why) for index, why in problems])
        return [folders.normalized(entry) for entry in shared]

    @field_validator("release")
    @classmethod
    def _release_fits_flask(cls, release: list[str], info: ValidationInfo) -> list[str]:
        """`flask --app X` exists from Flask 2.2: with the project at hand (validation context
        `project_dir`), a release command using it is refused when the project declares an older Flask."""
        project_dir = (info.context or {}).get("project_dir")
        uses = [i for i, command in enumerate(release) if re.search(r"(^|[\s;&|(])flask\s+--app\b", command)]
        if project_dir is None or not uses:
            return release
        if flask_has_app_option(Path(project_dir)):
            return release
        where, spec = declared_flask(Path(project_dir)) or ("", "")
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for index in uses:
            fixed = re.sub(r"flask\s+--app\s+(\S+)\s*", r"FLASK_APP=\1 flask ", release[index], count=1)
            problems.append(
                (
                    (index,),
                    f"'flask --app' needs Flask 2.2 or newer and {where} declares flask{spec}: "
                    f"write {fixed.strip()!r}",
                )
            )
        raise invalid("App", problems)

    @field_validator("shared_files")
    @classmethod
    def _shared_files(cls, files: list[str], info: ValidationInfo) -> list[str]:
        """Files kept across releases (a generated key, a SQLite file): none of deploy's, git's or the
        code's, none inside an app.shared folder, none committed in the project (see deploy.folders)."""
        problems = folders.shared_files_by_name(
            files, info.data.get("shared", []), info.data.get("wsgi", ""), info.data.get("requirements", "")
        )
        project_dir = (info.context or {}).get("project_dir")
        if not problems and project_dir is not None:
            problems = folders.shared_files_by_contents(files, Path(project_dir))
        if problems:
            raise invalid("App", [((index,), why) for index, why in problems])
        return [folders.normalized(entry) for entry in files]

    @model_validator(mode="after")
    def _static_serves_public_files_only(self, info: ValidationInfo) -> App:
        """Nginx serves app.static.dir to anyone: never code, data, configuration or secrets. With
        the project's folder (validation context `project_dir`), its files are looked at too."""
        if self.static is None:
            return self
        problems: list[tuple[tuple[str | int, ...], str]] = []
        why = folders.static_by_name(self.static.dir, self.wsgi, self.shared)
        project_dir = (info.context or {}).get("project_dir")
        if why is None and project_dir is not None:
            why = folders.static_by_contents(self.static.dir, Path(project_dir))
        if why is not None:
            problems.append(
                (("static", "dir"), f"{self.static.dir!r} {why}; give a folder of public files only")
            )
        url = self.static.url.rstrip("/")
        if self.health == url or self.health.startswith(url + "/"):
            problems.append(
                (
                    ("static", "url"),
                    f"{self.static.url!r} would serve the health check {self.health!r} (app.health) "
                    "from the static folder; choose another prefix",
                )
            )
        if problems:
            raise invalid("App", problems)
        return self

    @model_validator(mode="after")
    def _secrets_not_in_env(self) -> App:
        both = sorted(set(self.secrets) & set(self.env))
        if both:
            raise ValueError(
                f"{', '.join(both)} is listed in both app.env and app.secrets: "
                "secret values must come from the environment or .env at push time, never deploy.yaml"
            )
        return self


# --- server ------------------------------------------------------------------------------------


class Host(Model):
    """One server: an address, and optionally its own SSH user and port."""

    address: Annotated[str, AfterValidator(_host_address)] = Field(
        description="An IPv4 address, `[IPv6]` or a host name.",
    )
    user: UnixName | None = Field(None, description="The SSH user for this host (default `server.ssh.user`).")
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        None,
        description="The SSH port for this host (default `server.ssh.port`).",
    )
    roles: Annotated[list[ProcessName], Field(min_length=1)] = Field(
        default_factory=lambda: ["web"],
        description="The groups this host belongs to (default `[web]`): the web process runs on hosts "
        "with the role `web`; a process's `hosts:` may name any role.",
    )

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[str]) -> list[str]:
        return _unique(roles)

    @property
    def name(self) -> str:
        """How the host is named in plans and output: its address, with the port when not the default."""
        return self.address if self.port is None else f"{self.address}:{self.port}"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        """Accept 'host', 'user@host' and 'user@host:port'."""
        if isinstance(data, str):
            user, _, rest = data.rpartition("@")
            address, port = rest, None
            if rest.count(":") == 1:
                address, _, port_text = rest.partition(":")
                if not (port_text.isascii() and port_text.isdigit()):  # not '²'
                    raise ValueError(f"expected 'host', 'user@host' or 'user@host:port', got {data!r}")
                port = int(port_text)
            out: dict[str, Any] = {"address": address}
            if user:
                out["user"] = user
            if port is not None:
                out["port"] = port
            return out
        return data


class SSH(Model):
    """How deploy reaches the hosts. Host keys are always verified against known_hosts."""

    user: UnixName = Field(
        "root",
        description="The SSH user; with `sudo: true` any user with passwordless sudo.",
    )
    port: Annotated[int, Field(ge=1, le=65535)] = Field(22, description="The SSH port.")
    key: SafeText | None = Field(
        None,
        description="The private key file; default: the SSH agent and the keys in `~/.ssh`.",
    )
    known_hosts: SafeText | None = Field(
        None,
        description="The known_hosts file; host keys are always verified (default `~/.ssh/known_hosts`).",
    )
    proxy_jump: SafeText | None = Field(None, description="A jump host, like `ssh -J`.")
    sudo: bool = Field(False, description="Run privileged commands through sudo.")
    connect_timeout: Annotated[int, Field(ge=1, le=300)] = Field(
        10,
        description="Seconds to wait for an SSH connection.",
    )


class TLS(Model):
    """HTTPS: a certificate from an ACME server (email), or the user's own (cert and key)."""

    email: (
        Annotated[str, AfterValidator(_matches(re.compile(r"^[^@\s;]+@[^@\s;]+$"), "an email address"))]
        | None
    ) = Field(
        None,
        description="The ACME account's e-mail: certificates from an ACME server through certbot.",
    )
    cert: SafeText | None = Field(
        None,
        description="Your own certificate chain (PEM), instead of `email`; goes with `key`.",
    )
    key: SafeText | None = Field(
        None,
        description="The private key of your own certificate; uploaded with mode 0600.",
    )
    acme_server: (
        Annotated[
            str,
            AfterValidator(_matches(re.compile(r"^https://[^\s;\"']+$"), "an https:// ACME directory URL")),
        ]
        | None
    ) = Field(None, description="The ACME directory URL; default: Let's Encrypt.")
    ca_bundle: SafeText | None = Field(
        None,
        description="A CA bundle to trust for the ACME server (a private CA).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TLS:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key go together: give both or neither")
        if self.cert is None and self.email is None:
            raise ValueError("tls needs either email (certificates from an ACME server) or cert and key")
        if self.cert is not None and self.email is not None:
            raise ValueError("tls takes either email (ACME) or cert and key, not both")
        return self

    @property
    def acme(self) -> bool:
        return self.cert is None


class Server(Model):
    """Where the app runs: its names, its hosts, and the account it runs as."""

    domains: Annotated[list[Domain], Field(min_length=1)] = Field(
        description="The site's names; the first is the primary (the certificate's name). A wildcard "
        "(`*.example.com`) only with your own certificate: ACME issues wildcards through DNS-01 only.",
    )
    hosts: list[Host] = Field(
        default_factory=list,
        description="The servers: `host`, `user@host`, `user@host:port`, or a mapping.",
    )
    user: UnixName = Field("deploy", description="The system user the app runs as (never root).")
    base_dir: AbsPath | None = Field(
        None,
        description="Where `releases/`, `shared/` and `current` live; default `/srv/<app.name>`; a "
        "folder of its own, never a system folder.",
    )
    ssh: SSH = Field(default_factory=SSH, description="How deploy reaches the hosts.")
    tls: TLS | Literal[False] = Field(
        False,
        description="HTTPS: `{email: ...}` (ACME) or `{cert: ..., key: ...}`; `false` for an internal "
        "service behind another proxy.",
    )
    cores: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        None,
        description="The hosts' cores, when rendering without asking them.",
    )

    @field_validator("user")
    @classmethod
    def _not_root(cls, user: str) -> str:
        if user == "root":
            raise ValueError("the app must not run as root; use a dedicated user such as 'deploy'")
        return _not_reserved(user)

    @field_validator("domains")
    @classmethod
    def _unique_domains(cls, domains: list[str]) -> list[str]:
        return _unique(domains)

    @field_validator("hosts")
    @classmethod
    def _unique_hosts(cls, hosts: list[Host]) -> list[Host]:
        _unique([f"{h.address}:{h.port or ''}" for h in hosts])
        return hosts

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_true(cls, value: Any) -> Any:
        if value is True:
            raise ValueError(
                "tls: true is not enough; give {email: you@example.com} or {cert: ..., key: ...}"
            )
        return value

    @model_validator(mode="after")
    def _no_wildcard_by_acme(self) -> Server:
        """A wildcard name needs the DNS-01 challenge; certbot here answers HTTP-01 only."""
        if not (isinstance(self.tls, TLS) and self.tls.email):
            return self
        wild = [(("domains", i), name) for i, name in enumerate(self.domains) if name.startswith("*.")]
        if wild:
            raise invalid(
                "Server",
                [
                    (
                        loc,
                        f"{name!r} is a wildcard, and an ACME server issues wildcards only through the "
                        "DNS-01 challenge, which deploy's certbot (HTTP-01, on port 80) cannot answer: "
                        "list each name, or give your own certificate with tls.cert and tls.key",
                    )
                    for loc, name in wild
                ],
            )
        return self


# --- processes -------------------------------------------------------------------------------


class Ready(Model):
    """When a new process instance counts as ready (a push waits for it before the old ones stop)."""

    kind: Literal["settle", "notify", "heartbeat", "command", "rq", "celery"] = Field(
        "settle",
        description="`settle`: alive without a restart for `settle` seconds; `notify`: the process "
        "reports ready through systemd (sd_notify READY=1); `heartbeat`: a file it touches; `command`: a "
        "probe command that exits 0; `rq` / `celery`: the framework's own probe (`rq info` on the "
        "worker's queues, `celery inspect ping`). Written `ready: rq`, `ready: {heartbeat: PATH}` or "
        "`ready: {command: CMD}`.",
    )
    heartbeat: AbsPath | None = Field(
        None, description="The file the process touches while it is alive (kind `heartbeat`)."
    )
    command: SafeText | None = Field(
        None,
        description="The probe (kind `command`), run like the process: in the release, its venv first "
        "on PATH, the app's environment; ready once it exits 0.",
    )

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        """`ready: rq`, `ready: {heartbeat: PATH}`, `ready: {command: CMD}`."""
        if isinstance(data, str):
            return {"kind": data}
        if isinstance(data, dict) and "kind" not in data and len(data) == 1:
            (key,) = data
            if key in ("heartbeat", "command"):
                return {"kind": key, **data}
        return data

    @model_validator(mode="after")
    def _complete(self) -> Ready:
        for kind in ("heartbeat", "command"):
            if self.kind == kind and not getattr(self, kind):
                raise invalid("Ready", [((kind,), f"ready kind {kind!r} needs `{kind}:`")])
            if self.kind != kind and getattr(self, kind):
                raise invalid(
                    "Ready", [((kind,), f"only for ready kind {kind!r} (this one is {self.kind!r})")]
                )
        return self


class Process(Model):
    """A process besides web (a worker, a scheduler), released with the app under its own systemd unit."""

    command: Annotated[SafeText, Field(min_length=1)] = Field(
        description="What it runs, as a shell command line: in the release's folder, with the release's "
        "venv first on PATH and the app's environment (`$REDIS_URL` works).",
    )
    instances: Annotated[int, Field(ge=1, le=64)] = Field(1, description="How many run on each host.")
    hosts: ProcessName = Field(
        "all",
        description="Where it runs: `all` hosts, the `first` host, or the hosts of a role (see "
        "`server.hosts[].roles`).",
    )
    singleton: bool = Field(
        False,
        description="Exactly one instance on exactly one host (the first of `hosts`), never two at once: "
        "a push stops the old one before it starts the new one (a scheduler).",
    )
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP"] = Field(
        "SIGTERM",
        description="The signal that asks it to stop: SIGTERM is RQ's and Celery's warm shutdown (finish "
        "the job in hand, take no new one).",
    )
    stop_timeout: Annotated[int, Field(ge=1, le=86400)] = Field(
        60, description="Seconds a graceful stop may take before it is killed (systemd TimeoutStopSec)."
    )
    ready: Ready = Field(default_factory=Ready, description="When a new instance counts as ready.")
    settle: Annotated[int, Field(ge=0, le=3600)] = Field(
        5,
        description="Seconds a new instance must stay alive without a restart to count as healthy.",
    )
    memory_max: (
        Annotated[
            str,
            AfterValidator(_matches(_MEMORY, "a size such as 512M or 2G, a share such as 50%, or infinity")),
        ]
        | None
    ) = Field(None, description="The most memory its unit may use (systemd MemoryMax).")
    cpu_quota: (
        Annotated[str, AfterValidator(_matches(_CPU_QUOTA, "a share of one core such as 50% or 200%"))] | None
    ) = Field(None, description="The CPU time its unit may use, 100% = one core (systemd CPUQuota).")
    job_timeout: Annotated[int, Field(ge=1, le=604800)] | None = Field(
        None,
        description="The longest job it runs, in seconds (a check compares it with `stop_timeout`).",
    )

    @model_validator(mode="after")
    def _one_singleton(self) -> Process:
        if self.singleton and self.instances != 1:
            raise invalid(
                "Process",
                [(("instances",), f"a singleton runs exactly one instance; got instances: {self.instances}")],
            )
        return self


# --- services ----------------------------------------------------------------------------------


class Gunicorn(Model):
    """Gunicorn settings; 'auto' workers means (2 x the target host's cores) + 1."""

    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=256)] = Field(
        "auto",
        description="`auto` (2 x the host's cores + 1) or a number.",
    )
    worker_class: Literal[
        "sync",
        "gthread",
        "gevent",
        "eventlet",
        "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
        "asgi",
        "uvicorn_worker.UvicornWorker",
        "uvicorn_worker.UvicornH11Worker",
    ] = Field(
        "sync",
        description="The worker type. WSGI apps: sync, gthread, gevent, eventlet (Gunicorn before 26) or "
        "geventwebsocket.gunicorn.workers.GeventWebSocketWorker (Flask-SocketIO); ASGI apps (Quart, "
        "FastAPI, Starlette): asgi (Gunicorn 24+'s own worker) or uvicorn_worker.UvicornWorker (the "
        "uvicorn-worker package). The worker's package must be in the requirements.",
    )
    threads: Annotated[int, Field(ge=1, le=256)] = Field(1, description="Threads per worker (for gthread).")
    timeout: Annotated[int, Field(ge=1, le=3600)] = Field(
        30,
        description="Seconds before a silent worker is killed.",
    )
    graceful_timeout: Annotated[int, Field(ge=1, le=3600)] = Field(
        30,
        description="Seconds a worker gets to finish its requests on stop.",
    )
    keepalive: Annotated[int, Field(ge=0, le=300)] = Field(
        5,
        description="Seconds a keep-alive connection waits for the next request.",
    )
    # Recycling re-imports the app in a worker: often enough to bound a leak, rarely enough to
    # cost nothing measurable (1000 cost a fifth of the throughput under load; benchmarks/).
    max_requests: Annotated[int, Field(ge=0)] = Field(
        10000,
        description="Recycle a worker after this many requests (bounds a leak).",
    )
    max_requests_jitter: Annotated[int, Field(ge=0)] = Field(
        1000,
        description="Up to this many more requests, so the workers do not all restart at once.",
    )
    #: Gunicorn's own access log (to the journal); Nginx logs every request with its timings anyway.
    access_log: bool = Field(
        False,
        description="Gunicorn's own access log too (Nginx logs every request with its timings anyway).",
    )
    backlog: Annotated[int, Field(ge=16, le=65535)] = Field(
        2048,
        description="The listen queue of Gunicorn's socket.",
    )
    #: Import the app once in the master and fork the workers from it. 'auto' = yes, except with
    #: gevent/eventlet workers (they must patch the standard library before the app is imported).
    preload_app: Literal["auto"] | bool = Field(
        "auto",
        description="Import the app once, then fork the workers (`auto`: yes, unless gevent or "
        "eventlet).",
    )

    @field_validator("worker_class", mode="before")
    @classmethod
    def _not_deprecated(cls, value: Any) -> Any:
        if isinstance(value, str) and value in worker_classes.DEPRECATED:
            raise ValueError(worker_classes.DEPRECATED[value])
        return value

    @property
    def preload(self) -> bool:
        """Whether the app is imported before the workers are forked (preload_app resolved)."""
        if self.preload_app == "auto":
            return not worker_classes.worker(self.worker_class).patches
        return self.preload_app


class Nginx(Model):
    """The Nginx site in front of Gunicorn."""

    version: Version = Field("1.22", description="The hosts' Nginx version (directives differ by version).")
    client_max_body_size: Size = Field(
        "16m",
        description="The largest request body; keep it at or above the app's MAX_CONTENT_LENGTH.",
    )
    gzip: bool = Field(True, description="Compress text responses.")
    content_security_policy: HeaderValue = Field(
        csp.DEFAULT_POLICY,
        description="The Content-Security-Policy header (replace it whole, or add sources with "
        "`csp_sources`).",
    )
    #: Sources added to directives of the policy: inline scripts' hashes, a CDN's host.
    csp_sources: dict[CspDirective, list[CspSource]] = Field(
        default_factory=dict,
        description="Sources added to directives of the policy: an inline script's hash, a CDN's host "
        "(`deploy check` SEC021 prints the hashes).",
    )
    hsts_max_age: Annotated[int, Field(ge=0, le=63072000)] = Field(
        63072000,
        description="Strict-Transport-Security max-age in seconds; 0 turns HSTS off.",
    )
    websockets: Literal["auto"] | bool = Field(
        "auto",
        description="Pass WebSocket upgrades to the app (`auto`: when the worker class holds many "
        "connections per process: asgi, uvicorn, gevent, eventlet; never to sync or gthread workers, "
        "where each open socket would take a whole worker).",
    )
    proxy_read_timeout: Annotated[int, Field(ge=1, le=3600)] | None = Field(
        None,
        description="Seconds Nginx waits for the app's response; default `gunicorn.timeout` + 5.",
    )
    extra_headers: dict[
        Annotated[str, AfterValidator(_matches(re.compile(r"^[A-Za-z][A-Za-z0-9-]*$"), "a header name"))],
        HeaderValue,
    ] = Field(
        default_factory=dict,
        description="Headers added to every response (not those deploy sets itself).",
    )

    @field_validator("extra_headers")
    @classmethod
    def _not_a_standard_header(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name.lower() in _MANAGED_HEADERS:
                raise ValueError(
                    f"{name} is set by deploy already; change it with its own key "
                    "(content_security_policy, hsts_max_age) instead of extra_headers"
                )
        return headers

    @property
    def csp_header(self) -> str:
        """The Content-Security-Policy header sent: the policy with csp_sources added."""
        return csp.with_sources(self.content_security_policy, self.csp_sources)


_MANAGED_HEADERS = {
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "server",
}

_SYSTEMD_OVERRIDABLE = {
    "MemoryDenyWriteExecute",
    "PrivateDevices",
    "PrivateUsers",
    "PrivateTmp",
    "ProtectHome",
    "ProtectSystem",
    "ProtectProc",
    "ProcSubset",
    "RestrictAddressFamilies",
    "SystemCallFilter",
    "IPAddressDeny",
    "IPAddressAllow",
    "RestrictNamespaces",
    "LimitNOFILE",
    "MemoryMax",
    "CPUQuota",
    "TasksMax",
    "ReadWritePaths",
    "UMask",
}


class Systemd(Model):
    """Hardening of the app's unit; any directive in `overrides` replaces the default."""

    overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Hardening directives of the unit to replace when the app needs it (such as "
        "`MemoryDenyWriteExecute: no` for a JIT).",
    )

    @field_validator("overrides", mode="before")
    @classmethod
    def _yaml_scalars(cls, overrides: Any) -> Any:
        """Accept YAML's true/false and numbers as systemd's yes/no and digits."""
        if isinstance(overrides, dict):
            return {
                key: ("yes" if value else "no")
                if isinstance(value, bool)
                else str(value)
                if isinstance(value, int | float)
                else value
                for key, value in overrides.items()
            }
        return overrides

    @field_validator("overrides")
    @classmethod
    def _known(cls, overrides: dict[str, str]) -> dict[str, str]:
        for key in overrides:
            if key not in _SYSTEMD_OVERRIDABLE:
                allowed = ", ".join(sorted(_SYSTEMD_OVERRIDABLE))
                raise ValueError(f"{key!r} cannot be overridden; expected one of: {allowed}")
        return overrides


class Docker(Model):
    """The container image: a pinned base image and the user it runs as."""

    base_image: Annotated[
        str, AfterValidator(_matches(_IMAGE, "an image reference such as python:3.11-slim-bookworm"))
    ] = Field(
        "python:3.11-slim-bookworm",
        description="The base image, pinned by a tag (not `latest`) or a digest.",
    )
    user: UnixName = Field("app", description="The non-root user inside the image.")

    @field_validator("base_image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        name, _, tag = image.split("@")[0].rpartition(":")
        if "@" not in image and (not name or "/" in tag or tag == "latest"):
            raise ValueError(
                f"{image!r} is not pinned: give a tag such as python:3.11-slim-bookworm "
                "(not 'latest') or a digest (@sha256:...)"
            )
        return image

    @field_validator("user")
    @classmethod
    def _not_root(cls, user: str) -> str:
        if user == "root":
            raise ValueError("the container must not run as root; use a dedicated user such as 'app'")
        return user


class Hook(Model):
    """A command run before or after a push or rollback, locally or on every host."""

    run: SafeText = Field(description="The command.")
    on: Literal["local", "hosts"] = Field(
        "local",
        description="Where it runs: `local` (this machine) or `hosts` (every host).",
    )


class Hooks(Model):
    """Commands around pushes and rollbacks (notifications, cache warm-up)."""

    pre_push: list[Hook] = Field(
        default_factory=list,
        description="Commands run before a push (a string runs locally).",
    )
    post_push: list[Hook] = Field(default_factory=list, description="Commands run after a push.")
    pre_rollback: list[Hook] = Field(default_factory=list, description="Commands run before a rollback.")
    post_rollback: list[Hook] = Field(default_factory=list, description="Commands run after a rollback.")

    @field_validator("pre_push", "post_push", "pre_rollback", "post_rollback", mode="before")
    @classmethod
    def _strings(cls, hooks: Any) -> Any:
        if isinstance(hooks, list):
            return [{"run": h} if isinstance(h, str) else h for h in hooks]
        return hooks


class Push(Model):
    """How releases are rolled out."""

    keep_releases: Annotated[int, Field(ge=2, le=100)] = Field(
        5,
        description="Releases kept on each host; never removes the current release or the rollback "
        "target.",
    )
    batch: (
        Annotated[
            str,
            AfterValidator(_matches(re.compile(r"^(\d+%?)$"), "a count such as 2 or a share such as 25%")),
        ]
        | None
    ) = Field(
        None,
        description="A rolling deploy: hosts at a time, a count (`2`) or a share (`25%`); default all at "
        "once.",
    )
    max_failures: Annotated[int, Field(ge=0)] = Field(
        0,
        description="Hosts that may fail before the push stops and rolls back.",
    )
    health_timeout: Annotated[int, Field(ge=1, le=600)] = Field(
        30,
        description="Seconds a new release gets to answer the health check.",
    )
    #: Seconds one step of a push may take on a host before the push gives up on it.
    step_timeout: Annotated[int, Field(ge=10, le=86400)] = Field(
        600,
        description="Seconds one step of a push (upload, pip, a release command) may take on a host.",
    )
    #: Seconds a push waits for the last step of an interrupted push (pip, a migration) that still
    #: runs on a host, before it gives up and says so.
    lock_wait: Annotated[int, Field(ge=0, le=86400)] = Field(
        120,
        description="Seconds a push waits for the last step of an interrupted push still running on a "
        "host.",
    )


# --- services beside the app (Postgres, Redis) -----------------------------------------------------

_SQL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Names Postgres keeps for itself: a database or role of these names is the cluster's own.
_SQL_RESERVED = frozenset({"postgres", "template0", "template1", "public", "pg_database_owner", "root"})


def _sql_name(value: str) -> str:
    if not _SQL_NAME.fullmatch(value) or value.startswith("pg_"):
        raise ValueError(
            f"expected a plain SQL name (lower-case letters, digits and underscores, starting with a "
            f"letter or underscore, at most 63 characters, not pg_...), got {value!r}"
        )
    if value in _SQL_RESERVED:
        raise ValueError(f"{value!r} is Postgres's own; choose another name (such as the app's name)")
    return value


SqlName = Annotated[str, AfterValidator(_sql_name)]


def _schedule(value: str) -> str:
    return schedule.check(value)


class Backups(Model):
    """Scheduled backups of the app's Postgres database, each proven to restore."""

    schedule: Annotated[str, AfterValidator(_schedule)] = Field(
        "daily",
        description="When a backup runs: a systemd `OnCalendar=` expression (`hourly`, `daily`, `weekly`, "
        "`*-*-* 03:00`); missed runs (host down) run at the next boot.",
    )
    keep_daily: Annotated[int, Field(ge=0, le=366)] = Field(
        7, description="Keep the newest verified backup of each of this many most recent days."
    )
    keep_weekly: Annotated[int, Field(ge=0, le=520)] = Field(
        4, description="Keep the newest verified backup of each of this many most recent weeks."
    )
    copy_to: AbsPath | None = Field(
        None,
        description="An absolute folder on the service host (another disk, a mount) that receives a copy "
        "of each verified backup, under `<folder>/<app>/postgres/`, with the same retention.",
    )
    verify: bool = Field(
        True,
        description="Restore each backup into a scratch database and record its tables, row counts and "
        "checksums; a dump that does not restore is marked failed. Restore uses only verified backups.",
    )


class Postgres(Model):
    """PostgreSQL (Debian's package) on one of the hosts: deploy creates the database, the role and its
    password (on the host, readable by root only), and hands the app a URL in its env file."""

    host: Annotated[str, AfterValidator(_host_address)] | None = Field(
        None,
        description="The host Postgres runs on: one of `server.hosts`' addresses (default: the first).",
    )
    database: SqlName | None = Field(
        None,
        description="The database's name (default: `app.name` with `-` as `_`).",
    )
    user: SqlName | None = Field(
        None,
        description="The role the app logs in as (default: `app.name` with `-` as `_`); its password is "
        "made on the host and never leaves it except in the app's env file.",
    )
    max_connections: Annotated[int, Field(ge=20, le=5000)] = Field(
        100,
        description="Postgres's `max_connections` (20 to 5000); every connection costs memory.",
    )
    network: Literal["tls", "private"] | None = Field(
        None,
        description="How app hosts reach it: `tls` (deploy's own CA, `sslmode=verify-full`; the default "
        "when the app has several hosts or Postgres is on another host) or `private` (you declare the "
        "hosts' network private: TLS not required). An app on the Postgres host alone uses localhost.",
    )
    env: EnvName = Field(
        "DATABASE_URL",
        description="The environment variable the app reads the URL from.",
    )
    backups: Backups | None = Field(
        None,
        description="Scheduled backups (`pg_dump`, custom format) on a systemd timer on the service host, "
        "each restored into a scratch database and checked; `deploy services backups` lists them.",
    )


_REDIS_MEMORY = re.compile(r"^[1-9][0-9]{0,8}(b|kb|mb|gb|k|m|g)?$", re.IGNORECASE)


class RedisService(Model):
    """Redis on one of the hosts (Debian's redis-server), reachable by the app's hosts only."""

    host: Annotated[str, AfterValidator(_host_address)] | None = Field(
        None,
        description="The address of the host Redis runs on: one of `server.hosts` (default: the first).",
    )
    persistence: Literal["none", "rdb", "aof"] = Field(
        "rdb",
        description="`rdb`: snapshots (a restart loses at most the last minutes); `aof`: an append-only "
        "file fsynced every second (a restart loses at most a second); `none`: a cache only (a restart "
        "empties it).",
    )
    durable: bool = Field(
        False,
        description="Its data matters: the backups include Redis's persistence files. Needs `rdb` or `aof`.",
    )
    maxmemory: Annotated[
        str, AfterValidator(_matches(_REDIS_MEMORY, "a Redis memory size such as 256mb or 1gb"))
    ] | None = Field(
        None,
        description="The most memory Redis uses for data (`256mb`, `1gb`); at the limit, writes fail "
        "(Redis's `noeviction`). Default: no limit.",
    )
    network: Literal["tls", "private"] = Field(
        "tls",
        description="`tls`: the app's hosts reach Redis over TLS with deploy's own CA (the certificate "
        "is verified); `private`: the user declares the hosts' network private (plain TCP).",
    )
    env: EnvName = Field("REDIS_URL", description="The environment variable the app reads the URL from.")

    @model_validator(mode="after")
    def _durable_needs_persistence(self) -> RedisService:
        if self.durable and self.persistence == "none":
            raise invalid(
                "RedisService",
                [(("durable",), "durable: true needs persistence rdb or aof: none keeps nothing to back up")],
            )
        return self


class Services(Model):
    """Services deploy runs beside the app on your hosts; each key's presence enables it."""

    postgres: Postgres | None = Field(
        None,
        description="PostgreSQL on one of the hosts (`postgres: {}` takes every default).",
    )
    redis: RedisService | None = Field(
        None,
        description="Redis with an ACL user of the app's own and the persistence chosen; the app reads "
        "its URL from `env` (default `REDIS_URL`).",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _present_means_on(cls, value: Any) -> Any:
        """`postgres:` or `redis:` with nothing after it enables the service with all defaults, as `{}`."""
        return {} if value is None else value


# --- jobs --------------------------------------------------------------------------------------

#: A job's (or process's) name: it names systemd units (`<app>-job-<name>.timer`).
_UNIT_PART = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
JobName = Annotated[
    str,
    AfterValidator(
        _matches(_UNIT_PART, "a name of lower-case letters, digits and hyphens, starting with a letter")
    ),
]


class Job(Model):
    """A scheduled job: a command a systemd timer runs in the current release, never overlapping itself."""

    command: Annotated[str, Field(min_length=1)] = Field(
        description="The shell command, run as the app user in the current release (its venv on PATH, "
        "the app's env and secrets, working directory the release).",
    )
    schedule: Annotated[str, AfterValidator(_schedule)] = Field(
        description="When it runs: `minutely`, `hourly`, `daily`, `weekly`, `monthly`, or a systemd "
        "calendar expression such as `*-*-* 03:30:00`, `Mon..Fri 09:00` or `*:0/15` (host time; add "
        "`UTC` for UTC).",
    )
    hosts: ProcessName = Field(
        "first",
        description="Where it runs: `first` (the first of server.hosts: once per period), `all` (every "
        "host), or every host of a role (see `server.hosts[].roles`).",
    )
    timeout: Annotated[int, Field(ge=1, le=604800)] = Field(
        3600,
        description="Seconds a run may take before it is stopped (and counted as failed).",
    )
    catch_up: bool = Field(
        False,
        description="Run a period missed while the host was down once it is back (systemd `Persistent=`).",
    )


class Config(Model):
    """The whole of deploy.yaml, after the chosen environment has been overlaid."""

    app: App = Field(
        description="The application: what to run, what it needs, what it keeps across releases.",
    )
    server: Server = Field(description="Where the app runs: its names, its hosts, the account it runs as.")
    gunicorn: Gunicorn = Field(default_factory=Gunicorn, description="Gunicorn settings.")
    nginx: Nginx = Field(default_factory=Nginx, description="The Nginx site in front of Gunicorn.")
    systemd: Systemd = Field(default_factory=Systemd, description="Hardening of the app's systemd unit.")
    docker: Docker = Field(default_factory=Docker, description="The container image.")
    hooks: Hooks = Field(
        default_factory=Hooks,
        description="Commands around pushes and rollbacks; they get DEPLOY_RELEASE, DEPLOY_ENVIRONMENT "
        "and DEPLOY_HOSTS in their environment.",
    )
    push: Push = Field(default_factory=Push, description="How releases are rolled out.")
    services: Services = Field(
        default_factory=Services,
        description="Services beside the app on your hosts (Postgres, Redis), set up by `deploy setup`.",
    )
    jobs: dict[JobName, Job] = Field(
        default_factory=dict,
        description="Scheduled jobs by name: systemd timers that run a command in the current release.",
    )
    processes: dict[ProcessName, Process] = Field(
        default_factory=dict,
        description="Processes besides web (workers, a scheduler), by name; each runs under its own "
        "systemd unit in the release's environment and moves to a new release with each push.",
    )
    environments: dict[
        Annotated[str, AfterValidator(_matches(re.compile(r"^[a-z][a-z0-9_-]*$"), "an environment name"))],
        dict[str, Any],
    ] = Field(
        default_factory=dict,
        description="Overlays selected with `-e NAME`: any of the keys above, merged over the base.",
    )
    environment: str | None = Field(
        default=None,
        exclude=True,
        description="The environment overlaid (set by `-e`, not written in deploy.yaml).",
    )

    @model_validator(mode="after")
    def _base_dir_of_its_own(self) -> Config:
        """setup makes server.base_dir and the folders in it root's and the app's: never a system folder."""
        if self.server.base_dir is not None:
            why = folders.host_folder_problem(self.server.base_dir)
            if why is not None:
                raise invalid(
                    "Config",
                    [
                        (
                            ("server", "base_dir"),
                            f"{why}: setup would change its owner and mode; give a folder for this "
                            f"app's releases only, such as /srv/{self.app.name} (the default)",
                        )
                    ],
                )
        return self

    @model_validator(mode="after")
    def _services_fit_the_hosts(self) -> Config:
        """A service's host is one of server.hosts; its env name is not one of the app's own; Postgres's
        pg_hba admits app hosts by address, so a service reached over the network needs IP addresses."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        addresses = [h.address for h in self.server.hosts]
        for name in type(self.services).model_fields:
            service = getattr(self.services, name)
            if service is None:
                continue
            where: tuple[str | int, ...] = ("services", name)
            host = getattr(service, "host", None)
            if host is not None and addresses and host not in addresses:
                problems.append(
                    ((*where, "host"), f"{host!r} is none of server.hosts ({', '.join(addresses)})")
                )
            env = getattr(service, "env", None)
            if env is not None and (env in self.app.env or env in self.app.secrets):
                problems.append(
                    (
                        (*where, "env"),
                        f"{env} is also in app.env or app.secrets; deploy writes {env} itself: remove it "
                        "there, or name another variable here",
                    )
                )
            if service_network(self, service) != "local":
                names = [a for a in addresses if not _IPV4.fullmatch(a)]
                if names:
                    problems.append(
                        (
                            ("server", "hosts"),
                            f"services.{name} is reached over the network and admits app hosts by IPv4 "
                            f"address: give the addresses of {', '.join(names)}",
                        )
                    )
        if problems:
            raise invalid("Config", problems)
        return self

    @model_validator(mode="after")
    def _process_hosts_exist(self) -> Config:
        """A process's `hosts:` names `all`, `first` or a role some host has; `web` is the WSGI app's."""
        roles = {role for host in self.server.hosts for role in host.roles}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name in self.processes:
            if name == "web":
                problems.append(
                    (
                        ("processes", name),
                        "`web` is the app itself (app.wsgi); give this process another name",
                    )
                )
        places = [("processes", n, p.hosts) for n, p in self.processes.items()]
        places += [("jobs", n, j.hosts) for n, j in self.jobs.items()]
        for section, name, where in places:
            if where not in ("all", "first") and self.server.hosts and where not in roles:
                known = ", ".join(sorted(roles)) or "none"
                problems.append(
                    (
                        (section, name, "hosts"),
                        f"no host has the role {where!r} (roles of server.hosts: {known}); expected all, "
                        "first or one of those roles",
                    )
                )
        if problems:
            raise invalid("Config", problems)
        return self

    def runs_web(self, host: str) -> bool:
        """Whether the web process runs on `host` (a `Host.name`): its roles hold `web`, the default."""
        found = next((h for h in self.server.hosts if h.name == host), None)
        return found is None or "web" in found.roles

    def hosts_of(self, where: str) -> list[str]:
        """The hosts `where` (`all`, `first` or a role) names, by `Host.name`, in server.hosts' order."""
        hosts = [h.name for h in self.server.hosts]
        if where == "first":
            return hosts[:1]
        if where != "all":
            return [h.name for h in self.server.hosts if where in h.roles]
        return hosts

    def process_hosts(self, name: str) -> list[str]:
        """The hosts process `name` runs on, by `Host.name` (a singleton: the first of them only)."""
        process = self.processes[name]
        hosts = self.hosts_of(process.hosts)
        return hosts[:1] if process.singleton else hosts

    def job_hosts(self, name: str) -> list[str]:
        """The hosts job `name` runs on, by `Host.name`."""
        return self.hosts_of(self.jobs[name].hosts)

    @property
    def base_dir(self) -> str:
        """Where releases, shared data and the `current` link live on each host."""
        return self.server.base_dir or f"/srv/{self.app.name}"

    @property
    def service(self) -> str:
        """The systemd unit name (without .service)."""
        return self.app.name

    @property
    def database(self) -> str:
        """The app's Postgres database name (services.postgres.database, default the app's name)."""
        postgres = self.services.postgres
        return (postgres.database if postgres and postgres.database else None) or sql_name(self)

    @property
    def primary_domain(self) -> str:
        return self.server.domains[0]

    def workers_for(self, cores: int | None) -> int | None:
        """The Gunicorn worker count for a host with `cores` cores (None: decided on the host)."""
        if self.gunicorn.workers != "auto":
            return int(self.gunicorn.workers)
        cores = cores or self.server.cores
        return None if cores is None else 2 * cores + 1


def service_host(config: Config, service: Postgres | RedisService) -> str | None:
    """The address of the host a service runs on: its `host`, or the first of server.hosts."""
    if service.host is not None:
        return service.host
    return config.server.hosts[0].address if config.server.hosts else None


def service_host_name(config: Config, service: Postgres | RedisService) -> str | None:
    """The host a service runs on as plans and output name it (`Host.name`), or None when server.hosts
    has no such host."""
    address = service_host(config, service)
    return next((host.name for host in config.server.hosts if host.address == address), None)


def service_network(config: Config, service: Postgres | RedisService) -> Literal["local", "tls", "private"]:
    """How the app reaches a service: `local` (the app's one host is the service's host), else the
    service's `network`, by default `tls`."""
    addresses = [h.address for h in config.server.hosts]
    if len(addresses) <= 1 and service_host(config, service) in (*addresses, None):
        return "local"
    return service.network or "tls"


def sql_name(config: Config) -> str:
    """The app's name as an SQL name (the default database and role): `-` becomes `_`."""
    return config.app.name.replace("-", "_")

