"""The effective configuration: import the app factory in a subprocess under the production environment.

Opt-in (`deploy check --import`), because it runs the user's code. The child process (this module run
with `python -m deploy.inspect_app`) prints one JSON document: safe config values (never a secret,
only facts such as the secret key's length), the URL rules, and the answer of the health endpoint
through Flask's test client.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import os
import secrets
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploy.config import Config

MARKER = "--deploy-inspect-json--"
PLACEHOLDER_PREFIX = "deploy-check-placeholder-"
TIMEOUT = 60
_SAFE_KEYS = (
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
_WEAK = {
    "dev",
    "development",
    "secret",
    "changeme",
    "change-me",
    "default",
    "test",
    "key",
    "secret-key",
    "secretkey",
    "your-secret-key",
    "super-secret",
    "supersecret",
    "password",
}


@dataclass(frozen=True)
class Effective:
    """What the imported app reported, or why it could not be imported."""

    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    secret_key: dict[str, Any] = field(default_factory=dict)
    routes: list[dict[str, Any]] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)
    placeholders: tuple[str, ...] = ()


def production_environment(root: Path, config: Config | None) -> tuple[dict[str, str], tuple[str, ...]]:
    """The process environment for the import: ours, then .env, then deploy.yaml app.env; no debug.

    Secrets listed in app.secrets that have no value get a random placeholder (named in the result), so
    an app that insists on them still imports; checks of the secret's strength then skip.
    """
    from deploy.loader import parse_dotenv

    env = dict(os.environ)
    env.update(parse_dotenv(root / ".env"))
    placeholders: list[str] = []
    if config is not None:
        env.update(config.app.env)
        for name in config.app.secrets:
            if not env.get(name):
                env[name] = PLACEHOLDER_PREFIX + secrets.token_hex(16)
                placeholders.append(name)
    for name in ("FLASK_DEBUG", "FLASK_ENV", "DEBUG", "WERKZEUG_RUN_MAIN"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env, tuple(placeholders)


def inspect(root: Path, spec: str, config: Config | None, python: str | None = None) -> Effective:
    """Import `spec` (`pkg:create_app()` or `module:app`) in a child process and read what it reports."""
    env, placeholders = production_environment(root, config)
    health = config.app.health if config is not None else "/health"
    host = config.primary_domain if config is not None else "localhost"
    deploy_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), deploy_root, env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.run(
            [python or sys.executable, "-m", "deploy.inspect_app", spec, health, host],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Effective(error=f"importing {spec} took longer than {TIMEOUT} s")
    except OSError as exc:
        return Effective(error=f"cannot start Python: {exc}")
    _, found, payload = proc.stdout.rpartition(MARKER)
    if not found:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return Effective(error=f"importing {spec} failed: {tail[0]}")
    data = json.loads(payload)
    if data.get("error"):
        return Effective(error=str(data["error"]), placeholders=placeholders)
    return Effective(
        config=data.get("config", {}),
        secret_key=data.get("secret_key", {}),
        routes=data.get("routes", []),
        health=data.get("health", {}),
        placeholders=placeholders,
    )


# --- the child process ----------------------------------------------------------------------------


def _load(spec: str) -> Any:
    module_name, _, target = spec.partition(":")
    module = importlib.import_module(module_name)
    target = target or "app"
    call_args: tuple[Any, ...] = ()
    call_kwargs: dict[str, Any] = {}
    called = target.endswith(")")
    if called:
        name, _, rest = target.partition("(")
        expr = ast.parse(f"f({rest}", mode="eval").body
        assert isinstance(expr, ast.Call)
        call_args = tuple(ast.literal_eval(a) for a in expr.args)
        call_kwargs = {k.arg: ast.literal_eval(k.value) for k in expr.keywords if k.arg}
        target = name
    obj: Any = module
    for part in target.split("."):
        obj = getattr(obj, part)
    if called:
        obj = obj(*call_args, **call_kwargs)
    return obj


def _secret_facts(value: Any) -> dict[str, Any]:
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
        "weak_word": text.strip().lower() in _WEAK,
    }


def _safe(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple | set):
        return [_safe(v) for v in value]
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    return repr(type(value).__name__)


def main(argv: list[str]) -> int:
    spec, health, host = argv[0], argv[1], argv[2]
    out: dict[str, Any] = {}
    try:
        app = _load(spec)
        if not hasattr(app, "config") or not hasattr(app, "url_map"):
            raise TypeError(f"{spec} is a {type(app).__name__}, not a Flask app")
        config = app.config
        out["config"] = {k: _safe(config.get(k)) for k in _SAFE_KEYS if k in config}
        uri = config.get("SQLALCHEMY_DATABASE_URI")
        if isinstance(uri, str):
            out["config"]["DATABASE_SCHEME"] = uri.split(":", 1)[0]
        out["config"]["SECRET_KEY_FALLBACKS_COUNT"] = len(config.get("SECRET_KEY_FALLBACKS") or [])
        out["secret_key"] = _secret_facts(config.get("SECRET_KEY"))
        out["routes"] = [
            {
                "rule": r.rule,
                "endpoint": r.endpoint,
                "methods": sorted((r.methods or set()) - {"HEAD", "OPTIONS"}),
            }
            for r in app.url_map.iter_rules()
        ]
        try:
            response = app.test_client().get(health, base_url=f"https://{host}")
            out["health"] = {
                "status": response.status_code,
                "headers": sorted({h for h, _ in response.headers}),
            }
        except Exception as exc:
            out["health"] = {"status": None, "error": f"{type(exc).__name__}: {exc}"}
    except BaseException as exc:
        out = {"error": f"importing {spec} failed: {type(exc).__name__}: {exc}"}
    sys.stdout.write("\n" + MARKER + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
