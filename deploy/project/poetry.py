"""A Poetry project's dependencies (`[tool.poetry.dependencies]`, no `[project]` table) as requirement lines.

Poetry's constraints become PEP 440 specifiers (`^1.2.3` is `>=1.2.3,<2.0.0`, `~1.2` is `>=1.2,<1.3`,
`1.2.*` is `==1.2.*`, a bare version is `==`); extras and markers are kept, `optional = true` entries
(installed only through an extra of the project) and `python` (the interpreter) are left out. When
`poetry.lock` sits beside pyproject.toml, each direct dependency is pinned to the version it locks, as
`poetry install` would install it. Git, path and URL dependencies are not supported: the error says so.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

_BARE_VERSION = re.compile(r"^\d+(\.\d+)*([a-z]+\d*)?(\.post\d+)?(\.dev\d+)?$", re.I)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _bump(parts: list[int], index: int) -> str:
    upper = [*parts[:index], parts[index] + 1]
    return ".".join(str(p) for p in upper + [0] * (max(len(parts), 2) - len(upper)))


def _numbers(version: str) -> list[int] | None:
    numbers = version.split(".")
    return [int(n) for n in numbers] if all(n.isdigit() for n in numbers) else None


def specifier(constraint: str) -> str | None:
    """The PEP 440 specifier of a Poetry constraint ("" for any version), None when it has no such
    form (`||` alternatives, a caret or tilde on a pre-release)."""
    out: list[str] = []
    for part in (p.strip() for p in constraint.split(",")):
        if "||" in part:
            return None
        if part in ("", "*"):
            continue
        if part.startswith("^") or (part.startswith("~") and not part.startswith("~=")):
            version = part.lstrip("^~").strip()
            parts = _numbers(version)
            if parts is None:
                return None
            if part.startswith("^"):
                index = next((i for i, p in enumerate(parts) if p != 0), len(parts) - 1)
            else:
                index = 1 if len(parts) > 1 else 0
            out += [f">={version}", f"<{_bump(parts, index)}"]
        elif _BARE_VERSION.match(part) or (part.endswith(".*") and _BARE_VERSION.match(part[:-2])):
            out.append(f"=={part}")
        elif re.match(r"^(===|==|!=|~=|>=|<=|>|<)\s*\S", part):
            out.append(part.replace(" ", ""))
        else:
            return None
    return ",".join(out)


def _locked(lock: bytes | None) -> dict[str, str]:
    """Package name (normalized) -> the one version poetry.lock pins for it."""
    if lock is None:
        return {}
    try:
        packages = tomllib.loads(lock.decode("utf-8")).get("package", [])
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    versions: dict[str, set[str]] = {}
    for package in packages if isinstance(packages, list) else []:
        if isinstance(package, dict) and isinstance(package.get("name"), str):
            versions.setdefault(_normalized(package["name"]), set()).add(str(package.get("version")))
    return {name: next(iter(found)) for name, found in versions.items() if len(found) == 1}


def _line(path: str, name: str, spec: Any, locked: dict[str, str]) -> str | None:
    """One requirement line for `name = spec` (None: optional, installed only through an extra)."""
    table = spec if isinstance(spec, dict) else {"version": spec}
    if not isinstance(spec, str | dict):
        raise ValueError(f"{path}: [tool.poetry.dependencies] {name}: several constraints are not supported")
    if table.get("optional"):
        return None
    for source in ("git", "path", "url", "file"):
        if source in table:
            raise ValueError(
                f"{path}: [tool.poetry.dependencies] {name} is a {source} dependency, which deploy does not "
                "install: point app.requirements at a requirements.txt ('poetry export' writes one)"
            )
    version = locked.get(_normalized(name))
    wanted = f"=={version}" if version else specifier(str(table.get("version", "*")))
    if wanted is None:
        raise ValueError(
            f"{path}: [tool.poetry.dependencies] {name} = {table.get('version')!r}: a constraint deploy "
            "cannot turn into a requirement: write it with >=, <, ==, ^ or ~"
        )
    extras = table.get("extras") or []
    line = name + (f"[{','.join(str(e) for e in extras)}]" if extras else "") + wanted
    markers = [str(table["markers"])] if table.get("markers") else []
    if table.get("python") and (python := specifier(str(table["python"]))):
        markers += [f'python_version {op} "{v}"' for op, v in re.findall(r"(>=|<=|==|!=|>|<)([^,]+)", python)]
    return line + (f"; {' and '.join(markers)}" if markers else "")


def poetry_dependencies(path: str, document: dict[str, Any], lock: bytes | None) -> list[str] | None:
    """The requirement lines of `[tool.poetry.dependencies]` (None when there is no such table);
    ValueError naming the dependency deploy cannot install."""
    tool = document.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    dependencies = poetry.get("dependencies") if isinstance(poetry, dict) else None
    if not isinstance(dependencies, dict):
        return None
    locked = _locked(lock)
    lines = (
        _line(path, str(n), s, locked) for n, s in dependencies.items() if _normalized(str(n)) != "python"
    )
    return [line for line in lines if line is not None]
