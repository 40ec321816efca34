"""Security checks read from the source and the project: debug, secrets, CSRF, headers, cookies, SQL."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from deploy.checker import Context, Finding, check
from deploy.config.secrets import key_weakness
from deploy.project.evidence import csrf_enforcement, runs_in_production, uses_session, view_checks_token
from deploy.project.scan import KEY_GENERATORS, Project

from ._helpers import (
    app_site,
    config_file,
    debug_only,
    fastapi_docs_blocked,
    in_served_code,
    last_setting,
    loads_config_from_environment,
    script_modules,
    served,
    unguarded,
)

FLASK_CONFIG = "https://flask.palletsprojects.com/en/stable/config/"
FLASK_SECURITY = "https://flask.palletsprojects.com/en/stable/web-security/"
OWASP_HEADERS = "https://owasp.org/www-project-secure-headers/"


@check(
    "SEC001",
    area="security",
    severity="critical",
    title="Debug mode is on",
    why="""The Werkzeug debugger runs arbitrary Python from the browser; anyone who can trigger an error
    gets a shell on the server. Debug mode also leaks source and configuration in tracebacks. Only code
    production runs counts: the module the WSGI target imports and what it imports in turn, not a
    developer script, `manage.py` or an example that the served app never imports or calls. Wrapping
    the app in `DebuggedApplication` under `if app.debug:` (or another debug flag) counts only as the
    flag does: reported where the flag is set on.""",
    fix="""Remove `debug=True`, `app.debug = True` and `DEBUG = True` from production code and config classes;
    turn debugging on only locally with `flask run --debug`.""",
    references=(
        FLASK_CONFIG + "#DEBUG",
        "https://werkzeug.palletsprojects.com/en/stable/debug/",
        "https://cwe.mitre.org/data/definitions/489.html",
    ),
)
def debug_on(ctx: Context) -> Iterator[Finding]:
    production = served(ctx)
    for s in ctx.project.setting("DEBUG"):
        if s.value.is_true and (production is None or s.file in production):
            yield Finding(f"DEBUG is set to True{' in ' + s.scope if s.scope else ''}", s.file, s.line)
    for call in unguarded(ctx.project.calls_named("run")):
        if not runs_in_production(ctx.project, call, production):
            continue  # a developer script or a CLI helper the served app never imports or calls
        if call.keywords.get("debug") is not None and call.keywords["debug"].is_true:
            yield Finding(
                "app.run(debug=True) runs outside `if __name__ == '__main__':`", call.file, call.line
            )
    run_as_script = {
        module: (path, command)
        for path, found in script_modules(ctx).items()
        for module, command in found.items()
    }
    for call in ctx.project.calls_named("run"):
        debug = call.keywords.get("debug")
        if call.main_guarded and debug is not None and debug.is_true and call.file in run_as_script:
            path, command = run_as_script[call.file]
            yield Finding(
                f"app.run(debug=True) runs in production: {path} starts `{command}`", call.file, call.line
            )
    for call in ctx.project.calls_named("DebuggedApplication"):
        if runs_in_production(ctx.project, call, production) and not debug_only(ctx, call.file, call.line):
            yield Finding("the app is wrapped in Werkzeug's DebuggedApplication", call.file, call.line)


@check(
    "SEC002",
    area="security",
    severity="critical",
    title="SECRET_KEY is hardcoded",
    why="""The secret key signs session cookies: anyone who reads the code (a repository, an image, a
    backup) can forge sessions and log in as any user. A hardcoded fallback (`os.environ.get("SECRET_KEY",
    "dev")`) silently becomes the production key the day the variable is missing.""",
    fix="""Read it from the environment with no fallback: `SECRET_KEY=os.environ["SECRET_KEY"]`, list it in
    deploy.yaml `app.secrets`, and generate it with
    `python -c 'import secrets; print(secrets.token_hex(32))'`.""",
    references=(FLASK_CONFIG + "#SECRET_KEY", "https://cwe.mitre.org/data/definitions/798.html"),
    details="""Where the key is looked for: `app.config[...]`, `config.update()`/`from_mapping()`,
    `app.secret_key`, config classes, module-level names of settings modules (`config.py`,
    `settings.py`, `default_settings.py`, `constants.py`, ...) and of any module that loads itself as
    config (`app.config.from_object(__name__)`): a key that only a command-line entry point replaces is
    still the key Gunicorn serves with.""",
)
@in_served_code
def secret_key_hardcoded(ctx: Context) -> Iterator[Finding]:
    for s in ctx.project.setting("SECRET_KEY"):
        if s.value.kind == "literal" and isinstance(s.value.literal, str | bytes) and s.value.literal:
            yield Finding("SECRET_KEY is a string literal in the source", s.file, s.line)
        elif s.value.kind == "env" and s.value.has_default and s.value.default not in (None, ""):
            yield Finding(
                f"SECRET_KEY falls back to a literal when ${s.value.env_name} is unset", s.file, s.line
            )


@check(
    "SEC003",
    area="security",
    severity="high",
    title="SECRET_KEY is not read from the environment",
    why="""Without a secret key Flask cannot sign sessions (every request that uses `session` fails). A
    key generated when the process starts (`os.urandom`) differs between Gunicorn workers and changes on
    every restart: users are logged out at random.""",
    fix="""Set `SECRET_KEY=os.environ["SECRET_KEY"]` (or call `app.config.from_prefixed_env()` and set
    FLASK_SECRET_KEY), and give the value through deploy.yaml `app.secrets`.""",
    details="""A key that is never set is reported only for an app that uses the session (`session`,
    `flash()`, Flask-Login, Flask-WTF, ...): an API or a model server that signs no cookie needs none.""",
    references=(FLASK_CONFIG + "#SECRET_KEY", FLASK_CONFIG + "#flask.Config.from_prefixed_env"),
)
def secret_key_from_environment(ctx: Context) -> Iterator[Finding]:
    from deploy.project.scan import key_generations

    settings = ctx.project.setting("SECRET_KEY")
    # A key generated only when none is configured, or kept in a file, is SEC023's.
    generated = {(k.file, k.line) for k in key_generations(ctx.project.python)}
    for s in settings:
        if s.value.kind == "other" and (s.file, s.line) not in generated:
            generator = [
                c
                for c in ctx.project.calls
                if c.file == s.file and c.line == s.line and c.name in KEY_GENERATORS
            ]
            if generator:
                yield Finding(
                    f"SECRET_KEY is generated by {generator[0].name}() in each process", s.file, s.line
                )
    if (
        not settings
        and uses_session(ctx.project)  # an API or a model server that never signs a cookie needs no key
        and not loads_config_from_environment(ctx)
        and not ctx.project.calls_named("from_pyfile", "from_object", "from_file")
    ):
        file, line = app_site(ctx)
        if file:
            yield Finding("SECRET_KEY is never set", file, line)


@check(
    "SEC004",
    area="security",
    severity="high",
    title="HTTPS is off",
    why="""Without TLS, passwords, session cookies and every page travel in clear text and can be read or
    changed by anyone on the path (public Wi-Fi, a compromised router).""",
    fix="""Set `server.tls: {email: you@example.com}` in deploy.yaml (certificates from Let's Encrypt,
    renewed by certbot's timer) or `{cert: ..., key: ...}` for your own certificate.""",
    layers=("config",),
    references=("https://letsencrypt.org/docs/", "https://ssl-config.mozilla.org/"),
)
def https_off(ctx: Context) -> Iterator[Finding]:
    assert ctx.config is not None
    if ctx.config.server.tls is False:
        yield Finding("server.tls is not set: the site is served over plain HTTP", config_file(ctx))


_STATE_CHANGING = ("form", "values", "files")


def basic_auth_guard(project: Project) -> tuple[str, int] | None:
    """(file, line) of a `before_request` handler that authenticates with HTTP Basic
    (`request.authorization`): the browser then sends the credentials on every request, cross-site too."""
    for module in project.python:
        if module.tree is None or "authorization" not in module.text:
            continue
        for f in ast.walk(module.tree):
            if not isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            hooks = {
                _dotted_name(d.func if isinstance(d, ast.Call) else d).rsplit(".", 1)[-1]
                for d in f.decorator_list
            }
            if hooks & {"before_request", "before_app_request"} and any(
                isinstance(n, ast.Attribute)
                and n.attr == "authorization"
                and _dotted_name(n.value) == "request"
                for n in ast.walk(f)
            ):
                return module.path, f.lineno
    return None


def _dotted_name(node: ast.AST) -> str:
    return (
        f"{_dotted_name(node.value)}.{node.attr}"
        if isinstance(node, ast.Attribute)
        else getattr(node, "id", "")
    )


@check(
    "SEC005",
    area="security",
    severity="low",
    title="Form endpoint without CSRF protection",
    why="""A page on another site can make a logged-in user's browser submit your form (change a password,
    post, delete). Flask has no CSRF protection of its own. Not reported when the app enforces CSRF for
    every request (Flask-WTF's `CSRFProtect(app)` or `csrf.init_app(app)`, Flask-SeaSurf, or a
    `before_request` handler that checks a token, nonce or `Sec-Fetch-Site` header and aborts), nor
    for a view that checks a CSRF token or nonce itself. An app that authenticates with HTTP Basic
    (a `before_request` handler reading `request.authorization`) is open even where a view reads no
    form: once the user has logged in, the browser adds the credentials to every request to the site,
    a cross-site form post included.""",
    fix="""Install Flask-WTF and call `CSRFProtect(app)` (or `csrf.init_app(app)` in the factory), or handle
    the form with a `FlaskForm` and `validate_on_submit()`; render `{{ form.hidden_tag() }}` or
    `{{ csrf_token() }}` inside every form.""",
    references=(
        "https://flask-wtf.readthedocs.io/en/stable/csrf.html",
        "https://owasp.org/www-community/attacks/csrf",
        "https://cwe.mitre.org/data/definitions/352.html",
    ),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 7 of its 9 findings at high severity
    were right (77%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.""",
)
@in_served_code
def csrf_missing(ctx: Context) -> Iterator[Finding]:
    project = ctx.project
    disabled = [s for s in project.setting("WTF_CSRF_ENABLED") if s.value.is_false]
    for s in disabled:
        yield Finding("WTF_CSRF_ENABLED is False: CSRF protection is switched off", s.file, s.line)
    if not disabled and csrf_enforcement(project) is not None:
        return
    basic = basic_auth_guard(project)
    for route in project.routes:
        if not (
            route.changes_state
            and not route.uses_form_class
            and not route.csrf_exempt
            and not view_checks_token(project, route.file, route.line)
        ):
            continue
        if route.reads & set(_STATE_CHANGING):
            yield Finding(
                f"{', '.join(route.methods)} {route.rule} ({route.function}) reads request.form "
                "without CSRF protection",
                route.file,
                route.line,
            )
        elif basic is not None and not route.reads & {"json", "get_json"}:
            # A cross-site form post (or, for GET, an <img>) carries the browser's Basic credentials.
            yield Finding(
                f"{', '.join(route.methods)} {route.rule} ({route.function}) changes state behind HTTP Basic "
                f"auth ({basic[0]}:{basic[1]}), which browsers send on cross-site requests too, without "
                "CSRF protection",
                route.file,
                route.line,
            )


_HEADERS = {
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "strict-transport-security",
}


@check(
    "SEC006",
    area="security",
    severity="medium",
    title="No security headers",
    why="""Without Content-Security-Policy, X-Content-Type-Options, X-Frame-Options (or CSP frame-ancestors)
    and HSTS, browsers allow framing (clickjacking), MIME sniffing and script injection to do more harm,
    and may fall back to plain HTTP.""",
    fix="""Deploy behind the Nginx site deploy renders (it sets them all; see RND001), or set them in the app
    with Flask-Talisman or an `after_request` hook.""",
    layers=("source", "project"),
    references=(
        OWASP_HEADERS,
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy",
    ),
)
def security_headers(ctx: Context) -> Iterator[Finding]:
    if ctx.config is not None:
        return  # the rendered Nginx site sets them; RND001 checks it does
    if ctx.project.uses("flask_talisman") or ctx.project.calls_named("Talisman"):
        return
    set_by_app = {h.lower() for h, _, _ in ctx.project.after_request_headers}
    missing = sorted(_HEADERS - set_by_app)
    if len(missing) > 1:
        file, line = app_site(ctx)
        if file:
            yield Finding(
                f"no reverse proxy config and the app does not set: {', '.join(missing)}", file, line
            )


@check(
    "SEC007",
    area="security",
    severity="low",
    title="Endpoint reads request data without validating it",
    why="""Values straight from request.form or request.get_json() reach the database, templates and the
    file system unchecked: wrong types crash the view (500s), oversized or malformed values are stored,
    and injection bugs follow. Validation by hand counts: a condition on the value (`if not name or
    len(name) > 100: abort(400)`), a conversion inside try/except, a typed read
    (`request.form.get("n", type=int)`), or a helper the view calls that checks the data it reads or
    is given (rejects it, dispatches it among fixed values, keeps only known keys, or hands it to a
    form); so do schema libraries (marshmallow, pydantic models, webargs) and `validate_on_submit()`.
    A GET-only route is not reported for request.form, json, data or files: a browser sends it no body.""",
    fix="""Validate every input: a Flask-WTF form with validators and `validate_on_submit()`, or a schema
    (marshmallow `Schema().load()`, pydantic `Model.model_validate()`, webargs `@use_args`).""",
    references=(
        "https://cheatsheetseries.owasp.org/cheatsheets/Input_Validation_Cheat_Sheet.html",
        "https://cwe.mitre.org/data/definitions/20.html",
    ),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 12 of its 15 findings at medium
    severity were right (80%), under the 90% a gate needs to be trusted (issue #16). `deploy check
    --fail-on low` gates on it; its findings are still shown.""",
)
@in_served_code
def input_validation(ctx: Context) -> Iterator[Finding]:
    # One view registered under several rules is one problem: one finding naming every rule.
    views: dict[tuple[str, int, str], tuple[list[str], set[str]]] = {}
    for route in ctx.project.routes:
        # A GET carries no body from a browser: its request.form, json, data and files are empty.
        body = {"form", "json", "data", "files"} if route.changes_state else set()
        read = route.reads & (body | {"values"})
        if read and not route.validates:
            rules, parts = views.setdefault((route.file, route.line, route.function), ([], set()))
            if route.rule not in rules:
                rules.append(route.rule)
            parts.update(read)
    for (file, line, function), (rules, parts) in views.items():
        uses = ", ".join(f"request.{r}" for r in sorted(parts))
        yield Finding(f"{', '.join(rules)} ({function}) uses {uses} with no validation", file, line)


#: Modules that make up sample data by convention (run by hand or from a CLI command, never per request).
_GENERATOR_STEMS = (
    "fake",
    "fakes",
    "fake_data",
    "seed",
    "seeds",
    "seed_data",
    "seeder",
    "factories",
    "populate",
)
_FAKE_DATA_LIBRARIES = ("faker", "factory", "mimesis", "polyfactory")


def _data_generators(ctx: Context) -> set[str]:
    """Files that generate fake or seed data: named so (fake.py, seed.py) or built on Faker/factory_boy."""
    out: set[str] = set()
    local = {m.path.split("/", 1)[0].removesuffix(".py") for m in ctx.project.python}
    libraries = set(_FAKE_DATA_LIBRARIES) - local
    for module in ctx.project.python:
        stem = module.path.rsplit("/", 1)[-1].removesuffix(".py")
        if stem in _GENERATOR_STEMS or stem.startswith(("fake_", "seed_", "populate_")):
            out.add(module.path)
            continue
        if module.tree is None:
            continue
        for node in ast.walk(module.tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            if any(n.split(".")[0] in libraries for n in names):
                out.add(module.path)
                break
    return out


@check(
    "SEC008",
    area="security",
    severity="high",
    title="Credential hardcoded in the source",
    why="""Passwords, tokens, API keys and database URLs with passwords in the code end up in every clone,
    image and backup, and cannot be rotated without a release.""",
    fix="""Read them from the environment (`os.environ["DATABASE_URL"]`), list them in deploy.yaml
    `app.secrets`, and rotate the ones that were committed. Names and labels are not reported: a value
    that spells the name or the part after its credential word (`ACCESS_TOKEN_SCOPE_SYNC = "sync"`), a
    header name (`x-api-token`), an HTTP(S) address with no credential or token-like part (an OAuth
    `token_endpoint`), lower-case words under a name that says it holds a name (`..._HEADER`,
    `..._SCOPE_...`, `..._STATUS_...`, `..._METHOD`), a placeholder (`changeme`, `<token>`, `${TOKEN}`),
    an environment variable's name, and lower-case words on a line marked `# nosec`. `# nosec` does not
    hide a value with digits, capitals or symbols (`"admin123"`): that still looks chosen as a password.""",
    references=("https://cwe.mitre.org/data/definitions/798.html", "https://12factor.net/config"),
)
@in_served_code
def hardcoded_credentials(ctx: Context) -> Iterator[Finding]:
    generators = _data_generators(ctx)
    for lit in ctx.project.secret_literals:
        if lit.name.upper() == "SECRET_KEY":
            continue  # SEC002
        if lit.scope and any(w in lit.scope.lower() for w in ("dev", "test", "local")):
            continue
        if lit.file in generators:
            continue
        if lit.word_shaped and _nosec(ctx, lit.file, lit.line):
            continue  # lower-case words the author marked as no secret (bandit's `# nosec`)
        yield Finding(f"{lit.name} is given a literal credential value", lit.file, lit.line)


def _nosec(ctx: Context, file: str, line: int) -> bool:
    """Whether `file:line` carries bandit's `# nosec` marker."""
    for module in ctx.project.python:
        if module.path == file:
            text = module.lines[line - 1] if 0 < line <= len(module.lines) else ""
            return bool(re.search(r"#\s*nosec\b", text))
    return False


@check(
    "SEC009",
    area="security",
    severity="low",
    title="SQL built from strings",
    why="""A query assembled with f-strings, `%`, `+` or `.format()` lets a crafted value change the
    statement: SQL injection reads or deletes any data. Reported when a part put into the statement can
    carry a value from outside: request data, or a parameter of the function (or a local computed from
    one). Constants, numbers (`int()`, `len()`), placeholder lists (`", ".join("?" * len(ids))`),
    quoting helpers and names checked against a fixed set (`if col not in COLUMNS: abort(400)`) are
    not.""",
    fix="""Pass values as parameters: `db.execute("SELECT * FROM user WHERE id = ?", (user_id,))` or
    SQLAlchemy `text("... WHERE id = :id")` with `{"id": user_id}`, or use the ORM.""",
    references=(
        "https://cheatsheetseries.owasp.org/cheatsheets/Query_Parameterization_Cheat_Sheet.html",
        "https://cwe.mitre.org/data/definitions/89.html",
    ),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 0 of its 3 findings at high severity
    were right (0%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.""",
)
@in_served_code
def sql_from_strings(ctx: Context) -> Iterator[Finding]:
    for build in ctx.project.sql_builds:
        yield Finding(f"a SQL statement built with {build.how} is executed", build.file, build.line)


def _cookie(ctx: Context, key: str) -> tuple[str, object, str | None, int | None]:
    s = last_setting(ctx, key)
    if s is None:
        file, line = app_site(ctx)
        return "unset", None, file, line
    return s.value.kind, s.value.literal, s.file, s.line


@check(
    "SEC010",
    area="security",
    severity="low",
    title="Session cookie is not Secure",
    why="""Flask's session cookie is sent over plain HTTP unless SESSION_COOKIE_SECURE is True: one visit to
    http:// (a link, a captive portal) hands the session to anyone on the network.""",
    fix="""Set `SESSION_COOKIE_SECURE=True` in production (the site must serve HTTPS; see XL001). Not
    reported for an app that never uses the session (no `session`, `flash()`, Flask-Login, Flask-WTF,
    Flask-Session or other extension that keeps state in it): Flask then sets no session cookie.""",
    references=(FLASK_CONFIG + "#SESSION_COOKIE_SECURE", FLASK_SECURITY + "#set-cookie-options"),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 8 of its 9 findings at high severity
    were right (88%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.""",
)
def cookie_secure(ctx: Context) -> Iterator[Finding]:
    if not uses_session(ctx.project):
        return  # Flask sets no session cookie for an app that never uses the session
    kind, value, file, line = _cookie(ctx, "SESSION_COOKIE_SECURE")
    if file and (kind == "unset" or (kind == "literal" and value is not True)):
        yield Finding(
            "SESSION_COOKIE_SECURE is "
            + ("not set (Flask's default is False)" if kind == "unset" else f"{value!r}"),
            file,
            line,
        )


@check(
    "SEC011",
    area="security",
    severity="medium",
    title="Session cookie readable by JavaScript",
    why="""With SESSION_COOKIE_HTTPONLY off, any script injected into a page can read the session cookie
    and send it away.""",
    fix="""Remove `SESSION_COOKIE_HTTPONLY=False` (Flask's default is True). Not reported for an app that
    never uses the session.""",
    references=(FLASK_CONFIG + "#SESSION_COOKIE_HTTPONLY",),
)
def cookie_httponly(ctx: Context) -> Iterator[Finding]:
    if not uses_session(ctx.project):
        return
    kind, value, file, line = _cookie(ctx, "SESSION_COOKIE_HTTPONLY")
    if kind == "literal" and not value:
        yield Finding("SESSION_COOKIE_HTTPONLY is False", file, line)


@check(
    "SEC012",
    area="security",
    severity="low",
    title="Session cookie has no SameSite",
    why="""Without SameSite the browser sends the session cookie on requests started by other sites, the
    basis of CSRF and of cross-site leaks.""",
    fix="""Set `SESSION_COOKIE_SAMESITE="Lax"` (or "Strict" when no other site links into logged-in
    pages). Not reported for an app that never uses the session.""",
    references=(
        FLASK_CONFIG + "#SESSION_COOKIE_SAMESITE",
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Set-Cookie#samesitesamesite-value",
    ),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 8 of its 9 findings at medium severity
    were right (88%), under the 90% a gate needs to be trusted (issue #16). `deploy check --fail-on
    low` gates on it; its findings are still shown.""",
)
def cookie_samesite(ctx: Context) -> Iterator[Finding]:
    if not uses_session(ctx.project):
        return
    kind, value, file, line = _cookie(ctx, "SESSION_COOKIE_SAMESITE")
    if file and (kind == "unset" or (kind == "literal" and str(value).lower() not in ("lax", "strict"))):
        yield Finding(
            "SESSION_COOKIE_SAMESITE is " + ("not set" if kind == "unset" else repr(value)), file, line
        )


@check(
    "SEC013",
    area="security",
    severity="low",
    title="No trusted hosts",
    why="""Without TRUSTED_HOSTS (Flask 3.1) or a proxy that only answers for your names, a forged Host
    header ends up in absolute URLs the app builds: password-reset links that point to an attacker's
    site, poisoned caches.""",
    fix="""Set `TRUSTED_HOSTS=["app.example.com"]`, or deploy behind the Nginx site deploy renders (it only
    passes requests for server.domains).""",
    layers=("source", "project"),
    references=(FLASK_CONFIG + "#TRUSTED_HOSTS", "https://portswigger.net/web-security/host-header"),
)
def trusted_hosts(ctx: Context) -> Iterator[Finding]:
    if ctx.config is not None or ctx.project.setting("TRUSTED_HOSTS") or ctx.project.setting("SERVER_NAME"):
        return
    file, line = app_site(ctx)
    if file:
        yield Finding("neither TRUSTED_HOSTS nor a reverse proxy restricts the Host header", file, line)


@check(
    "SEC014",
    area="security",
    severity="high",
    title="SECRET_KEY_FALLBACKS are hardcoded",
    why="""Old keys in SECRET_KEY_FALLBACKS still verify sessions: a fallback written in the code is a
    hardcoded secret that keeps working after the key was rotated.""",
    fix="""Read the previous keys from the environment too, and drop them once old sessions have expired.""",
    references=(FLASK_CONFIG + "#SECRET_KEY_FALLBACKS",),
)
def secret_key_fallbacks(ctx: Context) -> Iterator[Finding]:
    for s in ctx.project.setting("SECRET_KEY_FALLBACKS"):
        if s.value.kind == "literal" and s.value.literal:
            yield Finding("SECRET_KEY_FALLBACKS holds literal keys", s.file, s.line)


@check(
    "SEC015",
    area="security",
    severity="low",
    title="Request bodies are unlimited",
    why="""Flask reads request bodies of any size (MAX_CONTENT_LENGTH is None): one large upload can fill
    memory or disk. A proxy limit (client_max_body_size) protects only if there is a proxy.""",
    fix="""Set `MAX_CONTENT_LENGTH` (for example `16 * 1024 * 1024`), or deploy behind the rendered Nginx site
    (nginx.client_max_body_size, default 16m).""",
    layers=("source", "project"),
    references=(
        FLASK_CONFIG + "#MAX_CONTENT_LENGTH",
        "https://nginx.org/en/docs/http/ngx_http_core_module.html#client_max_body_size",
    ),
)
def max_content_length(ctx: Context) -> Iterator[Finding]:
    if ctx.config is not None:
        return  # Nginx limits bodies; XL002 compares both limits
    s = last_setting(ctx, "MAX_CONTENT_LENGTH")
    if s is None or (s.value.kind == "literal" and s.value.literal is None):
        file, line = (s.file, s.line) if s else app_site(ctx)
        if file:
            yield Finding("MAX_CONTENT_LENGTH is not set and no proxy limits request bodies", file, line)


@check(
    "SEC019",
    area="security",
    severity="low",
    title="Template built from request data (server-side template injection)",
    why="""`render_template_string()` compiles its first argument as a Jinja template. When that string is
    assembled from request data (`"<p>" + request.args["q"] + "</p>"`, an f-string, `%` or `.format()`),
    a visitor sends `{{ config }}` to read the secret key, or a longer expression that runs commands on
    the server: template injection is remote code execution.""",
    fix="""Keep the template constant and pass the data as a variable, which Jinja escapes:
    `render_template_string("<p>{{ q }}</p>", q=request.args.get("q", ""))`, or better a template
    file with `render_template("search.html", q=q)`.""",
    references=(
        "https://portswigger.net/web-security/server-side-template-injection",
        "https://semgrep.dev/r?q=python.flask.security.audit.render-template-string",
        "https://cwe.mitre.org/data/definitions/1336.html",
    ),
    details="""Reported at low severity, below the default gate (`--fail-on medium`): on the real-app corpus
    (12 open-source Flask apps, `tests/corpus/`, 2026-12-06) 0 of its 2 findings at critical
    severity were right (0%), under the 90% a gate needs to be trusted (issue #16). `deploy check
    --fail-on low` gates on it; its findings are still shown.""",
)
@in_served_code
def template_injection(ctx: Context) -> Iterator[Finding]:
    for build in ctx.project.template_builds:
        how = (
            "is the template itself"
            if build.how == "passed as the template"
            else f"is put into it by {build.how}"
        )
        yield Finding(
            f"{build.call}() compiles a template from the request: {build.source} {how}",
            build.file,
            build.line,
        )


@check(
    "SEC020",
    area="security",
    severity="high",
    title="A secret that push would ship is weak",
    why="""`deploy push` writes the values of deploy.yaml `app.secrets` to the hosts, taken from your
    environment or else the project's .env. A .env written for development (`SECRET_KEY=dev`,
    `not-so-secret`) then becomes the production key: sessions can be forged by anyone who guesses it.""",
    fix="""Generate a real value (`python -c 'import secrets; print(secrets.token_hex(32))'`) and give it in
    the environment of the push, or in a .env that is only on the machine you push from.""",
    layers=("config",),
    details="""
    Which names: those of `app.secrets` that look like signing keys (`SECRET_KEY`, `*_SECRET_KEY`,
    `*_SECRET`, `*_SALT`, `SIGNING_KEY`); API keys and passwords issued by someone else are not judged.
    The value is read as push reads it (the environment first, then `.env`) and never printed: the
    finding names the variable and where the value came from. Weak means a known placeholder word
    (`dev`, `secret`, `changeme`, `not-so-secret`, ...), fewer than 32 bytes, or fewer than 8 distinct
    characters. When `--import` succeeds, SECRET_KEY is judged by SEC016 (the key the app really uses).""",
    references=(
        "https://flask.palletsprojects.com/en/stable/config/#SECRET_KEY",
        "https://cwe.mitre.org/data/definitions/1391.html",
    ),
)
def shipped_secret_strength(ctx: Context) -> Iterator[Finding]:
    from deploy.config.loader import find_secret, parse_dotenv

    assert ctx.config is not None
    dotenv = parse_dotenv(ctx.root / ".env")
    # With a successful --import, SEC016 judges the key the app really uses.
    imported = ctx.import_app and ctx.effective.error is None
    for name in ctx.config.app.secrets:
        if imported and name == "SECRET_KEY":
            continue
        found = find_secret(name, dotenv)
        if found is None:
            continue  # push refuses to run without it
        value, source = found
        weakness = key_weakness(name, value)
        if weakness:
            line = next((e.line for e in ctx.project.dotenv if e.file == ".env" and e.key == name), None)
            yield Finding(
                f"{name} from {source} {weakness}; push would ship it to production",
                ".env" if source == ".env" else config_file(ctx),
                line if source == ".env" else None,
            )


#: Templates under these folders are e-mails, which no browser renders under the site's policy.
_MAIL_FOLDERS = {"email", "emails", "mail", "mails", "mailer", "mailers"}
#: Top-level folders of examples and documentation: their pages are not the app's.
_NOT_SERVED_FOLDERS = {"examples", "example", "samples", "docs", "doc"}


def _served_pages(ctx: Context) -> Iterator[tuple[str, str]]:
    """HTML templates and CSS files a browser loads from the site (e-mail templates left out)."""
    for path, text in ctx.project.glob(".html", ".htm", ".jinja", ".jinja2", ".j2", ".css"):
        parts = path.lower().split("/")
        if _MAIL_FOLDERS & set(parts[:-1]):
            continue
        if path.endswith(".j2") and "templates" not in parts[:-1]:
            continue  # a .j2 outside templates/ is usually a config file, not a page
        if parts[0] in _NOT_SERVED_FOLDERS and not {"templates", "static"} & set(parts[:-1]):
            continue  # alerta's examples/oembed.html: a page to copy elsewhere, not one the app serves
        yield path, text


@check(
    "SEC021",
    area="security",
    severity="high",
    title="A page would break under the Content-Security-Policy",
    why="""The Nginx site sends a strict Content-Security-Policy (`default-src 'none'` and the sources the
    app loads from itself). A browser then refuses what the policy does not list: an inline `<script>` or
    `<style>`, an `onclick=` handler, a `javascript:` link, a `style=` attribute, or a script, stylesheet,
    image or font from another host. The page still loads, but that part silently stops working.""",
    fix="""Move inline code to static files (`<script src="{{ url_for('static', filename='app.js') }}">`,
    `addEventListener` instead of `onclick=`, classes instead of `style=`), pass data to scripts in a
    `<script type="application/json">` block, or allow exactly what a page needs in deploy.yaml
    `nginx.csp_sources`: the hash this check prints for an inline script or style
    (`script-src: ["'sha256-...'"]`), or another host (`img-src: [https://images.example.com]`).""",
    layers=("project",),
    details="""
    What is read: every HTML or Jinja template (`.html`, `.htm`, `.jinja`, `.jinja2`, and `.j2` under a
    `templates/` folder) and every `.css` file of the project, judged against the policy the Nginx site
    sends (`nginx.content_security_policy` with `nginx.csp_sources` added). Templates under an `email/` or
    `mail/` folder are left out (no browser shows them under the site's policy), and so are pages in a
    top-level `examples/`, `example/`, `samples/`, `docs/` or `doc/` folder outside any `templates/` or
    `static/` folder (examples and documentation, not pages the app serves). Found and reported with
    file and line:

    - an inline `<script>` (also `type="module"` and `importmap`) whose hash the policy does not list:
      the finding prints the `'sha256-...'` to add when the script has no template expressions (the hash
      is of the text between the tags, exactly as written); one with `{{ ... }}` inside changes with the
      data, so no fixed hash fits it. `<script type="application/json">` and other data blocks never run
      and are not reported; neither are scripts with `src=` from this site;
    - an inline `<style>` block, the same way under `style-src`;
    - event-handler attributes (`onclick=`, `onload=`, ...), `style=` attributes and `javascript:` URLs,
      unless the policy allows them (`'unsafe-inline'`, or `'unsafe-hashes'` with the value's hash);
    - `<script src>`, `<link rel="stylesheet|icon|manifest|preload">`, `<img src|srcset>`, media, frames,
      `<object>`, form `action=` and `<base href>` pointing to a host the matching directive does not allow,
      and `@import`, `@font-face` and `url()` in CSS files.

    URLs made by `url_for(...)` are this site's; other URLs built by a template expression
    (`{{ user.avatar_url }}`) are not known until the page renders and are never reported. Code inside
    `{# ... #}` and `<!-- ... -->` comments does not count. A finding in a template is accepted on its
    line with a template comment: `{# deploy: ignore[SEC021] why #}`.

    Which pages: every HTML or Jinja template and CSS file of the project (e-mail templates left out), and
    every page written as a string in the source: the literal (or a name assigned one in the same module)
    given to `render_template_string()`, `stream_template_string()` or `from_string()`, reported at its line
    in the Python file. Which policy: deploy.yaml's (`nginx.content_security_policy` with
    `nginx.csp_sources`); without deploy.yaml, the strict default policy deploy renders, so what breaks is
    known before the first `deploy init`. FastAPI's own `/docs` (Swagger UI, started by an inline script) and
    `/redoc` pages load their code from `https://cdn.jsdelivr.net`: reported at the `FastAPI()` call
    unless `docs_url=None` / `redoc_url=None` turns the page off or `script-src` allows what it needs.""",
    references=(
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Guides/CSP",
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Reference/Headers/Content-Security-Policy/script-src",
        "https://content-security-policy.com/hash/",
    ),
)
def csp_breaks_pages(ctx: Context) -> Iterator[Finding]:
    from deploy.config import csp
    from deploy.project.scan import inline_templates

    # Without deploy.yaml: the policy deploy renders by default (what `deploy init` would give).
    policy = ctx.config.nginx.csp_header if ctx.config is not None else csp.DEFAULT_POLICY
    domains = ctx.config.server.domains if ctx.config is not None else []
    for path, text in _served_pages(ctx):
        judge = csp.blocked_css if path.endswith(".css") else csp.blocked
        for blocked in judge(text, policy, domains):
            yield Finding(blocked.message, path, blocked.line)
    # Pages written as strings in the source (`render_template_string("<script>...")`).
    for template in inline_templates(ctx.project.python):
        for blocked in csp.blocked(template.text, policy, domains):
            yield Finding(blocked.message, template.file, template.line + blocked.line - 1)
    yield from fastapi_docs_blocked(ctx, policy)  # pages FastAPI itself writes


@check(
    "SEC022",
    area="security",
    severity="critical",
    title="The static folder exposes code, data or secrets",
    why="""Nginx serves every file under `app.static.dir` to anyone who asks, without the app in between.
    A static folder that is the project root, the app's package, the instance folder or a shared path,
    or that holds Python files, a database, `.env`, keys or deploy.yaml, publishes the source code, the
    data and the secrets. Nginx follows links, so a link out of the folder publishes its target too.""",
    fix="""Point `app.static.dir` at a folder that holds public files only (CSS, JavaScript, images),
    such as `static` or `<package>/static`, and move anything else out of it. `deploy push`, `deploy
    render` and `deploy config` refuse such a folder; `deploy check` reports it here.""",
    layers=("config", "project"),
    details="""
    What counts: the project root, the folder of the wsgi module's code (`shop` for `shop:create_app()`),
    `instance` (Flask's instance folder), any `app.shared` path, `.git`, `.venv`, `venv`, `.deploy`,
    `deploy-out` (or a parent of any of them); and a folder holding a Python file (`*.py`, `*.pyc`, `*.so`),
    data (`*.db`, `*.sqlite`, `*.sqlite3`, `*.sql`, `*.dump`, `*.log`), configuration (deploy.yaml,
    gunicorn.conf.py, pyproject.toml, `.flaskenv`, `*.ini`, `*.cfg`, `.git`), a secret (`.env`, `.env.*`,
    `*.pem`, `*.key`, `id_rsa*`, `.netrc`, `.htpasswd`, ...; names in any case) or a link that leads out of
    it.
    The folder names are refused by every command when deploy.yaml is read; what the folder holds is
    refused by `deploy push`, `deploy render` and `deploy config`, and reported here by `deploy check`.""",
    references=(
        "https://nginx.org/en/docs/http/ngx_http_core_module.html#alias",
        "https://cwe.mitre.org/data/definitions/538.html",
        "https://cwe.mitre.org/data/definitions/552.html",
    ),
)
def static_folder_exposure(ctx: Context) -> Iterator[Finding]:
    from deploy.config import folders
    from deploy.config.loader import line_of

    assert ctx.config is not None
    static = ctx.config.app.static
    if static is None:
        return
    app = ctx.config.app
    why = folders.static_by_name(static.dir, app.wsgi, app.shared) or folders.static_by_contents(
        static.dir, ctx.root
    )
    if why is not None:
        file = config_file(ctx)
        line, _ = line_of(ctx.root / file, ctx.environment, ("app", "static", "dir"))
        yield Finding(f"app.static.dir {static.dir!r} {why}", file, line)


@check(
    "SEC023",
    area="security",
    severity="high",
    title="SECRET_KEY is generated by the app",
    why="""An app that makes its own key when none is configured (`os.environ.get("SECRET_KEY") or
    os.urandom(24)`, `if not app.secret_key: ...`) has a different key in every Gunicorn worker and after
    every restart: a session signed by one worker is rejected by the next, so logins fail at random and
    every push logs everyone out. Writing the generated key to a file does not fix it: the workers start
    at the same time and each writes its own, and a file inside the release is gone after the next push.""",
    fix="""Give the key through the environment: set the variable the app reads (`SECRET_KEY`, or the name
    the finding gives) in deploy.yaml `app.secrets` with a long random value; if the app can only read
    its key from a file, create that file once, in a folder listed in `app.shared`, before the first
    start.""",
    references=(FLASK_CONFIG + "#SECRET_KEY", "https://docs.gunicorn.org/en/stable/design.html"),
    details="""What counts: a key generated with `os.urandom`, `secrets.token_*` or `uuid4` as the fallback of
    an environment variable (`os.environ.get("X") or os.urandom(24)`, `os.environ.get("X",
    secrets.token_hex())`), under `if not app.secret_key:`, in a config object (`self.SECRET_KEY =
    os.urandom(32)`), or by a function that writes it to a file and returns it (`app.secret_key =
    init_secret(path)`). When deploy.yaml gives the variable the code reads (`app.secrets` or
    `app.env`), the generated key is never used and the check is quiet. A key generated
    unconditionally into a config key is SEC003's. Other keys count too when a function named for a
    key or secret (`get_encryption_key()`, `init_secret()`) generates one and writes it to a file and
    the app calls it: an encryption key regenerated in each new release makes the data it encrypted
    unreadable.""",
)
@in_served_code
def secret_key_generated(ctx: Context) -> Iterator[Finding]:
    from deploy.project.scan import key_file_helpers, key_generations

    given: set[str] = set()
    if ctx.config is not None:
        given = set(ctx.config.app.secrets) | set(ctx.config.app.env)
    # A key generated only when none is configured, while deploy.yaml gives one the app reads
    # (`from_prefixed_env()` and FLASK_SECRET_KEY, or os.environ["SECRET_KEY"] elsewhere).
    configured = ("FLASK_SECRET_KEY" in given and bool(ctx.project.calls_named("from_prefixed_env"))) or any(
        s.value.env_name in given for s in ctx.project.setting("SECRET_KEY") if s.value.kind == "env"
    )
    generations = key_generations(ctx.project.python)
    used = {(k.file, k.generated_at) for k in generations if k.generated_at is not None}
    for k in key_file_helpers(ctx.project.python, used):
        yield Finding(
            f"{k.helper}() generates a key (line {k.generated_at}) and writes it to a file (line "
            f"{k.written_at}): unless that file is in a shared folder, every push makes a new key and "
            "what it signed or encrypted can no longer be read; workers starting together may each write "
            "their own; create the key file once, in a folder listed in deploy.yaml app.shared, or give "
            "the key through app.secrets",
            k.file,
            k.line,
        )
    for k in generations:
        if k.env_name and k.env_name in given:
            continue  # deploy.yaml gives the variable: the generated key is never used
        if k.how == "fallback" and not k.env_name and configured:
            continue
        if k.how == "file":
            where = f"{k.file}:{k.generated_at}" if k.generated_at else k.file
            message = (
                f"SECRET_KEY is generated ({where}) and written to a file (line {k.written_at}): workers "
                "starting together each write their own key, and unless the file is in a shared folder "
                "every push replaces it"
            )
        else:
            unset = (
                f"when {k.env_name} is unset"
                if k.env_name
                else "at every start"
                if k.how == "process"
                else "when none is configured"
            )
            message = (
                f"SECRET_KEY is generated {unset} (line {k.generated_at}): a different key in every "
                "worker and after every restart, so logins fail and every push logs everyone out"
            )
        if k.env_name:
            fix = f"set {k.env_name} in deploy.yaml app.secrets"
        else:
            fix = (
                'read it from the environment (os.environ["SECRET_KEY"]) and set SECRET_KEY in deploy.yaml '
                "app.secrets"
            )
            if k.how == "file":
                fix += (
                    ", or create the key file once, in a folder listed in app.shared, before the first start"
                )
        yield Finding(f"{message}; {fix}", k.file, k.line)
