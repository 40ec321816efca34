"""Load deploy.yaml once: parse YAML keeping line numbers, overlay an environment, validate.

This is the only module that reads YAML or the process environment. Every problem becomes a
`Problem` that names the file, the line, the key path and what was expected.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from deploy.config.errors import ConfigError as ConfigError
from deploy.config.errors import KeyPath as KeyPath
from deploy.config.errors import Problem as Problem
from deploy.config.errors import format_path as format_path
from deploy.config.errors import one_line as one_line
from deploy.config.model import Config, Host
from deploy.config.redact import MIN_SECRET_LENGTH
from deploy.config.secrets import key_weakness

#: Where `deploy sandbox up` writes the environment that `-e sandbox` uses.
SANDBOX_ENV_NAME = "sandbox"


@dataclass
class Document:
    """Parsed YAML plus the line of every key path in it."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    nodes: int = 0


#: More values than this after aliases are expanded is not a deploy.yaml but an alias bomb.
MAX_NODES = 20000
#: Python refuses to turn more than 4300 digits into a number or back (sys.get_int_max_str_digits()).
MAX_DIGITS = 4000
_TOO_BIG = 10**MAX_DIGITS
#: Deeper nesting than this is no deploy.yaml (its deepest key is 4 levels down); the parser recurses
#: once per level, so an unbounded depth ends in a RecursionError.
MAX_DEPTH = 50


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than MAX_DEPTH while it composes the nodes."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, f"values are nested more than {MAX_DEPTH} levels deep", mark
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


#: A deploy.yaml, .env or suppressions file is a few KB; a larger one is not read to its end.
MAX_BYTES = 1 << 20


def read_bytes(path: str | os.PathLike[str], missing: str = "no such file") -> bytes:
    """A file's contents; ConfigError naming the file when it is missing (`missing` says what to
    do), not a file, unreadable or larger than MAX_BYTES (read just past it: -c /dev/zero would
    be read until memory runs out)."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([Problem(name, None, (), missing)]) from None
    except OSError as exc:
        raise ConfigError(
            [Problem(name, None, (), f"cannot read this file: {exc.strerror or exc}")]
        ) from None
    if len(raw) > MAX_BYTES:
        message = f"this file is larger than {MAX_BYTES >> 20} MiB; refusing to read it"
        raise ConfigError([Problem(name, None, (), message)])
    return raw


def read_text(path: str | os.PathLike[str], missing: str = "no such file") -> str:
    """A UTF-8 text file's contents; ConfigError naming the file as `read_bytes` does, and the line
    of a byte that is not UTF-8."""
    raw = read_bytes(path, missing)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [Problem(str(path), line, (), "this file is not UTF-8 text; save it as UTF-8")]
        ) from None


def _construct(node: yaml.Node, path: KeyPath, doc: Document, inside: frozenset[int] = frozenset()) -> Any:
    """Plain data from a node; `inside` holds the collections this node is part of (an alias to one
    of them, such as `&a [*a]`, would be infinite)."""
    if id(node) in inside:
        raise ConfigError(
            [
                Problem(
                    doc.file,
                    node.start_mark.line + 1,
                    path,
                    "a YAML alias refers to a value that contains it",
                )
            ]
        )
    doc.nodes += 1
    if doc.nodes > MAX_NODES:
        raise ConfigError(
            [
                Problem(
                    doc.file,
                    node.start_mark.line + 1,
                    path,
                    f"this file expands to more than {MAX_NODES} values (YAML aliases?); refusing to read it",
                )
            ]
        )
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    [
                        Problem(
                            doc.file,
                            key_node.start_mark.line + 1,
                            path,
                            "YAML merge keys (<<) are not supported",
                        )
                    ]
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    [Problem(doc.file, key_node.start_mark.line + 1, path, "a key must be a plain string")]
                )
            # Keys are taken as written: YAML 1.1 would turn 'on', 'yes' or 'no' into booleans.
            key = str(key_node.value)
            if key in out:
                raise ConfigError(
                    [Problem(doc.file, key_node.start_mark.line + 1, (*path, key), "this key is given twice")]
                )
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*path, key), doc, inside | {id(node)})
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), doc, inside | {id(node)}) for i, item in enumerate(node.value)]
    return _scalar(node, path, doc)


def _scalar(node: yaml.Node, path: KeyPath, doc: Document) -> Any:
    """A scalar's value; a Problem for one its tag cannot hold (`2024-02-30`, `!!int x`, 5,000 digits)."""
    line = node.start_mark.line + 1
    too_long = f"expected a number of at most {MAX_DIGITS} digits"
    try:
        value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (ValueError, ArithmeticError, TypeError, AttributeError) as exc:
        # PyYAML's constructors fail with these on a value their tag cannot hold.
        if "integer string conversion" in str(exc):
            raise ConfigError([Problem(doc.file, line, path, too_long)]) from None
        what = node.tag.rsplit(":", 1)[-1]
        detail = f": {exc}" if isinstance(exc, ValueError) else ""
        raise ConfigError(
            [Problem(doc.file, line, path, f"{_show(node.value)} is not a valid YAML {what}{detail}")]
        ) from None
    # Hexadecimal, octal and 1:2:3 numbers are not limited when read, but could never be printed.
    if isinstance(value, int) and abs(value) >= _TOO_BIG:
        raise ConfigError([Problem(doc.file, line, path, too_long)])
    return value


def parse_yaml(text: str, file: str) -> Document:
    """Parse YAML text into plain data, remembering the line of each key path."""
    doc = Document(file=file, data=None)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.reader.ReaderError as exc:
        at = text[: exc.position or 0].count("\n") + 1
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        raise ConfigError(
            [Problem(file, at, (), f"this is not valid YAML: it contains the control character {char}")]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([Problem(file, line, (), f"this is not valid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, None, (), f"this is not valid YAML: {exc}")]) from None
    if node is None:
        doc.data = {}
        return doc
    try:
        doc.data = _construct(node, (), doc)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ConfigError(
            [Problem(file, mark.line + 1 if mark else None, (), f"this is not valid YAML: {exc.problem}")]
        ) from None
    return doc


def _merge(base: Any, over: Any) -> Any:
    """Overlay `over` onto `base`: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


def _model_keys(model: type[BaseModel], path: KeyPath) -> list[str]:
    """The keys allowed at `path` of the model, for "did you mean" hints."""
    current: Any = model
    for part in path:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _submodel(fields[part].annotation)
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _submodel(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _expected(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    msg = str(error["msg"])
    if kind == "missing":
        return "this key is required"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind in ("string_type",):
        value = error.get("input")
        if isinstance(value, bool | int | float):
            return f'expected a string, got {_show(value)}; quote it: "{_show(value)}"'
        return f"expected a string, got {_show(value)}"
    if kind in ("int_type", "int_parsing"):
        return f"expected a whole number, got {_show(error.get('input'))}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_show(error.get('input'))}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys to values, got {_show(error.get('input'))}"
    if kind == "list_type":
        return f"expected a list, got {_show(error.get('input'))}"
    if kind == "literal_error":
        return f"expected {msg.removeprefix('Input should be ')}, got {_show(error.get('input'))}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{msg.replace('Input should be', 'expected a value')}, got {_show(error.get('input'))}"
    if kind == "too_short":
        return "expected at least one item"
    return msg


def _show(value: Any) -> str:
    """A value as it is written in YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    # A 4,000-digit number or a page of text is not repeated in full in a one-line error.
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


_TAG = re.compile(
    r"^(function-[a-z]+\[.*\]|[a-z]+(-[a-z]+)+|[a-z]+\[.*\]|str|int|bool|float|dict|list|none)$"
)


def _clean_path(loc: tuple[Any, ...], doc: Document) -> KeyPath:
    """Drop pydantic's union branch names (such as 'constrained-int' or 'literal[False]'), and the
    '[key]' it adds after a mapping's key when the key itself is wrong (the key is named already)."""
    path: KeyPath = ()
    for part in loc:
        if isinstance(part, str) and (*path, part) not in doc.lines and (part == "[key]" or _TAG.match(part)):
            continue
        path = (*path, part)
    return path


def _problems(exc: ValidationError, doc: Document) -> list[Problem]:
    messages: dict[KeyPath, list[str]] = {}
    for error in exc.errors():
        path = _clean_path(tuple(error["loc"]), doc)
        if error["type"] == "literal_error" and path and path[-1] == "tls":
            continue  # the TLS model's own error says more than "expected False"
        if error["type"] == "extra_forbidden":
            allowed = _model_keys(Config, path[:-1])
            hint = difflib.get_close_matches(str(path[-1]), allowed, n=1)
            message = f"unknown key {str(path[-1])!r}"
            message += f"; did you mean {hint[0]!r}?" if hint else f"; expected one of: {', '.join(allowed)}"
        else:
            message = _expected(error)
        if message not in messages.setdefault(path, []):
            messages[path].append(message)
    problems: list[Problem] = []
    for path, texts in messages.items():
        line = None
        for n in range(len(path), -1, -1):
            if path[:n] in doc.lines:
                line = doc.lines[path[:n]]
                break
        problems.append(Problem(doc.file, line, path, _join_alternatives(texts)))
    return problems


def _join_alternatives(texts: list[str]) -> str:
    """Merge the errors of a union's branches: "expected A, got X" + "expected B, got X"."""
    if len(texts) > 1 and all(t.startswith("expected ") and ", got " in t for t in texts):
        got = texts[0].rsplit(", got ", 1)[1]
        wanted = [t.removeprefix("expected ").rsplit(", got ", 1)[0] for t in texts]
        return f"expected {' or '.join(wanted)}, got {got}"
    return "; ".join(texts)


def sandbox_environment_file() -> Path:
    """Where `deploy sandbox up` writes the overlay that `-e sandbox` uses."""
    state = os.environ.get("DEPLOY_SANDBOX_DIR")
    if state:
        return Path(state) / "environment.yaml"
    return (
        Path(os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local/state")))
        / "deploy/sandbox/environment.yaml"
    )


def _sandbox_acme(data: dict[str, Any], acme: Any, sandbox: Document) -> dict[str, Any]:
    """Apply the sandbox's `acme` section to an ACME tls (one with `email`), and only to that.

    `{server, ca_bundle}` (pebble, started by `deploy sandbox up`) replaces tls.acme_server and
    tls.ca_bundle; `false` (no ACME server in the sandbox) turns an ACME tls into `false`, since no
    sandbox host can reach Let's Encrypt. `tls: false` and an own cert and key are left alone.
    """
    if acme is None:
        return data
    valid = acme is False or (
        isinstance(acme, dict)
        and set(acme) == {"server", "ca_bundle"}
        and all(isinstance(v, str) and v for v in acme.values())
    )
    if not valid:
        raise ConfigError(
            [
                Problem(
                    sandbox.file,
                    sandbox.lines.get(("acme",)),
                    ("acme",),
                    "expected false or a mapping with server and ca_bundle; "
                    "run 'deploy sandbox up' again to rewrite this file",
                )
            ]
        )
    server = data.get("server")
    if not isinstance(server, dict):
        return data
    tls = server.get("tls")
    if not isinstance(tls, dict) or "email" not in tls or "cert" in tls or "key" in tls:
        return data
    if acme is False:
        new_tls: dict[str, Any] | bool = False
    else:
        new_tls = {**tls, "acme_server": acme["server"], "ca_bundle": acme["ca_bundle"]}
    return {**data, "server": {**server, "tls": new_tls}}


def _host_address(entry: Any) -> str | None:
    """The address of one entry of server.hosts as written (`host`, `user@host:port`, a mapping)."""
    try:
        return Host.model_validate(entry).address
    except ValidationError:
        return None


def _sandbox_hosts(data: dict[str, Any], merged: dict[str, Any]) -> dict[str, Any]:
    """Stand the sandbox's hosts in for deploy.yaml's, in order, so a rehearsal runs as production would:
    the i-th sandbox host takes the i-th host's roles (the last one also those of hosts the sandbox has
    no room for), and a service placed on a host (`services.*.host`) moves to the host standing in."""
    server, sandbox_server = data.get("server"), merged.get("server")
    if not isinstance(server, dict) or not isinstance(sandbox_server, dict):
        return merged
    own, stand_ins = server.get("hosts"), sandbox_server.get("hosts")
    if not isinstance(own, list) or not own or not isinstance(stand_ins, list) or not stand_ins:
        return merged
    place = {i: min(i, len(stand_ins) - 1) for i in range(len(own))}
    roles: dict[int, list[str]] = {}
    for i, entry in enumerate(own):
        theirs = entry.get("roles") if isinstance(entry, dict) else None
        for role in theirs if isinstance(theirs, list) else ["web"]:
            if role not in roles.setdefault(place[i], []):
                roles[place[i]].append(role)
    if any(isinstance(entry, dict) and "roles" in entry for entry in own):
        sandbox_server = {
            **sandbox_server,
            "hosts": [
                {"address": address, "roles": roles.get(j, ["web"])} if isinstance(address, str) else address
                for j, address in enumerate(stand_ins)
            ],
        }
    moved = {_host_address(entry): stand_ins[place[i]] for i, entry in enumerate(own)}
    services = merged.get("services")
    if isinstance(services, dict):
        services = {
            name: {**service, "host": moved.get(service["host"], service["host"])}
            if isinstance(service, dict) and isinstance(service.get("host"), str)
            else service
            for name, service in services.items()
        }
        return {**merged, "server": sandbox_server, "services": services}
    return {**merged, "server": sandbox_server}


def load(
    path: str | os.PathLike[str] = "deploy.yaml", environment: str | None = None, project_files: bool = True
) -> Config:
    """Read, overlay and validate a deploy.yaml; raise ConfigError naming every problem. With
    `project_files`, values are also judged by the files of the project (the folder of deploy.yaml),
    such as what app.static.dir holds; `deploy check` reports those as findings instead."""
    text = read_text(path, "no such file; run 'deploy init' to write one, or name another with -c FILE")
    return load_text(text, str(path), environment, Path(path).resolve().parent if project_files else None)


def load_text(
    text: str, file: str = "deploy.yaml", environment: str | None = None, project_dir: Path | None = None
) -> Config:
    """Validate deploy.yaml given as text (see `load`); `project_dir`: the project's folder, if known."""
    context = {"project_dir": project_dir}
    doc = parse_yaml(text, file)
    if not doc.lines:
        raise ConfigError(
            [Problem(file, None, (), "this file is empty; expected the sections app: and server:")]
        )
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(file, 1, (), "expected a mapping with the sections app: and server:")])
    data = doc.data
    if environment is not None:
        envs = data.get("environments") or {}
        if not isinstance(envs, dict):
            envs = {}
        if environment in envs:
            overlay = envs[environment]
            if not isinstance(overlay, dict):
                raise ConfigError(
                    [
                        Problem(
                            file,
                            doc.lines.get(("environments", environment)),
                            ("environments", environment),
                            "expected a mapping that overlays deploy.yaml's keys",
                        )
                    ]
                )
            # Errors inside the overlay point at the overlay's own lines.
            doc.lines.update(_overlay_lines(doc, environment))
            data = _merge(data, overlay)
        elif environment == SANDBOX_ENV_NAME and sandbox_environment_file().is_file():
            sandbox_file = sandbox_environment_file()
            sandbox = parse_yaml(read_text(sandbox_file), str(sandbox_file))
            overlay = dict(sandbox.data) if isinstance(sandbox.data, dict) else {}
            acme = overlay.pop("acme", None)
            data = _sandbox_hosts(data, _sandbox_acme(_merge(data, overlay), acme, sandbox))
        else:
            known = sorted(envs)
            hint = difflib.get_close_matches(environment, known, n=1)
            message = f"no environment {environment!r} in environments:"
            if hint:
                message += f"; did you mean {hint[0]!r}?"
            elif known:
                message += f"; defined: {', '.join(known)}"
            if environment == SANDBOX_ENV_NAME:
                message += "; run 'deploy sandbox up' first"
            raise ConfigError([Problem(file, doc.lines.get(("environments",)), ("environments",), message)])
    try:
        config = Config.model_validate({**data, "environment": environment}, context=context)
    except ValidationError as exc:
        problems = _problems(exc, doc)
        # A key written in the selected overlay is named as written: environments.<name>.<key>.
        prefix = ("environments", environment) if environment is not None else ()
        raise ConfigError(
            [
                Problem(p.file, p.line, (*prefix, *p.path), p.message)
                if prefix and (*prefix, *p.path) in doc.lines
                else p
                for p in problems
            ]
        ) from None
    others = _other_environments(doc, environment, context)
    if others:
        raise ConfigError(others)
    return config


def _overlay_lines(doc: Document, environment: str) -> dict[KeyPath, int]:
    """The lines of an overlay's own keys, as the lines of the keys they overlay."""
    prefix = ("environments", environment)
    return {path[2:]: line for path, line in doc.lines.items() if path[:2] == prefix and len(path) > 2}


def line_of(
    config_file: str | os.PathLike[str], environment: str | None, path: KeyPath
) -> tuple[int | None, KeyPath]:
    """Where `path` is written in a deploy.yaml (in the environment's overlay if it is there): its
    line and its key path as written; no line if the file cannot be read again."""
    try:
        doc = parse_yaml(read_text(config_file), str(config_file))
    except ConfigError:
        return None, path
    if environment:
        overlay = ("environments", environment, *path)
        if overlay in doc.lines:
            return doc.lines[overlay], overlay
    return doc.lines.get(path), path


def _other_environments(doc: Document, selected: str | None, context: dict[str, Any]) -> list[Problem]:
    """Every other entry of environments: overlaid and validated too, so that a typo in the one for
    production fails `deploy config` or `deploy check` in CI, not production's first push."""
    envs = doc.data.get("environments") if isinstance(doc.data, dict) else None
    if not isinstance(envs, dict):
        return []
    problems: list[Problem] = []
    for name, overlay in envs.items():
        # An entry that is not a mapping has failed the validation of the whole file already.
        if name == selected or not isinstance(overlay, dict):
            continue
        prefix = ("environments", name)
        try:
            Config.model_validate({**_merge(doc.data, overlay), "environment": name}, context=context)
        except ValidationError as exc:
            shadow = Document(doc.file, doc.data, {**doc.lines, **_overlay_lines(doc, name)})
            problems += [
                Problem(p.file, p.line, (*prefix, *p.path), p.message) for p in _problems(exc, shadow)
            ]
    return problems


def find_secret(name: str, dotenv: Mapping[str, str]) -> tuple[str, str] | None:
    """A secret's value and where push takes it from: the environment first, then the project's
    .env (`dotenv`, from parse_dotenv); None if neither has it. An empty value is no value: a CI
    secret that is not defined expands to "", and must not replace the real one on every host."""
    if os.environ.get(name):
        return os.environ[name], "the environment"
    if dotenv.get(name):
        return dotenv[name], ".env"
    return None


def read_secrets(
    config: Config, project_dir: str | os.PathLike[str] = ".", config_file: str = "deploy.yaml"
) -> dict[str, str]:
    """Resolve the values of `app.secrets` from the process environment, then the project's .env."""
    dotenv = parse_dotenv(Path(project_dir) / ".env")
    values: dict[str, str] = {}
    missing: list[str] = []
    for name in config.app.secrets:
        found = find_secret(name, dotenv)
        if found is None:
            sources = (("the environment", os.environ), (".env", dotenv))
            empty = [where for where, value in sources if name in value]
            missing.append(f"{name} (empty in {' and in '.join(empty)})" if empty else name)
        else:
            values[name] = found[0]

    short = [f"{n} has {len(v)} characters" for n, v in values.items() if len(v) < MIN_SECRET_LENGTH]
    problems = []
    if missing:
        problems.append(
            f"no value for {', '.join(missing)}: set it in the environment or in .env (never in deploy.yaml)"
        )
    if short:
        problems.append(
            f"{', '.join(short)}: too short to keep out of deploy's output (a secret needs at least "
            f"{MIN_SECRET_LENGTH} characters; shorter ones would be in ordinary words)"
        )
    if problems:
        line, path = line_of(config_file, config.environment, ("app", "secrets"))
        raise ConfigError([Problem(config_file, line, path, message) for message in problems])
    return values


def known_secrets(config: Config, project_dir: str | os.PathLike[str] = ".") -> dict[str, str]:
    """The values of `app.secrets` that the environment or the project's .env holds; none required."""
    dotenv = parse_dotenv(Path(project_dir) / ".env")
    found = {name: find_secret(name, dotenv) for name in config.app.secrets}
    return {name: value[0] for name, value in found.items() if value is not None}


def secret_status(config: Config, project_dir: str | os.PathLike[str] = ".") -> dict[str, str]:
    """For each secret name: where push would take it from, or '(missing)'; never the value. A key
    too weak for production (what `deploy check` reports as SEC020) says why."""
    dotenv = parse_dotenv(Path(project_dir) / ".env")
    status: dict[str, str] = {}
    for name in config.app.secrets:
        found = find_secret(name, dotenv)
        if found is None:
            status[name] = "(missing)"
            continue
        value, source = found
        weakness = key_weakness(name, value)
        status[name] = f"(set in {source}" + (f"; weak: it {weakness})" if weakness else ")")
    return status


def parse_dotenv(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines from a .env file (quotes stripped, comments ignored); none if there is no
    such file, ConfigError if it cannot be read or is not UTF-8."""
    out: dict[str, str] = {}
    if not os.path.lexists(path):
        return out
    text = read_text(path)
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out
