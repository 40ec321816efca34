"""The check registry and runner: metadata, layers, findings, suppressions applied, one Report."""

from __future__ import annotations

import enum
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploy.checker.context import Context
    from deploy.checker.suppress import Suppression

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
    "effective",
    "rendered",
    "live",
)
AREAS = ("security", "performance", "observability", "deployment", "pitfalls")


class Severity(enum.IntEnum):
    """How bad a finding is; `--fail-on` compares against it."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"expected one of {', '.join(s.label for s in cls)}, got {text!r}") from None


class Layer(enum.Enum):
    """Where a check looks; a check whose layer is unavailable is skipped, and says why."""

    SOURCE = "source"  # the Python sources, parsed, never imported
    PROJECT = "project"  # the project's other files (requirements, Dockerfile, .env, templates)
    CONFIG = "config"  # deploy.yaml
    IMPORT = "import"  # --import was given (the app may still fail to import)
    EFFECTIVE = "effective"  # the app factory imported in a subprocess (--import), successfully
    RENDERED = "rendered"  # the configs deploy renders from deploy.yaml
    TOOLS = "tools"  # external linters run on rendered files (hadolint, gixy, systemd-analyze)
    LIVE = "live"  # the hosts over SSH and the site over HTTPS (--live -e ENV)


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


@dataclass(frozen=True)
class Finding:
    """What a check yields: a message and where (file relative to the project, 1-based line)."""

    message: str
    file: str | None = None
    line: int | None = None
    #: Overrides the check's severity for this one finding.
    severity: Severity | None = None
    #: For live findings: the host (or URL) it was seen on.
    host: str | None = None


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


@dataclass(frozen=True)
class Result:
    """One finding of one check, after suppressions."""

    check: Check
    finding: Finding
    severity: Severity
    suppressed_by: Suppression | None = None
    #: Why the finding still reports although a suppression matched (it expired).
    note: str | None = None

    @property
    def suppressed(self) -> bool:
        return self.suppressed_by is not None


@dataclass
class Report:
    """Everything a run found: results, checks skipped (and why), checks that passed, notes."""

    results: list[Result] = field(default_factory=list)
    skipped: list[tuple[Check, str]] = field(default_factory=list)
    passed: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    root: str = "."
    #: Where file paths are relative to in SARIF and GitHub output (the repository, usually the
    #: current directory), and the project's path from there ("" or "playbooks/app/").
    base: str = "."
    prefix: str = ""
    #: The file that findings without a file of their own point at (deploy.yaml, or the app module).
    anchor: str = "."

    @property
    def active(self) -> list[Result]:
        return [r for r in self.results if not r.suppressed]

    @property
    def suppressed(self) -> list[Result]:
        return [r for r in self.results if r.suppressed]

    def failing(self, threshold: Severity) -> list[Result]:
        return [r for r in self.active if r.severity >= threshold]

    def ids(self) -> set[str]:
        return {r.check.id for r in self.active}


def select(checks: list[Check], only: Iterable[str] = (), ignore: Iterable[str] = ()) -> list[Check]:
    """Filter checks by id or id prefix (`SEC`, `SEC001`) and by area name."""
    only = [o.strip().upper() for o in only if o.strip()]
    ignore = [i.strip().upper() for i in ignore if i.strip()]

    def matches(c: Check, patterns: list[str]) -> bool:
        return any(c.id.upper().startswith(p) or c.area.upper() == p for p in patterns)

    return [c for c in checks if (not only or matches(c, only)) and not matches(c, ignore)]


def run(
    checks: list[Check],
    ctx: Context,
    suppressions: Sequence[Suppression] = (),
    today: date | None = None,
) -> Report:
    """Run every check whose layers are available; apply file and inline suppressions."""
    from deploy.checker.context import Skip
    from deploy.checker.suppress import apply

    apps = ctx.project.apps
    anchor = ctx.config_file if ctx.config is not None and ctx.config_file else apps[0].file if apps else "."
    report = Report(checks=list(checks), root=str(ctx.root), base=str(ctx.root), anchor=anchor or ".")
    for c in checks:
        missing = [reason for layer in c.layers if (reason := ctx.unavailable(layer))]
        if missing:
            report.skipped.append((c, missing[0]))
            continue
        try:
            findings = list(c.func(ctx))
        except Skip as exc:
            report.skipped.append((c, str(exc)))
            continue
        except Exception as exc:
            findings = [
                Finding(
                    f"the check itself failed ({type(exc).__name__}: {exc}); please report this",
                    severity=max(c.severity, Severity.HIGH),
                )
            ]
        if not findings:
            report.passed.append(c)
        for f in findings:
            report.results.append(Result(c, f, f.severity or c.severity))
    _apply_supersedes(report)
    ran = {c.id for c in checks} - {c.id for c, _ in report.skipped}
    report.results, notes = apply(report.results, suppressions, ctx.project, today or date.today(), ran)
    report.notes.extend(notes)
    report.notes.extend(
        f"{m.path}: cannot be parsed ({m.syntax_error}); the source checks could not read it"
        for m in ctx.project.python
        if m.syntax_error
    )
    report.notes.extend(ctx.notes)
    report.results.sort(
        key=lambda r: (AREAS.index(r.check.area), r.check.id, r.finding.file or "", r.finding.line or 0)
    )
    return report


def _apply_supersedes(report: Report) -> None:
    """Drop the findings of checks that a check which ran replaces; report those checks as skipped.

    Whether the precise check confirmed the problem (it reports it itself) or refuted it (the imported
    app sets what the source seemed to miss), one finding per problem remains.
    """
    crashed = {r.check.id for r in report.results if r.finding.message.startswith("the check itself failed")}
    skipped = {c.id for c, _ in report.skipped}
    by: dict[str, Check] = {}
    for c in report.checks:
        if c.id in skipped or c.id in crashed:
            continue
        for old in c.supersedes:
            by.setdefault(old, c)
    if not by:
        return
    for c in report.checks:
        if c.id in by and c.id not in skipped:
            newer = by[c.id]
            report.skipped.append((c, f"superseded by {newer.id} ({newer.title})"))
    report.results = [r for r in report.results if r.check.id not in by]
    report.passed = [c for c in report.passed if c.id not in by]


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
