"""deploy.yaml's `services`: Postgres and Redis beside the app, and Postgres backups."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from deploy.config import schedule
from deploy.config.model.base import AbsPath, EnvName, Model, _host_address, _matches, invalid

_SQL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Names Postgres keeps for itself: a database or role of these names is the cluster's own.
_SQL_RESERVED = frozenset({"postgres", "template0", "template1", "public", "pg_database_owner", "root"})


def _sql_name(value: str) -> str:
    if not _SQL_NAME.fullmatch(value) or value.startswith("pg_"):
        raise ValueError(
            f"expected a plain SQL name (lower-case letters, digits and underscores, starting with a "
            f"letter or underscore, at most 63 characters, not pg_...), got {value!r}"
        )
    if value in _SQL_RESERVED:
        raise ValueError(f"{value!r} is Postgres's own; choose another name (such as the app's name)")
    return value


SqlName = Annotated[str, AfterValidator(_sql_name)]


def _schedule(value: str) -> str:
    return schedule.check(value)


class Backups(Model):
    """Scheduled backups of the app's Postgres database, each proven to restore."""

    schedule: Annotated[str, AfterValidator(_schedule)] = Field(
        "daily",
        description="When a backup runs: a systemd `OnCalendar=` expression (`hourly`, `daily`, `weekly`, "
        "`*-*-* 03:00`); missed runs (host down) run at the next boot.",
    )
    keep_daily: Annotated[int, Field(ge=0, le=366)] = Field(
        7, description="Keep the newest verified backup of each of this many most recent days."
    )
    keep_weekly: Annotated[int, Field(ge=0, le=520)] = Field(
        4, description="Keep the newest verified backup of each of this many most recent weeks."
    )
    copy_to: AbsPath | None = Field(
        None,
        description="An absolute folder on the service host (another disk, a mount) that receives a copy "
        "of each verified backup, under `<folder>/<app>/postgres/`, with the same retention.",
    )
    verify: bool = Field(
        True,
        description="Restore each backup into a scratch database and record its tables, row counts and "
        "checksums; a dump that does not restore is marked failed. Restore uses only verified backups.",
    )


class Postgres(Model):
    """PostgreSQL (Debian's package) on one of the hosts: deploy creates the database, the role and its
    password (on the host, readable by root only), and hands the app a URL in its env file."""

    host: Annotated[str, AfterValidator(_host_address)] | None = Field(
        None,
        description="The host Postgres runs on: one of `server.hosts`' addresses (default: the first).",
    )
    database: SqlName | None = Field(
        None,
        description="The database's name (default: `app.name` with `-` as `_`).",
    )
    user: SqlName | None = Field(
        None,
        description="The role the app logs in as (default: `app.name` with `-` as `_`); its password is "
        "made on the host and never leaves it except in the app's env file.",
    )
    max_connections: Annotated[int, Field(ge=20, le=5000)] = Field(
        100,
        description="Postgres's `max_connections` (20 to 5000); every connection costs memory.",
    )
    network: Literal["tls", "private"] | None = Field(
        None,
        description="How app hosts reach it: `tls` (deploy's own CA, `sslmode=verify-full`; the default "
        "when the app has several hosts or Postgres is on another host) or `private` (you declare the "
        "hosts' network private: TLS not required). An app on the Postgres host alone uses localhost.",
    )
    env: EnvName = Field(
        "DATABASE_URL",
        description="The environment variable the app reads the URL from.",
    )
    backups: Backups | None = Field(
        None,
        description="Scheduled backups (`pg_dump`, custom format) on a systemd timer on the service host, "
        "each restored into a scratch database and checked; `deploy services backups` lists them.",
    )


_REDIS_MEMORY = re.compile(r"^[1-9][0-9]{0,8}(b|kb|mb|gb|k|m|g)?$", re.IGNORECASE)


class RedisService(Model):
    """Redis on one of the hosts (Debian's redis-server), reachable by the app's hosts only."""

    host: Annotated[str, AfterValidator(_host_address)] | None = Field(
        None,
        description="The address of the host Redis runs on: one of `server.hosts` (default: the first).",
    )
    persistence: Literal["none", "rdb", "aof"] = Field(
        "rdb",
        description="`rdb`: snapshots (a restart loses at most the last minutes); `aof`: an append-only "
        "file fsynced every second (a restart loses at most a second); `none`: a cache only (a restart "
        "empties it).",
    )
    durable: bool = Field(
        False,
        description="Its data matters: the backups include Redis's persistence files. Needs `rdb` or `aof`.",
    )
    maxmemory: (
        Annotated[str, AfterValidator(_matches(_REDIS_MEMORY, "a Redis memory size such as 256mb or 1gb"))]
        | None
    ) = Field(
        None,
        description="The most memory Redis uses for data (`256mb`, `1gb`); at the limit, writes fail "
        "(Redis's `noeviction`). Default: no limit.",
    )
    network: Literal["tls", "private"] = Field(
        "tls",
        description="`tls`: the app's hosts reach Redis over TLS with deploy's own CA (the certificate "
        "is verified); `private`: the user declares the hosts' network private (plain TCP).",
    )
    env: EnvName = Field("REDIS_URL", description="The environment variable the app reads the URL from.")

    @model_validator(mode="after")
    def _durable_needs_persistence(self) -> RedisService:
        if self.durable and self.persistence == "none":
            raise invalid(
                "RedisService",
                [(("durable",), "durable: true needs persistence rdb or aof: none keeps nothing to back up")],
            )
        return self


class Services(Model):
    """Services deploy runs beside the app on your hosts; each key's presence enables it."""

    postgres: Postgres | None = Field(
        None,
        description="PostgreSQL on one of the hosts (`postgres: {}` takes every default).",
    )
    redis: RedisService | None = Field(
        None,
        description="Redis with an ACL user of the app's own and the persistence chosen; the app reads "
        "its URL from `env` (default `REDIS_URL`).",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _present_means_on(cls, value: Any) -> Any:
        """`postgres:` or `redis:` with nothing after it enables the service with all defaults, as `{}`."""
        return {} if value is None else value
