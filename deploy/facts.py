"""What deploy knows about a target host: plain data that plans, renders and checks receive."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostFacts:
    """Facts about one host; None means unknown (rendering then uses a safe default)."""

    cores: int | None = None
    nginx_version: str | None = None
    python_version: str | None = None
    systemd_version: int | None = None
    #: Whether the TLS certificate already exists on the host; None (unknown) renders the full
    #: HTTPS site, False renders the HTTP-only site that serves the ACME challenge first.
    has_certificate: bool | None = None
