"""Checks of the live deployment: the hosts over SSH and the site over HTTPS (--live -e ENV)."""

from __future__ import annotations
