"""The environment names and signing keys a project's code reads, for `deploy init`: `os.environ`,
`os.getenv`, settings readers (environs, python-decouple, Starlette's `Config`), prefixes loaded wholesale."""

from __future__ import annotations

import ast
import re

from deploy.project.candidates import _call_name, _constant

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _process_environ(node: ast.AST) -> bool:
    """`os.environ` (or an alias of it), not a request's WSGI environ (`request.environ["HTTP_X_..."]`)."""
    if not (isinstance(node, ast.Attribute) and node.attr == "environ"):
        return False
    owner = node.value
    leaf = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
    return leaf not in ("request", "req", "flask_request", "_request")


def _subscript_env_names(tree: ast.AST) -> set[str]:
    """Names the app fails without: read as os.environ["NAME"], or by a settings reader with no default
    (Starlette's or python-decouple's `config("NAME")`, environs' `env("NAME")`, `env.str("NAME")`)."""
    return {
        name
        for node in ast.walk(tree)
        if (
            isinstance(node, ast.Subscript)
            and _process_environ(node.value)
            and (name := _constant(node.slice))
        )
        or (
            isinstance(node, ast.Call)
            and len(node.args) == 1
            and not any(k.arg in ("default", None) for k in node.keywords)
            and (
                (isinstance(node.func, ast.Name) and node.func.id in ("env", "config"))
                or (
                    isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "env"
                )
            )
            and (name := _constant(node.args[0]))
        )
    }


def _env_names(tree: ast.AST) -> set[str]:
    """Names the code reads from the environment: os.environ, os.getenv, environs' env.str(...),
    python-decouple's config(...)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        key: ast.AST | None = None
        if isinstance(node, ast.Subscript) and _process_environ(node.value):
            key = node.slice
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute):
                receiver = func.value
                if (
                    (_process_environ(receiver) and func.attr in ("get", "setdefault", "pop"))
                    or func.attr == "getenv"
                    or (isinstance(receiver, ast.Name) and receiver.id == "env")
                ):
                    key = node.args[0]
            elif isinstance(func, ast.Name) and func.id in ("getenv", "env", "config"):
                key = node.args[0]
        name = _constant(key)
        if name and ENV_NAME.match(name):
            names.add(name)
    return names


def _env_prefixes(tree: ast.AST) -> set[str]:
    """Prefixes of environment variables the app loads into its config wholesale:
    `app.config.from_prefixed_env(prefix="GRAMPSWEB")` (Flask's, default FLASK, joined with '_'), or a
    project's own loader called with a prefix (`app_config_from_env(app, prefix="FLASKBB_")`)."""
    prefixes: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)[1]
        given = next((_constant(k.value) for k in node.keywords if k.arg == "prefix"), None)
        if name == "from_prefixed_env":
            prefix = given or (_constant(node.args[0]) if node.args else None) or "FLASK"
            prefixes.add(prefix.rstrip("_") + "_")
        elif given and "env" in name.lower() and ENV_NAME.match(given.rstrip("_") or "-"):
            prefixes.add(given)
    return prefixes


#: A config key Flask or an extension signs with (SECRET_KEY, WTF_CSRF_SECRET_KEY).
SIGNING_KEY = re.compile(r"^(?:[A-Z][A-Z0-9_]*_)?SECRET_KEY$")


def _signing_keys(tree: ast.AST) -> set[str]:
    """Signing-key config names the code sets or reads (`WTF_CSRF_SECRET_KEY = ...` in a config class,
    `app.config["SECRET_KEY"]`, a list of required options)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and SIGNING_KEY.match(node.id):
            names.add(node.id)
        elif (value := _constant(node)) and SIGNING_KEY.match(value):
            names.add(value)
    return names


def _reads_parameter(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether `func` reads the environment variable its first parameter names (`os.environ[key]`,
    `os.environ.get(key)`, `os.getenv(key)`, `key in os.environ`)."""
    params = func.args.posonlyargs + func.args.args
    if not params:
        return False
    name = params[0].arg

    def is_param(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Name) and node.id == name

    for node in ast.walk(func):
        if isinstance(node, ast.Subscript) and _process_environ(node.value) and is_param(node.slice):
            return True
        if isinstance(node, ast.Compare) and is_param(node.left) and _process_environ(node.comparators[0]):
            return True
        if isinstance(node, ast.Call) and node.args and is_param(node.args[0]):
            func_node = node.func
            if isinstance(func_node, ast.Attribute) and (
                (_process_environ(func_node.value) and func_node.attr in ("get", "setdefault"))
                or func_node.attr == "getenv"
            ):
                return True
    return False


def helper_env_names(trees: list[ast.Module]) -> set[str]:
    """Names read through the project's own reader, a module-level function that reads the variable its
    first parameter names (alerta's `get_config("SECRET_KEY", default="", type=str, config=config)`),
    from its calls with a literal first argument anywhere in the project."""
    helpers = {
        node.name
        for tree in trees
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _reads_parameter(node)
    }
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and _call_name(node)[1] in helpers:
                name = _constant(node.args[0])
                if name and ENV_NAME.match(name):
                    names.add(name)
    return names
