"""The check registry: each check's metadata and function, from deploy.checks, plugins and the project."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from deploy.checker.layers import Finding, Layer, Severity

if TYPE_CHECKING:
    from deploy.checker.context import Context

#: The entry-point group through which other packages add checks.
ENTRY_POINT_GROUP = "deploy.checks"
#: A project's own checks: every `*.py` in this folder of the project.
LOCAL_CHECKS_DIR = "deploy_checks"
#: Built-in check modules inside the `deploy.checks` package.
BUILTIN_MODULES = (
    "security",
    "performance",
    "observability",
    "deployment",
    "pitfalls",
    "crosslayer",
    "database",
    "workers",
    "processes",
    "effective",
    "rendered",
    "live",
    "pins",
)
AREAS = ("security", "performance", "observability", "deployment", "pitfalls")


#: What each layer is, as a check's page says under "Where it looks".
LAYER_TEXT = {
    Layer.SOURCE: "the Python sources, parsed with `ast` (never imported)",
    Layer.PROJECT: "the project's files (requirements, Dockerfile, .env, templates, .gitignore)",
    Layer.CONFIG: "deploy.yaml (with `-e ENV` overlaid)",
    Layer.IMPORT: "`--import`: the app factory imported in a subprocess",
    Layer.EFFECTIVE: "the effective configuration of the app imported with `--import` under the production "
    "environment",
    Layer.RENDERED: "the configs `deploy render` produces from deploy.yaml",
    Layer.TOOLS: "an external linter run on those files",
    Layer.LIVE: "`--live -e ENV`: the hosts over SSH and the site over HTTP(S)",
}
#: Hand-written failing and passing examples of a check: `ID.examples.md` in the check's package.
EXAMPLES_SUFFIX = ".examples.md"

CheckFunc = Callable[["Context"], Iterable[Finding]]


@dataclass(frozen=True)
class Check:
    """A registered check: its metadata and the function that runs it."""

    id: str
    area: str
    severity: Severity
    title: str
    why: str
    fix: str
    layers: tuple[Layer, ...]
    func: CheckFunc
    references: tuple[str, ...] = ()
    #: The package that ships the doc page (`deploy.checks` for built-ins).
    package: str = "deploy.checks"
    origin: str = "builtin"
    #: Ids of checks this one replaces when it runs: a more precise layer (the imported app) looking
    #: at the same thing as a cruder one (the source). The runner drops their findings and says so.
    supersedes: tuple[str, ...] = ()
    #: More about what the check looks at (Markdown, line breaks kept), on its page after the fix.
    details: str = ""

    @property
    def security_severity(self) -> str:
        """GitHub code scanning's 0-10 score, as a string (SARIF property `security-severity`)."""
        return {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5", Severity.LOW: "3.0"}[
            self.severity
        ]

    def doc(self) -> str:
        """The Markdown page of the check, made from its metadata (the one source of its texts), with
        the hand-written examples of `ID.examples.md` in its package, if it has any."""
        layers = "".join(f"- {layer.value}: {LAYER_TEXT[layer]}\n" for layer in self.layers)
        refs = "".join(f"- <{r}>\n" for r in self.references)
        example = self.examples()
        return (
            f"# {self.id}: {self.title}\n\n"
            "| area | severity | looks at |\n| --- | --- | --- |\n"
            f"| {self.area} | {self.severity.label} | {', '.join(layer.value for layer in self.layers)} |\n\n"
            f"## Why it matters\n\n{self.why}\n\n"
            f"## How to fix it\n\n{self.fix}\n\n"
            + (f"{self.details}\n\n" if self.details else "")
            + (f"## Example\n\n{example.strip()}\n\n" if example else "")
            + f"## Where it looks\n\n{layers}\n"
            + (
                f"When it runs, it supersedes {', '.join(self.supersedes)}: their findings are dropped (one "
                "finding per problem, from the layer that sees the app as it really starts) and they are "
                f'listed as skipped, "superseded by {self.id}".\n\n'
                if self.supersedes
                else ""
            )
            + "When a layer is not available (no deploy.yaml, no `--import`, no `--live`), "
            "the check is reported as\n"
            "skipped with the reason, never as passed.\n\n"
            "## Accepting a finding\n\n"
            "In `deploy-check.yaml`, with a reason and an expiry date "
            "(after it, the finding reports again):\n\n"
            f"```yaml\nsuppressions:\n  - id: {self.id}\n    reason: why this is acceptable here\n"
            "    expires: 2026-12-31\n```\n\n"
            "or on the line of the finding (or the comment line above it): "
            f"`# deploy: ignore[{self.id}] why`.\n"
            + (f"\n## References\n\n{refs}" if refs else "")
        )

    def examples(self) -> str | None:
        """The hand-written failing and passing examples (`ID.examples.md` in the check's package)."""
        try:
            resource = importlib.resources.files(self.package) / f"{self.id}{EXAMPLES_SUFFIX}"
            if resource.is_file():
                return resource.read_text(encoding="utf-8")
        except (ModuleNotFoundError, TypeError):
            pass
        return None


def check(
    id: str,
    *,
    area: str,
    severity: str,
    title: str,
    why: str,
    fix: str,
    layers: Sequence[str] = ("source",),
    references: Sequence[str] = (),
    supersedes: Sequence[str] = (),
    details: str = "",
) -> Callable[[CheckFunc], Check]:
    """Register a function as a check (the decorator used by built-in and third-party checks)."""
    if area not in AREAS:
        raise ValueError(f"check {id}: area must be one of {', '.join(AREAS)}, got {area!r}")

    def wrap(func: CheckFunc) -> Check:
        return Check(
            id=id,
            area=area,
            severity=Severity.parse(severity),
            title=title,
            why=" ".join(why.split()),
            fix=" ".join(fix.split()),
            layers=tuple(Layer(layer) for layer in layers),
            func=func,
            references=tuple(references),
            package=func.__module__.rpartition(".")[0] or func.__module__,
            supersedes=tuple(supersedes),
            details=inspect.cleandoc(details),
        )

    return wrap


def checks_in(module: ModuleType, origin: str = "builtin") -> list[Check]:
    """Every Check object defined at the top level of a module."""
    found = [obj for obj in vars(module).values() if isinstance(obj, Check)]
    if origin != "builtin":
        found = [Check(**{**c.__dict__, "origin": origin}) for c in found]
    return found


class RegistryError(Exception):
    """A third-party or local check cannot be loaded, or two checks share an id."""


def load_checks(project_dir: Path | None = None, plugins: bool = True) -> list[Check]:
    """Built-in checks, then entry-point checks, then the project's local folder; ids must be unique."""
    found: list[Check] = []
    for name in BUILTIN_MODULES:
        found.extend(checks_in(importlib.import_module(f"deploy.checks.{name}")))
    if plugins:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                module = entry.load()
            except Exception as exc:
                raise RegistryError(
                    f"cannot load checks from entry point {entry.name!r} ({entry.value}): {exc}"
                ) from None
            if isinstance(module, ModuleType):
                found.extend(checks_in(module, origin=f"plugin {entry.name}"))
        if project_dir is not None and (project_dir / LOCAL_CHECKS_DIR).is_dir():
            for path in sorted((project_dir / LOCAL_CHECKS_DIR).glob("*.py")):
                found.extend(checks_in(_load_file(path), origin=f"local {path.name}"))
    seen: dict[str, Check] = {}
    for c in found:
        if c.id in seen:
            raise RegistryError(f"two checks use the id {c.id}: {seen[c.id].origin} and {c.origin}")
        seen[c.id] = c
    return sorted(found, key=lambda c: (AREAS.index(c.area), c.id))


def _load_file(path: Path) -> ModuleType:
    name = f"deploy_local_checks_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RegistryError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise RegistryError(f"{path}: cannot be loaded: {type(exc).__name__}: {exc}") from None
    return module


# --- results -------------------------------------------------------------------------------------


def select(checks: list[Check], only: Iterable[str] = (), ignore: Iterable[str] = ()) -> list[Check]:
    """Filter checks by id or id prefix (`SEC`, `SEC001`) and by area name."""
    only = [o.strip().upper() for o in only if o.strip()]
    ignore = [i.strip().upper() for i in ignore if i.strip()]

    def matches(c: Check, patterns: list[str]) -> bool:
        return any(c.id.upper().startswith(p) or c.area.upper() == p for p in patterns)

    return [c for c in checks if (not only or matches(c, only)) and not matches(c, ignore)]


def describe(c: Check) -> dict[str, Any]:
    """The metadata of a check as plain data (for --list --format json)."""
    return {
        "id": c.id,
        "area": c.area,
        "severity": c.severity.label,
        "title": c.title,
        "why": c.why,
        "fix": c.fix,
        "layers": [layer.value for layer in c.layers],
        "references": list(c.references),
        "doc": f"deploy explain {c.id}",
        "origin": c.origin,
        "supersedes": list(c.supersedes),
    }
