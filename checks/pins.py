"""Pins that hold an old package while its companions move on: the app dies at import after install."""

from __future__ import annotations

from collections.abc import Iterator

from deploy.checker import Context, Finding, check
from deploy.project.pins import BREAKAGES, declared, from_requirements
from deploy.project.requirements import RequirementsError, constraint_lines, resolve, top_level

from .deployment import _host_environments

_TABLE = "\n".join(f"    - {b.package}{b.old} with {b.companion}>={b.since}: `{b.error}`" for b in BREAKAGES)


@check(
    "DEP008",
    area="deployment",
    severity="high",
    title="A pinned old package allows a companion release that breaks it",
    why="""Old apps pin Flask (`Flask==1.1.2`) but not what Flask imports, and old Flask does not bound
    it either: a fresh install gets today's Werkzeug, Jinja2 or itsdangerous, and the app cannot be
    imported. `deploy push` finds it only at the health gate (a rollback, then the slot's log).""",
    fix="""Add the line the finding names (e.g. `Werkzeug<3`) to the requirements file that pins the old
    package, or upgrade the old package to a release that works with today's companion.""",
    layers=("project",),
    references=(
        "https://flask.palletsprojects.com/en/stable/changes/",
        "https://werkzeug.palletsprojects.com/en/stable/changes/",
        "https://jinja.palletsprojects.com/en/stable/changes/",
    ),
    details=f"""The combinations, each installed from PyPI into a fresh virtualenv (Python 3.11) and
    imported (2026-12-07); the release below each bound imports fine:

{_TABLE}

    A package is held old when every version its lines admit (`==`, `<`, `<=`, `~=`, `==X.*`, across
    the requirements file, its `-r` includes and `-c` constraints) is below the breaking bound; a
    companion is bounded when its lines admit nothing from the breaking release on. Lines whose
    environment marker is false on the hosts (as DEP002 evaluates them) count for neither. `deploy push`
    checks the resolved wheels the same way and stops before any host is touched.""",
)
def companions_unbounded(ctx: Context) -> Iterator[Finding]:
    entry = ctx.config.app.requirements if ctx.config is not None else "requirements.txt"
    files = ctx.project.files
    if entry not in files:
        return
    try:
        requirements = resolve(entry, lambda p: files[p].encode() if p in files else None)
    except RequirementsError:
        return  # deploy push names the problem
    top = top_level(requirements)
    lines = [*top.lines, *constraint_lines(requirements, top)]
    for problem in from_requirements(declared(lines, _host_environments(ctx))):
        file, _, line = (problem.where or entry).rpartition(":")
        yield Finding(problem.message(), file or entry, int(line) if line.isdigit() else None)
