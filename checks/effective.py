"""Checks of the effective configuration: the app factory imported under production settings."""

from __future__ import annotations

from collections.abc import Iterator

from deploy.checker import Context, Finding, check
from deploy.project.evidence import uses_session

from ._helpers import app_site, last_setting, wsgi_site
from .observability import health_path

FLASK_CONFIG = "https://flask.palletsprojects.com/en/stable/config/"


@check(
    "DEP006",
    area="deployment",
    severity="high",
    title="The app does not start under the production environment",
    why="""If the app factory raises with the production environment (a missing variable, an import that
    only works on the laptop), every worker crashes at boot and the release never serves a request.""",
    fix="""Run `deploy check --import` locally with the production variables in .env and fix the error it
    names; make every required variable part of deploy.yaml `app.secrets` or `app.env`.""",
    layers=("import",),
    references=("https://flask.palletsprojects.com/en/stable/patterns/appfactories/",),
)
def app_imports(ctx: Context) -> Iterator[Finding]:
    error = ctx.effective.error
    if error:
        file, line = wsgi_site(ctx)
        yield Finding(error.splitlines()[0][:300], file, line)


@check(
    "SEC016",
    area="security",
    severity="high",
    title="SECRET_KEY is weak",
    why="""A short or guessable key (a word, a repeated character) can be brute-forced offline from one
    session cookie, and then every session can be forged.""",
    fix="""Use at least 32 random bytes: `python -c 'import secrets; print(secrets.token_hex(32))'`, stored in
    the environment (deploy.yaml `app.secrets`).""",
    details="""An empty key is reported only for an app that uses the session (`session`, `flash()`,
    Flask-Login, Flask-WTF, ...): an API or a model server that signs no cookie needs none.""",
    layers=("effective",),
    references=(
        FLASK_CONFIG + "#SECRET_KEY",
        "https://docs.djangoproject.com/en/stable/ref/checks/#security",
    ),
)
def secret_key_strength(ctx: Context) -> Iterator[Finding]:
    facts = ctx.effective.secret_key
    file, line = app_site(ctx)
    if not facts.get("set"):
        if uses_session(ctx.project):  # an API or a model server that signs no cookie needs no key
            yield Finding("SECRET_KEY is empty in the effective configuration", file, line)
        return
    if facts.get("placeholder"):
        ctx.notes.append("SEC016: SECRET_KEY was not in the environment; its strength was not checked")
        return
    source = ctx.effective.sources.get("SECRET_KEY")
    name = (
        f"SECRET_KEY (from {'the environment' if source == 'environment' else source})"
        if source
        else "SECRET_KEY"
    )
    if facts.get("weak_word"):
        yield Finding(f"{name} is a well-known placeholder word", file, line)
    elif facts.get("length", 0) < 32 or facts.get("distinct", 0) < 8:
        yield Finding(
            f"{name} has {facts.get('length')} characters ({facts.get('distinct')} distinct); "
            "use 32 random bytes or more",
            file,
            line,
        )


@check(
    "SEC017",
    area="security",
    severity="critical",
    title="Debug or testing mode in the effective configuration",
    why="""Whatever the code looks like, the app as it starts in production has DEBUG (the interactive
    debugger) or TESTING (exceptions propagate, some protections are off) switched on.""",
    fix="""Find where the value comes from (an environment variable, a config file read at startup) and
    remove it from the production environment.""",
    layers=("effective",),
    references=(FLASK_CONFIG + "#DEBUG", FLASK_CONFIG + "#TESTING"),
)
def effective_debug(ctx: Context) -> Iterator[Finding]:
    config = ctx.effective.config
    file, line = app_site(ctx)
    for key in ("DEBUG", "TESTING"):
        if config.get(key):
            yield Finding(f"{key} is True when the app starts with the production environment", file, line)


@check(
    "SEC018",
    area="security",
    severity="high",
    title="Session cookie flags in the effective configuration",
    why="""The session cookie must be Secure (HTTPS only), HttpOnly (no JavaScript access) and SameSite
    (not sent on cross-site requests) as the app really runs, whatever config classes or files set it.""",
    fix="""Set SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True and SESSION_COOKIE_SAMESITE="Lax"
    in the production configuration. Not reported for an app that never uses the session.""",
    layers=("effective",),
    references=(
        FLASK_CONFIG + "#SESSION_COOKIE_SECURE",
        "https://flask.palletsprojects.com/en/stable/web-security/#set-cookie-options",
    ),
    # The app as it starts answers what the source could only guess (config classes, env prefixes).
    supersedes=("SEC010", "SEC011", "SEC012"),
)
def effective_cookie(ctx: Context) -> Iterator[Finding]:
    if not uses_session(ctx.project):
        return  # no session, no session cookie
    config = ctx.effective.config
    tls = ctx.config is None or ctx.config.server.tls is not False

    def where(key: str) -> tuple[str | None, int | None]:
        s = last_setting(ctx, key)
        return (s.file, s.line) if s is not None else app_site(ctx)

    if tls and config.get("SESSION_COOKIE_SECURE") is not True:
        value = config.get("SESSION_COOKIE_SECURE")
        yield Finding(
            f"SESSION_COOKIE_SECURE is {value!r} in the imported app (the session cookie is sent over HTTP)",
            *where("SESSION_COOKIE_SECURE"),
        )
    if config.get("SESSION_COOKIE_HTTPONLY") is False:
        yield Finding(
            "SESSION_COOKIE_HTTPONLY is False in the imported app", *where("SESSION_COOKIE_HTTPONLY")
        )
    if str(config.get("SESSION_COOKIE_SAMESITE")).lower() not in ("lax", "strict"):
        yield Finding(
            f"SESSION_COOKIE_SAMESITE is {config.get('SESSION_COOKIE_SAMESITE')!r} in the imported app",
            *where("SESSION_COOKIE_SAMESITE"),
        )


@check(
    "OBS005",
    area="observability",
    severity="high",
    title="The health endpoint does not answer 200",
    why="""deploy push switches traffic to a release only when its health URL answers 200; an endpoint
    that errors or redirects makes every push fail (or, with a lenient proxy, hides a broken release).""",
    fix="""Make the health route return 200 without login, redirects or external calls that may fail; check
    it with `app.test_client().get("/health")`.""",
    layers=("effective",),
    references=("https://microservices.io/patterns/observability/health-check-api.html",),
    # The URL map of the imported app knows every route, however it was registered.
    supersedes=("OBS002",),
)
def health_answers(ctx: Context) -> Iterator[Finding]:
    health = ctx.effective.health
    file, line = app_site(ctx)
    status = health.get("status")
    wanted = health_path(ctx)
    served = any(str(r.get("rule", "")).rstrip("/") == wanted.rstrip("/") for r in ctx.effective.routes)
    if status == 404 and not served:
        yield Finding(f"no route serves {wanted} in the imported app (GET answered 404)", file, line)
    elif status != 200:
        detail = health.get("error") or f"status {status}"
        yield Finding(f"GET {wanted} answered {detail}", file, line)
