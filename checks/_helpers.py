"""Small helpers shared by the built-in checks (where things are, what counts as production)."""

from __future__ import annotations

from deploy.checkctx import Context
from deploy.project import CallSite, Setting


#: Where a finding about deploy.yaml points.
def config_file(ctx: Context) -> str:
    return ctx.config_file or "deploy.yaml"


def app_site(ctx: Context) -> tuple[str | None, int | None]:
    """Where the Flask app is created (the place to point at for app-wide findings)."""
    apps = ctx.project.apps
    if apps:
        return apps[0].file, apps[0].line
    return None, None


def last_setting(ctx: Context, key: str) -> Setting | None:
    """The production assignment of a config key that wins (the last one in source order)."""
    found = ctx.project.setting(key)
    return found[-1] if found else None


def loads_config_from_environment(ctx: Context) -> bool:
    """Whether the app reads its config from outside the code (env prefix, env var file, pyfile)."""
    return bool(ctx.project.calls_named("from_prefixed_env", "from_envvar"))


def unguarded(calls: list[CallSite]) -> list[CallSite]:
    return [c for c in calls if not c.main_guarded]


def is_flask_app(ctx: Context) -> bool:
    return bool(ctx.project.apps) or ctx.project.uses("flask")
