"""Environments deploy.yaml does not define itself: an overlay a tool supplies for `-e NAME` (the
sandbox's hosts for `-e sandbox`). deploy.yaml's own environments.NAME always wins over one of these.

`ENVIRONMENT_OVERLAYS` is the registry the loader uses unless its caller passes others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from deploy.config import sandbox_overlay


@dataclass(frozen=True)
class Overlay:
    """An environment supplied from outside deploy.yaml."""

    #: deploy.yaml's data with the overlay applied; None when the overlay is not there (then `-e NAME`
    #: is refused as an unknown environment, with `missing` as the hint). Raises ConfigError for an
    #: overlay that is there but wrong.
    apply: Callable[[dict[str, Any]], dict[str, Any] | None]
    #: What to do when it is not there, added to the "no environment" error.
    missing: str


ENVIRONMENT_OVERLAYS: Mapping[str, Overlay] = {
    sandbox_overlay.SANDBOX_ENV_NAME: Overlay(sandbox_overlay.apply, "run 'deploy sandbox up' first"),
}
