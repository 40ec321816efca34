"""The checker: layers and context, registry and runner, suppressions, formats, the live probe, linters.

This package's own namespace is the checker's public face, the one checks (deploy.checks and plugins)
import from: `check` registers a check, which receives a `Context` and yields `Finding`s or raises `Skip`.
"""

from deploy.checker import linters
from deploy.checker.context import Context
from deploy.checker.layers import Finding, Layer, Severity, Skip
from deploy.checker.live_probe import HostLive, Response, SiteLive
from deploy.checker.registry import check

__all__ = [
    "Context",
    "Finding",
    "HostLive",
    "Layer",
    "Response",
    "Severity",
    "SiteLive",
    "Skip",
    "check",
    "linters",
]
