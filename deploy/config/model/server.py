"""deploy.yaml's `server` section: its hosts (and their roles), SSH and TLS."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from deploy.config.model.base import (
    AbsPath,
    Domain,
    Model,
    ProcessName,
    SafeText,
    UnixName,
    _host_address,
    _matches,
    _not_reserved,
    _unique,
    invalid,
)


class Host(Model):
    """One server: an address, and optionally its own SSH user and port."""

    address: Annotated[str, AfterValidator(_host_address)] = Field(
        description="An IPv4 address, `[IPv6]` or a host name.",
    )
    user: UnixName | None = Field(None, description="The SSH user for this host (default `server.ssh.user`).")
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        None,
        description="The SSH port for this host (default `server.ssh.port`).",
    )
    roles: Annotated[list[ProcessName], Field(min_length=1)] = Field(
        default_factory=lambda: ["web"],
        description="The groups this host belongs to (default `[web]`): the web process runs on hosts "
        "with the role `web`; a process's `hosts:` may name any role.",
    )

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[str]) -> list[str]:
        return _unique(roles)

    @property
    def name(self) -> str:
        """How the host is named in plans and output: its address, with the port when not the default."""
        return self.address if self.port is None else f"{self.address}:{self.port}"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        """Accept 'host', 'user@host' and 'user@host:port'."""
        if isinstance(data, str):
            user, _, rest = data.rpartition("@")
            address, port = rest, None
            if rest.count(":") == 1:
                address, _, port_text = rest.partition(":")
                if not (port_text.isascii() and port_text.isdigit()):  # not '²'
                    raise ValueError(f"expected 'host', 'user@host' or 'user@host:port', got {data!r}")
                port = int(port_text)
            out: dict[str, Any] = {"address": address}
            if user:
                out["user"] = user
            if port is not None:
                out["port"] = port
            return out
        return data


class SSH(Model):
    """How deploy reaches the hosts. Host keys are always verified against known_hosts."""

    user: UnixName = Field(
        "root",
        description="The SSH user; with `sudo: true` any user with passwordless sudo.",
    )
    port: Annotated[int, Field(ge=1, le=65535)] = Field(22, description="The SSH port.")
    key: SafeText | None = Field(
        None,
        description="The private key file; default: the SSH agent and the keys in `~/.ssh`.",
    )
    known_hosts: SafeText | None = Field(
        None,
        description="The known_hosts file; host keys are always verified (default `~/.ssh/known_hosts`).",
    )
    proxy_jump: SafeText | None = Field(None, description="A jump host, like `ssh -J`.")
    sudo: bool = Field(False, description="Run privileged commands through sudo.")
    connect_timeout: Annotated[int, Field(ge=1, le=300)] = Field(
        10,
        description="Seconds to wait for an SSH connection.",
    )


class TLS(Model):
    """HTTPS: a certificate from an ACME server (email), or the user's own (cert and key)."""

    email: (
        Annotated[str, AfterValidator(_matches(re.compile(r"^[^@\s;]+@[^@\s;]+$"), "an email address"))]
        | None
    ) = Field(
        None,
        description="The ACME account's e-mail: certificates from an ACME server through certbot.",
    )
    cert: SafeText | None = Field(
        None,
        description="Your own certificate chain (PEM), instead of `email`; goes with `key`.",
    )
    key: SafeText | None = Field(
        None,
        description="The private key of your own certificate; uploaded with mode 0600.",
    )
    acme_server: (
        Annotated[
            str,
            AfterValidator(_matches(re.compile(r"^https://[^\s;\"']+$"), "an https:// ACME directory URL")),
        ]
        | None
    ) = Field(None, description="The ACME directory URL; default: Let's Encrypt.")
    ca_bundle: SafeText | None = Field(
        None,
        description="A CA bundle to trust for the ACME server (a private CA).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TLS:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key go together: give both or neither")
        if self.cert is None and self.email is None:
            raise ValueError("tls needs either email (certificates from an ACME server) or cert and key")
        if self.cert is not None and self.email is not None:
            raise ValueError("tls takes either email (ACME) or cert and key, not both")
        return self

    @property
    def acme(self) -> bool:
        return self.cert is None


class Server(Model):
    """Where the app runs: its names, its hosts, and the account it runs as."""

    domains: Annotated[list[Domain], Field(min_length=1)] = Field(
        description="The site's names; the first is the primary (the certificate's name). A wildcard "
        "(`*.example.com`) only with your own certificate: ACME issues wildcards through DNS-01 only.",
    )
    hosts: list[Host] = Field(
        default_factory=list,
        description="The servers: `host`, `user@host`, `user@host:port`, or a mapping.",
    )
    user: UnixName = Field("deploy", description="The system user the app runs as (never root).")
    base_dir: AbsPath | None = Field(
        None,
        description="Where `releases/`, `shared/` and `current` live; default `/srv/<app.name>`; a "
        "folder of its own, never a system folder.",
    )
    ssh: SSH = Field(default_factory=SSH, description="How deploy reaches the hosts.")
    tls: TLS | Literal[False] = Field(
        False,
        description="HTTPS: `{email: ...}` (ACME) or `{cert: ..., key: ...}`; `false` for an internal "
        "service behind another proxy.",
    )
    cores: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        None,
        description="The hosts' cores, when rendering without asking them.",
    )

    @field_validator("user")
    @classmethod
    def _not_root(cls, user: str) -> str:
        if user == "root":
            raise ValueError("the app must not run as root; use a dedicated user such as 'deploy'")
        return _not_reserved(user)

    @field_validator("domains")
    @classmethod
    def _unique_domains(cls, domains: list[str]) -> list[str]:
        return _unique(domains)

    @field_validator("hosts")
    @classmethod
    def _unique_hosts(cls, hosts: list[Host]) -> list[Host]:
        _unique([f"{h.address}:{h.port or ''}" for h in hosts])
        return hosts

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_true(cls, value: Any) -> Any:
        if value is True:
            raise ValueError(
                "tls: true is not enough; give {email: you@example.com} or {cert: ..., key: ...}"
            )
        return value

    @model_validator(mode="after")
    def _no_wildcard_by_acme(self) -> Server:
        """A wildcard name needs the DNS-01 challenge; certbot here answers HTTP-01 only."""
        if not (isinstance(self.tls, TLS) and self.tls.email):
            return self
        wild = [(("domains", i), name) for i, name in enumerate(self.domains) if name.startswith("*.")]
        if wild:
            raise invalid(
                "Server",
                [
                    (
                        loc,
                        f"{name!r} is a wildcard, and an ACME server issues wildcards only through the "
                        "DNS-01 challenge, which deploy's certbot (HTTP-01, on port 80) cannot answer: "
                        "list each name, or give your own certificate with tls.cert and tls.key",
                    )
                    for loc, name in wild
                ],
            )
        return self
