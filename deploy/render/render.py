"""Render production configs from templates: a pure function from a Config to {path: text}."""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from deploy.config import schedule, secretfiles
from deploy.config.loader import ConfigError, Problem, read_bytes, read_text
from deploy.config.model import Config
from deploy.config.workers import worker
from deploy.layout import CATCH_ALL, CATCH_ALL_TLS, job_files, job_unit, paths_for, process_template
from deploy.project.requirements import files_to_copy
from deploy.remote.facts import HostFacts

#: Debian 12's nginx; templates fit the version they are rendered for.
DEFAULT_NGINX_VERSION = "1.22.1"


def output_files(config: Config) -> dict[str, str]:
    """Each rendered file's path (relative to the output folder) and the template that makes it."""
    name = config.app.name
    return {
        "gunicorn.conf.py": "gunicorn.conf.py.j2",
        f"nginx/{name}.conf": "nginx-site.conf.j2",
        f"nginx/snippets/{name}-security-headers.conf": "nginx-security-headers.conf.j2",
        f"nginx/snippets/{name}-proxy.conf": "nginx-proxy.conf.j2",
        CATCH_ALL: "nginx-catch-all.conf.j2",
        CATCH_ALL_TLS: "nginx-catch-all-tls.conf.j2",
        f"systemd/{name}@.service": "app.service.j2",
        "Dockerfile": "Dockerfile.j2",
        ".dockerignore": "dockerignore.j2",
        "compose.yaml": "compose.yaml.j2",
    }


def _version_tuple(version: str) -> tuple[int, ...]:
    # isdigit() is also true of '²', which int() refuses.
    return tuple(int(p) for p in version.split(".") if p.isascii() and p.isdigit())


def systemd_quote(value: str, command: bool = False) -> str:
    """One systemd unit-file word, double-quoted, with specifiers (%) kept literal.

    In a command line (ExecStart=) `$` starts a variable, so it is doubled there too.
    """
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if command:
        escaped = escaped.replace("$", "$$")
    return f'"{escaped}"'


#: The app unit's hardening; `systemd.overrides` in deploy.yaml replaces any of them.
_SYSTEMD_HARDENING = (
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("PrivateUsers", "yes"),
    ("PrivateMounts", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("ProcSubset", "pid"),
    ("CapabilityBoundingSet", ""),
    ("AmbientCapabilities", ""),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("RemoveIPC", "yes"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallFilter", "~@privileged @resources"),
    # Gunicorn chowns its unix socket to itself after binding it; @privileged includes chown.
    ("SystemCallFilter", "@chown"),
    ("SystemCallErrorNumber", "EPERM"),
    ("DevicePolicy", "closed"),
    ("KeyringMode", "private"),
    ("UMask", "0027"),
)


def systemd_hardening(config: Config) -> list[tuple[str, str]]:
    """The hardening directives of the app's unit, in a stable order, with overrides applied."""
    overrides = config.systemd.overrides
    out = [(k, v) for k, v in _SYSTEMD_HARDENING if k not in overrides]
    out.append(("ReadWritePaths", paths_for(config).shared))
    out = [(k, v) for k, v in out if k not in overrides]
    out.extend(sorted(overrides.items()))
    return out


def websockets(config: Config) -> bool:
    """Whether Nginx passes WebSocket upgrades to the app (nginx.websockets resolved)."""
    if config.nginx.websockets == "auto":
        return worker(config.gunicorn.worker_class).concurrent
    return config.nginx.websockets


def context(config: Config, facts: HostFacts) -> dict[str, Any]:
    """Everything a template may use: the config, the layout, and values derived in Python."""
    nginx_version = facts.nginx_version or config.nginx.version or DEFAULT_NGINX_VERSION
    return {
        "config": config,
        "app": config.app,
        "server": config.server,
        "gunicorn": config.gunicorn,
        "nginx": config.nginx,
        "systemd": config.systemd,
        "docker": config.docker,
        "paths": paths_for(config),
        "facts": facts,
        "workers": config.workers_for(facts.cores),
        "nginx_version": nginx_version,
        "nginx_http2_directive": _version_tuple(nginx_version) >= (1, 25, 1),
        # ssl_reject_handshake exists from 1.19.4; older versions close the catch-all with a cert.
        "nginx_reject_handshake": _version_tuple(nginx_version) >= (1, 19, 4),
        # HTTPS once a certificate exists; tls: false (or no certificate yet) serves HTTP only.
        "serve_https": config.server.tls is not False and facts.has_certificate is not False,
        # Nginx waits a little longer than Gunicorn, so a hung request ends in Gunicorn's timeout.
        "proxy_read_timeout": config.nginx.proxy_read_timeout or config.gunicorn.timeout + 5,
        # WebSocket upgrades reach the app only through workers that hold many connections each.
        "websockets": websockets(config),
        # An Nginx variable of this app's own (map blocks are shared by every site on the host).
        "connection_upgrade": "$" + config.app.name.replace("-", "_") + "_connection_upgrade",
        "static_location": config.app.static.url.rstrip("/") + "/" if config.app.static else None,
        "systemd_hardening": systemd_hardening(config),
        "systemd_environment": [systemd_quote(f"{k}={v}") for k, v in sorted(config.app.env.items())],
        "systemd_wsgi": systemd_quote(config.app.wsgi, command=True),
        # systemd must not kill requests still draining: stop timeout > graceful_timeout.
        "systemd_stop_timeout": config.gunicorn.graceful_timeout + 15,
        # The app is imported before Gunicorn reports ready: give it the health gate's time, or more.
        "systemd_start_timeout": max(90, config.push.health_timeout + 30),
        # deploy.config.secretfiles: .dockerignore keeps them out of the build context, and the Dockerfile
        # stops the build if one is in it anyway (a .dockerignore Docker did not read).
        "docker_secret_names": secretfiles.PATTERNS,
        "docker_not_secrets": secretfiles.NOT_SECRETS,
    }


#: A job's ExecStart program (sh -c; the command arrives as "$1"): it runs in the release systemd
#: resolved `current` to when the run started (the working directory), with that release's venv on
#: PATH, DEPLOY_RELEASE set, and PYTHONPATH for a src/ layout (release.json's python_root).
JOB_PROGRAM = (
    'r=$(pwd -P) && cd -- "$r" || exit 1; '
    'export DEPLOY_RELEASE="${r##*/}" VIRTUAL_ENV="$r/.venv" '
    'PATH="$r/.venv/bin:/usr/local/bin:/usr/bin:/bin"; '
    r"""p=$(sed -n 's#^ *"python_root": "\([A-Za-z0-9._/-]*\)",\{0,1\}$#\1#p' .deploy/release.json); """
    'if [ -n "$p" ]; then export PYTHONPATH="$r/$p"; fi; '
    'exec /bin/sh -c "$1"'
)


def job_outputs(config: Config) -> list[tuple[str, str, dict[str, Any]]]:
    """(key in render()'s output, template, the values the template adds) of every job's service and timer."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    # The app unit's hardening, less the chown Gunicorn needs for its socket (a job binds none).
    hardening = [line for line in systemd_hardening(config) if line != ("SystemCallFilter", "@chown")]
    for name, job in sorted(config.jobs.items()):
        unit = job_unit(config, name)
        argv = (JOB_PROGRAM, unit, job.command)
        values = {
            "job_name": name,
            "job": job,
            "job_unit": unit,
            "job_exec": "/bin/sh -c " + " ".join(systemd_quote(arg, command=True) for arg in argv),
            "job_on_calendar": schedule.on_calendar(job.schedule),
            "systemd_hardening": hardening,
        }
        (_, service_key), (_, timer_key) = job_files(config, name)
        out += [(service_key, "job.service.j2", values), (timer_key, "job.timer.j2", values)]
    return out


def process_script(config: Config, command: str) -> str:
    """The shell program a process instance runs: its slot's environment and release, then `command`."""
    slots = paths_for(config).slots
    return (
        'slot="${DEPLOY_INSTANCE%-*}"; '
        f'set -a; . "{slots}/$slot.env" || exit 1; set +a; '
        f'cd -P "{slots}/$slot" || exit 1; '
        'PATH="$PWD/.venv/bin:$PATH"; VIRTUAL_ENV="$PWD/.venv"; export PATH VIRTUAL_ENV; '
        f"exec {command}"
    )


def process_context(config: Config, name: str) -> dict[str, Any]:
    """What process.service.j2 adds to the context: the process, its unit's name, its ExecStart word."""
    process = config.processes[name]
    return {
        "process": process,
        "process_name": name,
        "unit_template": process_template(config, name),
        "process_exec": systemd_quote(process_script(config, process.command), command=True),
    }


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates in the user's cache folder, keyed by each template's source (compiling
    them took a tenth of a no-change push); a cache that cannot be read or written is skipped."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError):
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(root, "deploy", "templates")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None  # code from a folder someone else can write is never loaded
    return _BytecodeCache(folder)


def _own_templates(project_dir: Path | None) -> str | None:
    """The project's own templates/ folder, if it has one."""
    own = project_dir / "templates" if project_dir is not None else None
    return str(own) if own is not None and own.is_dir() else None


def _environment(project_dir: Path | None) -> jinja2.Environment:
    return _cached_environment(_own_templates(project_dir))


@functools.lru_cache(maxsize=8)
def _cached_environment(own_templates: str | None) -> jinja2.Environment:
    """One environment per project templates folder: every host of a push reuses compiled templates
    (a project's own templates are still reloaded when their files change)."""
    shipped = importlib.resources.files("deploy.templates")

    def load_shipped(name: str) -> tuple[str, None, Callable[[], bool]] | None:
        resource = shipped / name
        if not resource.is_file():
            return None
        # A shipped template stays compiled until the project adds its own file of that name.
        override = os.path.join(own_templates, name) if own_templates else None
        return resource.read_text(encoding="utf-8"), None, lambda: not (override and os.path.exists(override))

    loaders: list[jinja2.BaseLoader] = []
    if own_templates is not None:
        loaders.append(_ProjectLoader(own_templates))
    loaders.append(jinja2.FunctionLoader(load_shipped))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - these are config files, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(),
    )


def _shown(file: str) -> str:
    """A project template's path from the current folder when it is below it (as -c names deploy.yaml)."""
    below = os.path.relpath(file)
    return file if below.startswith("..") else below


class _ProjectLoader(jinja2.FileSystemLoader):
    """The project's own templates/ folder; a file there that is not UTF-8 is a ConfigError naming it."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError:
            for folder in self.searchpath:
                read_text(_shown(os.path.join(folder, *jinja2.loaders.split_template_path(template))))
            raise


def _own_template_error(exc: Exception, own_templates: str) -> Exception | None:
    """A ConfigError naming the file and line of the project's own template that `exc` came from
    (a syntax error, an undefined name, a failing expression); None when no own template is to blame
    (then it is a bug in deploy, not in the project)."""
    folder = os.path.join(os.path.abspath(own_templates), "")

    if isinstance(exc, jinja2.TemplateSyntaxError):
        if exc.filename and os.path.abspath(exc.filename).startswith(folder):
            return ConfigError(
                [Problem(_shown(exc.filename), exc.lineno, (), f"template error: {exc.message}")]
            )
        return None
    blamed: tuple[str, int] | None = None
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if os.path.abspath(name).startswith(folder):
            blamed = (name, tb.tb_lineno)
        tb = tb.tb_next
    if blamed is None:
        return None
    if isinstance(exc, jinja2.TemplateNotFound):
        what = f"no template {exc.name!r} (neither in templates/ nor shipped)"
    elif isinstance(exc, jinja2.TemplateError):
        what = exc.message or type(exc).__name__
    else:
        what = f"{type(exc).__name__}: {exc}"
    return ConfigError([Problem(_shown(blamed[0]), blamed[1], (), f"template error: {what}")])


def _requirement_files(config: Config, project_dir: Path | None) -> list[str]:
    """app.requirements and the files it includes (-r/-c), which the Docker build copies."""
    def read(path: str) -> bytes | None:
        try:
            return read_bytes(project_dir / path) if project_dir is not None else None
        except ConfigError:  # missing, unreadable, or endless (a link to /dev/zero)
            return None

    return files_to_copy(config.app.requirements, read)


@dataclass(frozen=True)
class RenderFailure:
    """Why rendering failed, and where: the template (relative to the project for an override) and line."""

    file: str | None
    line: int | None
    message: str

    @classmethod
    def of(cls, exc: Exception, project_dir: Path | None) -> RenderFailure:
        name: str | None = None
        line: int | None = None
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ConfigError) and exc.problems:
            # render's own error for a project template override: it already names file and line.
            problem = exc.problems[0]
            name, line, message = os.path.abspath(problem.file), problem.line, problem.message
        elif isinstance(exc, jinja2.TemplateSyntaxError):
            name, line = exc.filename or exc.name, exc.lineno
        else:
            # Jinja gives a template's frames its file name and line (`<template>`: a shipped one).
            tb = exc.__traceback__
            while tb is not None:
                filename = tb.tb_frame.f_code.co_filename
                if filename.endswith(".j2"):
                    name, line = filename, tb.tb_lineno
                tb = tb.tb_next
        if name is not None and project_dir is not None and Path(name).is_absolute():
            with contextlib.suppress(ValueError):
                name = Path(name).resolve().relative_to(project_dir.resolve()).as_posix()
        return cls(name, line, message)


def render(config: Config, facts: HostFacts | None = None, project_dir: Path | None = None) -> dict[str, str]:
    """Render every config file for `config`; the same input always gives byte-identical output.

    A project overrides one shipped template by placing a file of the same name in its own
    `templates/` folder (next to deploy.yaml).
    """
    env = _environment(project_dir)
    ctx = context(config, facts or HostFacts())
    ctx["requirement_files"] = _requirement_files(config, project_dir)
    templates = output_files(config)
    if not ctx["serve_https"]:
        del templates[CATCH_ALL_TLS]
    contexts = {path: ctx for path in templates}
    for name in config.processes:
        unit = process_template(config, name)
        templates[f"systemd/{unit}"] = "process.service.j2"
        contexts[f"systemd/{unit}"] = {**ctx, **process_context(config, name)}
    files: dict[str, str] = {}
    jobs = [(path, template, {**ctx, **values}) for path, template, values in job_outputs(config)]
    for path, template, values in [*((p, t, contexts[p]) for p, t in templates.items()), *jobs]:
        try:
            files[path] = env.get_template(template).render(values)
        except Exception as exc:
            own = _own_templates(project_dir)
            problem = _own_template_error(exc, own) if own is not None else None
            if problem is None:
                raise
            raise problem from None
    return files
