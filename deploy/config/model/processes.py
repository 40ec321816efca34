"""deploy.yaml's `processes` and `jobs`: programs beside the web app and scheduled commands."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from deploy.config.model.base import (
    _CPU_QUOTA,
    _MEMORY,
    AbsPath,
    Model,
    ProcessName,
    SafeText,
    _matches,
    invalid,
)
from deploy.config.model.services import _schedule

# --- processes -------------------------------------------------------------------------------


class Ready(Model):
    """When a new process instance counts as ready (a push waits for it before the old ones stop)."""

    kind: Literal["settle", "notify", "heartbeat", "command", "rq", "celery"] = Field(
        "settle",
        description="`settle`: alive without a restart for `settle` seconds; `notify`: the process "
        "reports ready through systemd (sd_notify READY=1); `heartbeat`: a file it touches; `command`: a "
        "probe command that exits 0; `rq` / `celery`: the framework's own probe (`rq info` on the "
        "worker's queues, `celery inspect ping` to the instance's own node: its `-n` name, default "
        "`celery@<host>`). Written `ready: rq`, `ready: {heartbeat: PATH}` or "
        "`ready: {command: CMD}`.",
    )
    heartbeat: AbsPath | None = Field(
        None, description="The file the process touches while it is alive (kind `heartbeat`)."
    )
    command: SafeText | None = Field(
        None,
        description="The probe (kind `command`), run like the process: in the release, its venv first "
        "on PATH, the app's environment; ready once it exits 0.",
    )

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        """`ready: rq`, `ready: {heartbeat: PATH}`, `ready: {command: CMD}`."""
        if isinstance(data, str):
            return {"kind": data}
        if isinstance(data, dict) and "kind" not in data and len(data) == 1:
            (key,) = data
            if key in ("heartbeat", "command"):
                return {"kind": key, **data}
        return data

    @model_validator(mode="after")
    def _complete(self) -> Ready:
        for kind in ("heartbeat", "command"):
            if self.kind == kind and not getattr(self, kind):
                raise invalid("Ready", [((kind,), f"ready kind {kind!r} needs `{kind}:`")])
            if self.kind != kind and getattr(self, kind):
                raise invalid(
                    "Ready", [((kind,), f"only for ready kind {kind!r} (this one is {self.kind!r})")]
                )
        return self


class Process(Model):
    """A process besides web (a worker, a scheduler), released with the app under its own systemd unit."""

    command: Annotated[SafeText, Field(min_length=1)] = Field(
        description="What it runs, as a shell command line: in the release's folder, with the release's "
        "venv first on PATH and the app's environment (`$REDIS_URL` works).",
    )
    instances: Annotated[int, Field(ge=1, le=64)] = Field(1, description="How many run on each host.")
    hosts: ProcessName = Field(
        "all",
        description="Where it runs: `all` hosts, the `first` host, or the hosts of a role (see "
        "`server.hosts[].roles`).",
    )
    singleton: bool = Field(
        False,
        description="Exactly one instance on exactly one host (the first of `hosts`), never two at once: "
        "a push stops the old one before it starts the new one (a scheduler).",
    )
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP"] = Field(
        "SIGTERM",
        description="The signal that asks it to stop: SIGTERM is RQ's and Celery's warm shutdown (finish "
        "the job in hand, take no new one).",
    )
    stop_timeout: Annotated[int, Field(ge=1, le=86400)] = Field(
        60, description="Seconds a graceful stop may take before it is killed (systemd TimeoutStopSec)."
    )
    ready: Ready = Field(default_factory=Ready, description="When a new instance counts as ready.")
    settle: Annotated[int, Field(ge=0, le=3600)] = Field(
        5,
        description="Seconds a new instance must stay alive without a restart to count as healthy.",
    )
    memory_max: (
        Annotated[
            str,
            AfterValidator(_matches(_MEMORY, "a size such as 512M or 2G, a share such as 50%, or infinity")),
        ]
        | None
    ) = Field(None, description="The most memory its unit may use (systemd MemoryMax).")
    cpu_quota: (
        Annotated[str, AfterValidator(_matches(_CPU_QUOTA, "a share of one core such as 50% or 200%"))] | None
    ) = Field(None, description="The CPU time its unit may use, 100% = one core (systemd CPUQuota).")
    job_timeout: Annotated[int, Field(ge=1, le=604800)] | None = Field(
        None,
        description="The longest job it runs, in seconds (a check compares it with `stop_timeout`).",
    )

    @model_validator(mode="after")
    def _one_singleton(self) -> Process:
        if self.singleton and self.instances != 1:
            raise invalid(
                "Process",
                [(("instances",), f"a singleton runs exactly one instance; got instances: {self.instances}")],
            )
        return self


# --- jobs --------------------------------------------------------------------------------------

#: A job's (or process's) name: it names systemd units (`<app>-job-<name>.timer`).
_UNIT_PART = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
JobName = Annotated[
    str,
    AfterValidator(
        _matches(_UNIT_PART, "a name of lower-case letters, digits and hyphens, starting with a letter")
    ),
]


class Job(Model):
    """A scheduled job: a command a systemd timer runs in the current release, never overlapping itself."""

    command: Annotated[str, Field(min_length=1)] = Field(
        description="The shell command, run as the app user in the current release (its venv on PATH, "
        "the app's env and secrets, working directory the release).",
    )
    schedule: Annotated[str, AfterValidator(_schedule)] = Field(
        description="When it runs: `minutely`, `hourly`, `daily`, `weekly`, `monthly`, or a systemd "
        "calendar expression such as `*-*-* 03:30:00`, `Mon..Fri 09:00` or `*:0/15` (host time; add "
        "`UTC` for UTC).",
    )
    hosts: ProcessName = Field(
        "first",
        description="Where it runs: `first` (the first of server.hosts: once per period), `all` (every "
        "host), or every host of a role (see `server.hosts[].roles`).",
    )
    timeout: Annotated[int, Field(ge=1, le=604800)] = Field(
        3600,
        description="Seconds a run may take before it is stopped (and counted as failed).",
    )
    catch_up: bool = Field(
        False,
        description="Run a period missed while the host was down once it is back (systemd `Persistent=`).",
    )
