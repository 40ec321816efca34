"""deploy.yaml's sections of what serves the app: `gunicorn`, `nginx`, `systemd` and `docker`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from deploy.config import csp
from deploy.config import workers as worker_classes
from deploy.config.model.base import (
    _IMAGE,
    CspDirective,
    CspSource,
    HeaderValue,
    Model,
    Size,
    UnixName,
    Version,
    _matches,
)


class Gunicorn(Model):
    """Gunicorn settings; 'auto' workers means (2 x the target host's cores) + 1."""

    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=256)] = Field(
        "auto",
        description="`auto` (2 x the host's cores + 1) or a number.",
    )
    worker_class: Literal[
        "sync",
        "gthread",
        "gevent",
        "eventlet",
        "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
        "asgi",
        "uvicorn_worker.UvicornWorker",
        "uvicorn_worker.UvicornH11Worker",
    ] = Field(
        "sync",
        description="The worker type. WSGI apps: sync, gthread, gevent, eventlet (Gunicorn before 26) or "
        "geventwebsocket.gunicorn.workers.GeventWebSocketWorker (Flask-SocketIO); ASGI apps (Quart, "
        "FastAPI, Starlette): asgi (Gunicorn 24+'s own worker) or uvicorn_worker.UvicornWorker (the "
        "uvicorn-worker package). The worker's package must be in the requirements.",
    )
    threads: Annotated[int, Field(ge=1, le=256)] = Field(1, description="Threads per worker (for gthread).")
    timeout: Annotated[int, Field(ge=1, le=3600)] = Field(
        30,
        description="Seconds before a silent worker is killed.",
    )
    graceful_timeout: Annotated[int, Field(ge=1, le=3600)] = Field(
        30,
        description="Seconds a worker gets to finish its requests on stop.",
    )
    keepalive: Annotated[int, Field(ge=0, le=300)] = Field(
        5,
        description="Seconds a keep-alive connection waits for the next request.",
    )
    # Recycling re-imports the app in a worker: often enough to bound a leak, rarely enough to
    # cost nothing measurable (1000 cost a fifth of the throughput under load; benchmarks/).
    max_requests: Annotated[int, Field(ge=0)] = Field(
        10000,
        description="Recycle a worker after this many requests (bounds a leak).",
    )
    max_requests_jitter: Annotated[int, Field(ge=0)] = Field(
        1000,
        description="Up to this many more requests, so the workers do not all restart at once.",
    )
    #: Gunicorn's own access log (to the journal); Nginx logs every request with its timings anyway.
    access_log: bool = Field(
        False,
        description="Gunicorn's own access log too (Nginx logs every request with its timings anyway).",
    )
    backlog: Annotated[int, Field(ge=16, le=65535)] = Field(
        2048,
        description="The listen queue of Gunicorn's socket.",
    )
    #: Import the app once in the master and fork the workers from it. 'auto' = yes, except with
    #: gevent/eventlet workers (they must patch the standard library before the app is imported).
    preload_app: Literal["auto"] | bool = Field(
        "auto",
        description="Import the app once, then fork the workers (`auto`: yes, unless gevent or eventlet).",
    )

    @field_validator("worker_class", mode="before")
    @classmethod
    def _not_deprecated(cls, value: Any) -> Any:
        if isinstance(value, str) and value in worker_classes.DEPRECATED:
            raise ValueError(worker_classes.DEPRECATED[value])
        return value

    @property
    def preload(self) -> bool:
        """Whether the app is imported before the workers are forked (preload_app resolved)."""
        if self.preload_app == "auto":
            return not worker_classes.worker(self.worker_class).patches
        return self.preload_app


class Nginx(Model):
    """The Nginx site in front of Gunicorn."""

    version: Version = Field("1.22", description="The hosts' Nginx version (directives differ by version).")
    client_max_body_size: Size = Field(
        "16m",
        description="The largest request body; keep it at or above the app's MAX_CONTENT_LENGTH.",
    )
    gzip: bool = Field(True, description="Compress text responses.")
    content_security_policy: HeaderValue = Field(
        csp.DEFAULT_POLICY,
        description="The Content-Security-Policy header (replace it whole, or add sources with "
        "`csp_sources`).",
    )
    #: Sources added to directives of the policy: inline scripts' hashes, a CDN's host.
    csp_sources: dict[CspDirective, list[CspSource]] = Field(
        default_factory=dict,
        description="Sources added to directives of the policy: an inline script's hash, a CDN's host "
        "(`deploy check` SEC021 prints the hashes).",
    )
    hsts_max_age: Annotated[int, Field(ge=0, le=63072000)] = Field(
        63072000,
        description="Strict-Transport-Security max-age in seconds; 0 turns HSTS off.",
    )
    websockets: Literal["auto"] | bool = Field(
        "auto",
        description="Pass WebSocket upgrades to the app (`auto`: when the worker class holds many "
        "connections per process: asgi, uvicorn, gevent, eventlet; never to sync or gthread workers, "
        "where each open socket would take a whole worker).",
    )
    proxy_read_timeout: Annotated[int, Field(ge=1, le=3600)] | None = Field(
        None,
        description="Seconds Nginx waits for the app's response; default `gunicorn.timeout` + 5.",
    )
    extra_headers: dict[
        Annotated[str, AfterValidator(_matches(re.compile(r"^[A-Za-z][A-Za-z0-9-]*$"), "a header name"))],
        HeaderValue,
    ] = Field(
        default_factory=dict,
        description="Headers added to every response (not those deploy sets itself).",
    )

    @field_validator("extra_headers")
    @classmethod
    def _not_a_standard_header(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name.lower() in _MANAGED_HEADERS:
                raise ValueError(
                    f"{name} is set by deploy already; change it with its own key "
                    "(content_security_policy, hsts_max_age) instead of extra_headers"
                )
        return headers

    @property
    def csp_header(self) -> str:
        """The Content-Security-Policy header sent: the policy with csp_sources added."""
        return csp.with_sources(self.content_security_policy, self.csp_sources)


_MANAGED_HEADERS = {
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "server",
}

_SYSTEMD_OVERRIDABLE = {
    "MemoryDenyWriteExecute",
    "PrivateDevices",
    "PrivateUsers",
    "PrivateTmp",
    "ProtectHome",
    "ProtectSystem",
    "ProtectProc",
    "ProcSubset",
    "RestrictAddressFamilies",
    "SystemCallFilter",
    "IPAddressDeny",
    "IPAddressAllow",
    "RestrictNamespaces",
    "LimitNOFILE",
    "MemoryMax",
    "CPUQuota",
    "TasksMax",
    "ReadWritePaths",
    "UMask",
}


class Systemd(Model):
    """Hardening of the app's unit; any directive in `overrides` replaces the default."""

    overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Hardening directives of the unit to replace when the app needs it (such as "
        "`MemoryDenyWriteExecute: no` for a JIT).",
    )

    @field_validator("overrides", mode="before")
    @classmethod
    def _yaml_scalars(cls, overrides: Any) -> Any:
        """Accept YAML's true/false and numbers as systemd's yes/no and digits."""
        if isinstance(overrides, dict):
            return {
                key: ("yes" if value else "no")
                if isinstance(value, bool)
                else str(value)
                if isinstance(value, int | float)
                else value
                for key, value in overrides.items()
            }
        return overrides

    @field_validator("overrides")
    @classmethod
    def _known(cls, overrides: dict[str, str]) -> dict[str, str]:
        for key in overrides:
            if key not in _SYSTEMD_OVERRIDABLE:
                allowed = ", ".join(sorted(_SYSTEMD_OVERRIDABLE))
                raise ValueError(f"{key!r} cannot be overridden; expected one of: {allowed}")
        return overrides


class Docker(Model):
    """The container image: a pinned base image and the user it runs as."""

    base_image: Annotated[
        str, AfterValidator(_matches(_IMAGE, "an image reference such as python:3.11-slim-bookworm"))
    ] = Field(
        "python:3.11-slim-bookworm",
        description="The base image, pinned by a tag (not `latest`) or a digest.",
    )
    user: UnixName = Field("app", description="The non-root user inside the image.")

    @field_validator("base_image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        name, _, tag = image.split("@")[0].rpartition(":")
        if "@" not in image and (not name or "/" in tag or tag == "latest"):
            raise ValueError(
                f"{image!r} is not pinned: give a tag such as python:3.11-slim-bookworm "
                "(not 'latest') or a digest (@sha256:...)"
            )
        return image

    @field_validator("user")
    @classmethod
    def _not_root(cls, user: str) -> str:
        if user == "root":
            raise ValueError("the container must not run as root; use a dedicated user such as 'app'")
        return user
