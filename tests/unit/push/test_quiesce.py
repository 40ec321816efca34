"""What a restore stops (and starts again afterwards): the live web slot, the processes' running
instances, the job timers and a job running now; nothing the host does not run."""

from __future__ import annotations

import pytest

from deploy.config.loader import load_text
from deploy.push.quiesce import HostUnits, app_units, describe
from deploy.remote.facts import HostState
from tests.unit.push.test_plans import YAML

pytestmark = pytest.mark.unit

CONFIG = load_text(
    YAML.replace("hosts: [web1, web2, web3]", "hosts: [web1, {address: web2, roles: [web, worker]}]")
    + """\
processes:
  worker: {command: rq worker default, instances: 2, hosts: worker}
jobs:
  cleanup: {command: flask purge, schedule: hourly}
  report: {command: python -m shop.report, schedule: daily, hosts: all}
"""
)


def served(host: str, services: dict[str, str]) -> HostState:
    return HostState(host, links={"live": "/srv/shop/slots/green.sock"}, services=services)


def test_every_running_part_of_the_app_stops_timers_first_and_starts_again_web_first() -> None:
    states = {
        "web1": served("web1", {"shop-job-cleanup.timer": "active", "shop-job-report.timer": "active"}),
        "web2": served(
            "web2",
            {
                "shop-job-report.timer": "active",
                "shop-worker@green-1.service": "active",
                "shop-worker@green-2.service": "active",
                # An old instance still in its warm shutdown: it writes too.
                "shop-worker@blue-1.service": "active",
                "shop-worker@blue-2.service": "inactive",
            },
        ),
    }
    units = app_units(CONFIG, states)
    assert units["web1"] == HostUnits(
        stop=[
            "shop-job-cleanup.timer",
            "shop-job-report.timer",
            "shop-job-cleanup.service",
            "shop-job-report.service",
            "shop@green.service",
        ],
        start=["shop@green.service", "shop-job-cleanup.timer", "shop-job-report.timer"],
    )
    assert units["web2"].stop == [
        "shop-job-report.timer",
        "shop-job-report.service",
        "shop@green.service",
        "shop-worker@blue-1.service",
        "shop-worker@green-1.service",
        "shop-worker@green-2.service",
    ]
    # A job interrupted is not started by hand: its timer runs it at its next time.
    assert units["web2"].start == [
        "shop@green.service",
        "shop-worker@blue-1.service",
        "shop-worker@green-1.service",
        "shop-worker@green-2.service",
        "shop-job-report.timer",
    ]
    assert describe({"web1": HostUnits(["a", "b"], ["b"])}) == "web1 a, b"


def test_a_disabled_timer_stays_disabled_and_a_host_with_nothing_running_is_left_alone() -> None:
    states = {
        "web1": HostState("web1", services={"shop-job-cleanup.timer": "inactive"}),
        "web2": served("web2", {"shop-worker@green-1.service": "failed"}),
    }
    units = app_units(CONFIG, states)
    assert list(units) == ["web2"]
    assert units["web2"] == HostUnits(stop=["shop@green.service"], start=["shop@green.service"])
