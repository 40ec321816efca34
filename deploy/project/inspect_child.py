"""The child side of `deploy check --import`: a standalone script that imports the app and prints JSON.

It runs in the project's own interpreter (its virtualenv, `--python`), so it uses only the standard
library and the target's Flask: no import of deploy, no syntax newer than Python 3.8. It prints, after
a marker line, safe config values (never a secret, only facts such as the secret key's length), the
URL rules, and the answer of the health endpoint through Flask's test client.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import os
import sys
from collections import Counter
from typing import Any

MARKER = "--deploy-inspect-json--"
PLACEHOLDER_PREFIX = "deploy-check-placeholder-"
SAFE_KEYS = (
    "DEBUG",
    "TESTING",
    "PROPAGATE_EXCEPTIONS",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "SESSION_COOKIE_NAME",
    "MAX_CONTENT_LENGTH",
    "TRUSTED_HOSTS",
    "SERVER_NAME",
    "PREFERRED_URL_SCHEME",
    "WTF_CSRF_ENABLED",
    "CACHE_TYPE",
    "TEMPLATES_AUTO_RELOAD",
    "EXPLAIN_TEMPLATE_LOADING",
    "SEND_FILE_MAX_AGE_DEFAULT",
    "REMEMBER_COOKIE_SECURE",
    "REMEMBER_COOKIE_HTTPONLY",
)
#: Well-known placeholder secret values (deploy.config.secrets.WEAK), handed over by the parent in
#: this environment variable, which is removed before the app is imported.
WEAK_ENV = "DEPLOY_INSPECT_WEAK_WORDS"
WEAK = frozenset(json.loads(os.environ.pop(WEAK_ENV, "[]")))


def load(spec: str) -> Any:
    """The object `module:name`, `module:factory()` or `module:factory('arg', k=1)` names."""
    module_name, _, target = spec.partition(":")
    module = importlib.import_module(module_name)
    target = target or "app"
    call_args: tuple[Any, ...] = ()
    call_kwargs: dict[str, Any] = {}
    called = target.endswith(")")
    if called:
        name, _, rest = target.partition("(")
        expr = ast.parse("f(" + rest, mode="eval").body
        if not isinstance(expr, ast.Call):
            raise ValueError("not a call: " + target)
        call_args = tuple(ast.literal_eval(a) for a in expr.args)
        call_kwargs = {k.arg: ast.literal_eval(k.value) for k in expr.keywords if k.arg}
        target = name
    obj: Any = module
    for part in target.split("."):
        obj = getattr(obj, part)
    if called:
        obj = obj(*call_args, **call_kwargs)
    return obj


def secret_facts(value: Any) -> dict[str, Any]:
    """Facts about a secret that say how strong it is without revealing it."""
    if value is None:
        return {"set": False}
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    counts = Counter(text)
    entropy = (
        -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values()) * len(text) if text else 0.0
    )
    return {
        "set": bool(text),
        "length": len(text),
        "distinct": len(counts),
        "entropy_bits": round(entropy, 1),
        "placeholder": text.startswith(PLACEHOLDER_PREFIX),
        "weak_word": text.strip().lower() in WEAK,
    }


def safe(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [safe(v) for v in value]
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    return repr(type(value).__name__)


def inspect(spec: str, health: str, host: str) -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version.split()[0]}
    app = load(spec)
    if not hasattr(app, "config") or not hasattr(app, "url_map"):
        if not callable(app):
            raise TypeError(spec + " is a " + type(app).__name__ + ", not a WSGI or ASGI app")
        out["other"] = type(app).__name__  # an ASGI app (FastAPI, Starlette): it imports, no Flask config
        return out
    config = app.config
    out["config"] = {k: safe(config.get(k)) for k in SAFE_KEYS if k in config}
    uri = config.get("SQLALCHEMY_DATABASE_URI")
    if isinstance(uri, str):
        out["config"]["DATABASE_SCHEME"] = uri.split(":", 1)[0]
    out["config"]["SECRET_KEY_FALLBACKS_COUNT"] = len(config.get("SECRET_KEY_FALLBACKS") or [])
    out["secret_key"] = secret_facts(config.get("SECRET_KEY"))
    routes: list[dict[str, Any]] = []
    for r in app.url_map.iter_rules():
        methods = sorted(set(r.methods or ()) - {"HEAD", "OPTIONS"})
        routes.append({"rule": r.rule, "endpoint": r.endpoint, "methods": methods})
    out["routes"] = routes
    try:
        response = app.test_client().get(health, base_url="https://" + host)
        out["health"] = {"status": response.status_code, "headers": sorted({h for h, _ in response.headers})}
    except Exception as exc:
        out["health"] = {"status": None, "error": type(exc).__name__ + ": " + str(exc)}
    return out


def main(argv: list[str]) -> int:
    spec, health, host = argv[0], argv[1], argv[2]
    try:
        out = inspect(spec, health, host)
    except BaseException as exc:
        out = {"error": "importing " + spec + " failed: " + type(exc).__name__ + ": " + str(exc)}
        out["error_type"] = type(exc).__name__
    sys.stdout.write("\n" + MARKER + json.dumps(out))
    return 0


if __name__ == "__main__":
    # Run as a script, sys.path[0] is this file's folder: put the project (the working directory) first.
    sys.path[0] = ""
    sys.exit(main(sys.argv[1:]))
