"""deploy.yaml's `hooks` and `push` sections: commands around pushes and rollbacks, how a push runs."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from deploy.config.model.base import Model, SafeText, _matches


class Hook(Model):
    """A command run before or after a push or rollback, locally or on every host."""

    run: SafeText = Field(description="The command.")
    on: Literal["local", "hosts"] = Field(
        "local",
        description="Where it runs: `local` (this machine) or `hosts` (every host).",
    )


class Hooks(Model):
    """Commands around pushes and rollbacks (notifications, cache warm-up)."""

    pre_push: list[Hook] = Field(
        default_factory=list,
        description="Commands run before a push (a string runs locally).",
    )
    post_push: list[Hook] = Field(default_factory=list, description="Commands run after a push.")
    pre_rollback: list[Hook] = Field(default_factory=list, description="Commands run before a rollback.")
    post_rollback: list[Hook] = Field(default_factory=list, description="Commands run after a rollback.")

    @field_validator("pre_push", "post_push", "pre_rollback", "post_rollback", mode="before")
    @classmethod
    def _strings(cls, hooks: Any) -> Any:
        if isinstance(hooks, list):
            return [{"run": h} if isinstance(h, str) else h for h in hooks]
        return hooks


class Push(Model):
    """How releases are rolled out."""

    keep_releases: Annotated[int, Field(ge=2, le=100)] = Field(
        5,
        description="Releases kept on each host; never removes the current release or the rollback target.",
    )
    batch: (
        Annotated[
            str,
            AfterValidator(_matches(re.compile(r"^(\d+%?)$"), "a count such as 2 or a share such as 25%")),
        ]
        | None
    ) = Field(
        None,
        description="A rolling deploy: hosts at a time, a count (`2`) or a share (`25%`); default all at "
        "once.",
    )
    max_failures: Annotated[int, Field(ge=0)] = Field(
        0,
        description="Hosts that may fail before the push stops and rolls back.",
    )
    health_timeout: Annotated[int, Field(ge=1, le=600)] = Field(
        30,
        description="Seconds a new release gets to answer the health check.",
    )
    #: Seconds one step of a push may take on a host before the push gives up on it.
    step_timeout: Annotated[int, Field(ge=10, le=86400)] = Field(
        600,
        description="Seconds one step of a push (upload, pip, a release command) may take on a host.",
    )
    #: Seconds a push waits for the last step of an interrupted push (pip, a migration) that still
    #: runs on a host, before it gives up and says so.
    lock_wait: Annotated[int, Field(ge=0, le=86400)] = Field(
        120,
        description="Seconds a push waits for the last step of an interrupted push still running on a host.",
    )
    installer: Literal["pip", "uv"] = Field(
        "uv",
        description="What fills a new venv on the hosts from the shipped wheels: `uv` (the default: deploy "
        "ships a pinned, checksum-verified uv to each host once; its cache on the host hard-links "
        "packages into later venvs), or `pip` (the host's own). Both install the same distributions; no "
        "host needs a package index.",
    )
    bytecode: Literal["after_switch", "install"] = Field(
        "after_switch",
        description="When a new venv's bytecode is compiled: `after_switch` (in the background on the host, "
        "at idle priority, once the new release serves: the push does not wait, and the release's first "
        "start imports from source), or `install` (by the installer, before the release starts).",
    )
