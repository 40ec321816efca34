"""Read a YAML file of deploy's (deploy.yaml, a sandbox's environment, suppressions) into plain data,
keeping the line of every key path, refusing what is not a small YAML document (over MAX_BYTES, alias
bombs, nesting deeper than MAX_DEPTH, numbers of more than MAX_DIGITS digits); overlay one such
document on another (`merge`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from deploy.config.errors import ConfigError as ConfigError
from deploy.config.errors import KeyPath as KeyPath
from deploy.config.errors import Problem as Problem
from deploy.config.errors import format_path as format_path
from deploy.config.errors import one_line as one_line


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
            [Problem(doc.file, line, path, f"{show(node.value)} is not a valid YAML {what}{detail}")]
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


def merge(base: Any, over: Any) -> Any:
    """Overlay `over` onto `base`: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return over


def show(value: Any) -> str:
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
