"""Observability checks: logging, a health endpoint, error tracking with its DSN from the environment."""

from __future__ import annotations

from collections.abc import Iterator

from deploy.checker import Context, Finding, check

from ._helpers import app_site

_LOGGING_CALLS = (
    "logging.basicConfig",
    "basicConfig",
    "dictConfig",
    "fileConfig",
    "logging.config.dictConfig",
    "logging.config.fileConfig",
    "structlog.configure",
    "logger.addHandler",
    "logger.setLevel",
    "app.logger.addHandler",
    "app.logger.setLevel",
)
_TRACKERS = (
    "sentry_sdk.init",
    "rollbar.init",
    "bugsnag.configure",
    "honeybadger.configure",
    "Honeybadger",
    "configure_azure_monitor",
    "newrelic.agent.initialize",
    "ddtrace.patch_all",
    "Rollbar",
    "FlaskIntegration",
)


@check(
    "OBS001",
    area="observability",
    severity="low",
    title="Logging is not configured",
    why="""Without a logging configuration, messages below WARNING are dropped and the ones that remain
    have no timestamp or level; when something goes wrong in production there is nothing to read.""",
    fix="""Call `logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format=...)` or
    `logging.config.dictConfig(...)` when the app starts; journald or Docker collect stderr.""",
    references=(
        "https://flask.palletsprojects.com/en/stable/logging/",
        "https://docs.python.org/3/howto/logging.html",
    ),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 1 of its 3 findings at medium severity
    were right (33%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.""",
)
def logging_configured(ctx: Context) -> Iterator[Finding]:
    if ctx.project.calls_named(*_LOGGING_CALLS) or ctx.project.uses("structlog", "loguru"):
        return
    if any(c.name.endswith(("logger.addHandler", "logger.setLevel")) for c in ctx.project.calls):
        return
    file, line = app_site(ctx)
    if file:
        yield Finding("no logging.basicConfig, dictConfig or handler is set up", file, line)


def health_path(ctx: Context) -> str:
    return ctx.config.app.health if ctx.config is not None else "/health"


@check(
    "OBS002",
    area="observability",
    severity="low",
    title="No health endpoint",
    why="""deploy push, load balancers and uptime monitors ask a health URL whether a release serves
    requests; without one a broken release is switched live and nobody is told.""",
    fix="""Add a cheap route that returns 200: `@app.get("/health")` returning `{"status": "ok"}`; set
    `app.health` in deploy.yaml if it lives elsewhere. Routes count with their blueprint's `url_prefix`
    (a `/health` route on a blueprint registered at `/api` serves `/api/health`), and routes added by
    `add_url_rule`, flask-restful/flask-restx `Api(...).add_resource(Resource, "/health")` and project
    helpers that pass their rule on to either are seen too.""",
    references=("https://microservices.io/patterns/observability/health-check-api.html",),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 1 of its 2 findings at high severity
    were right (50%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.""",
)
def health_endpoint(ctx: Context) -> Iterator[Finding]:
    wanted = health_path(ctx)
    if any(r.rule.rstrip("/") == wanted.rstrip("/") for r in ctx.project.routes):
        return
    if any(c.leaf == "add_url_rule" and c.args and c.args[0].literal == wanted for c in ctx.project.calls):
        return
    file, line = app_site(ctx)
    if file:
        yield Finding(f"no route serves {wanted}", file, line)


@check(
    "OBS003",
    area="observability",
    severity="low",
    title="No error tracking",
    why="""Exceptions in production end as a 500 and a log line nobody watches; an error tracker (Sentry,
    Rollbar, Bugsnag) groups them, keeps the context and alerts.""",
    fix="""`sentry_sdk.init(dsn=os.environ.get("SENTRY_DSN"), ...)` when the app starts (Sentry's Flask
    integration is enabled automatically), with SENTRY_DSN in deploy.yaml `app.secrets`.""",
    references=("https://docs.sentry.io/platforms/python/integrations/flask/",),
)
def error_tracking(ctx: Context) -> Iterator[Finding]:
    if ctx.project.calls_named(*_TRACKERS):
        return
    file, line = app_site(ctx)
    if file:
        yield Finding("no error tracker (such as Sentry) is initialised", file, line)


@check(
    "OBS004",
    area="observability",
    severity="medium",
    title="Error tracker DSN is hardcoded",
    why="""A DSN in the code sends errors from every environment (laptops, CI, staging) into the
    production project and lets anyone with the code submit events to it.""",
    fix="""Pass `dsn=os.environ.get("SENTRY_DSN")` and set SENTRY_DSN only where events should be sent.""",
    references=("https://docs.sentry.io/platforms/python/configuration/options/#dsn",),
)
def tracker_dsn(ctx: Context) -> Iterator[Finding]:
    for call in ctx.project.calls_named("sentry_sdk.init", "rollbar.init"):
        dsn = (
            call.keywords.get("dsn")
            or call.keywords.get("access_token")
            or (call.args[0] if call.args else None)
        )
        if dsn is not None and dsn.kind == "literal" and isinstance(dsn.literal, str) and dsn.literal:
            yield Finding(f"{call.name}() is given a literal DSN", call.file, call.line)
