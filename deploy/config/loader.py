"""Load deploy.yaml once: parse it (config/document.py keeps line numbers), overlay an environment
(its own, or one supplied from outside: config/overlays.py), validate.

Every problem becomes a `Problem` that names the file, the line, the key path and what was expected.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from deploy.config.document import MAX_BYTES as MAX_BYTES
from deploy.config.document import Document, merge, show
from deploy.config.document import parse_yaml as parse_yaml
from deploy.config.document import read_bytes as read_bytes
from deploy.config.document import read_text as read_text
from deploy.config.errors import ConfigError as ConfigError
from deploy.config.errors import KeyPath as KeyPath
from deploy.config.errors import Problem as Problem
from deploy.config.errors import format_path as format_path
from deploy.config.errors import one_line as one_line
from deploy.config.model import Config
from deploy.config.overlays import ENVIRONMENT_OVERLAYS, Overlay
from deploy.config.redact import MIN_SECRET_LENGTH
from deploy.config.secrets import key_weakness


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
            return f'expected a string, got {show(value)}; quote it: "{show(value)}"'
        return f"expected a string, got {show(value)}"
    if kind in ("int_type", "int_parsing"):
        return f"expected a whole number, got {show(error.get('input'))}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {show(error.get('input'))}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys to values, got {show(error.get('input'))}"
    if kind == "list_type":
        return f"expected a list, got {show(error.get('input'))}"
    if kind == "literal_error":
        return f"expected {msg.removeprefix('Input should be ')}, got {show(error.get('input'))}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{msg.replace('Input should be', 'expected a value')}, got {show(error.get('input'))}"
    if kind == "too_short":
        return "expected at least one item"
    return msg


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
    """Merge the errors of a union's branches: "expected A, got X" + "expected B, got X". What is
    expected is deploy's own words; what was got is the user's value, which may hold ", got " itself:
    the first ", got " ends the expectation. Branches that got different things stay apart."""
    if len(texts) > 1 and all(t.startswith("expected ") and ", got " in t for t in texts):
        parts = [t.removeprefix("expected ").split(", got ", 1) for t in texts]
        got = {part[1] for part in parts}
        if len(got) == 1:
            return f"expected {' or '.join(part[0] for part in parts)}, got {got.pop()}"
    return "; ".join(texts)


def load(
    path: str | os.PathLike[str] = "deploy.yaml",
    environment: str | None = None,
    project_files: bool = True,
    overlays: Mapping[str, Overlay] = ENVIRONMENT_OVERLAYS,
) -> Config:
    """Read, overlay and validate a deploy.yaml; raise ConfigError naming every problem. With
    `project_files`, values are also judged by the files of the project (the folder of deploy.yaml),
    such as what app.static.dir holds; `deploy check` reports those as findings instead. `overlays`:
    environments supplied from outside deploy.yaml (see config/overlays.py)."""
    text = read_text(path, "no such file; run 'deploy init' to write one, or name another with -c FILE")
    return load_text(
        text, str(path), environment, Path(path).resolve().parent if project_files else None, overlays
    )


def load_text(
    text: str,
    file: str = "deploy.yaml",
    environment: str | None = None,
    project_dir: Path | None = None,
    overlays: Mapping[str, Overlay] = ENVIRONMENT_OVERLAYS,
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
    data = doc.data if environment is None else _overlaid(doc, environment, overlays)
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


def _overlaid(doc: Document, environment: str, overlays: Mapping[str, Overlay]) -> dict[str, Any]:
    """deploy.yaml's data with the environment's overlay applied: its own environments.<name>, else
    one of `overlays`; ConfigError if neither has it."""
    data, file = doc.data, doc.file
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
        return dict(merge(data, overlay))
    supplied = overlays[environment].apply(data) if environment in overlays else None
    if supplied is not None:
        return supplied
    known = sorted(envs)
    hint = difflib.get_close_matches(environment, known, n=1)
    message = f"no environment {environment!r} in environments:"
    if hint:
        message += f"; did you mean {hint[0]!r}?"
    elif known:
        message += f"; defined: {', '.join(known)}"
    if environment in overlays:
        message += f"; {overlays[environment].missing}"
    raise ConfigError([Problem(file, doc.lines.get(("environments",)), ("environments",), message)])


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


def problem_at(
    config_file: str | os.PathLike[str], environment: str | None, path: KeyPath, message: str
) -> ConfigError:
    """One problem with the key `path` of a deploy.yaml that loaded (a ConfigError: exit 2), at the
    line where the key is written (in the environment's overlay if it is there), else at the line of
    its closest parent that is; the file alone when none of them is written."""
    for n in range(len(path), 0, -1):
        line, written = line_of(config_file, environment, path[:n])
        if line is not None:
            return ConfigError([Problem(str(config_file), line, (*written, *path[n:]), message)])
    return ConfigError([Problem(str(config_file), None, path, message)])


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
            Config.model_validate({**merge(doc.data, overlay), "environment": name}, context=context)
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
