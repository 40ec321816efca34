"""What a restore stops so nothing of the app writes while a service's data is put back, and what it
starts again afterwards: the live web slot, every process instance that runs, every job timer (and a
job running now). Pure: from deploy.yaml and each host's probed state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from deploy.config.model import Config
from deploy.layout import job_unit, layout_for
from deploy.remote import jobs
from deploy.remote.facts import HostState, process_units


@dataclass(frozen=True)
class HostUnits:
    """One host's units: `stop` in this order (timers first: no job starts while the rest stops), then
    `start` afterwards (web first, timers last). A job interrupted is not started again: its timer is."""

    stop: list[str] = field(default_factory=list)
    start: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.stop)


def host_units(config: Config, state: HostState) -> HostUnits:
    """The app's units on one host that a restore stops and starts again."""
    layout = layout_for(config)
    timers = [
        f"{job_unit(config, name)}.timer"
        for name in jobs.jobs_on(config, state.host)
        if state.services.get(f"{job_unit(config, name)}.timer") == "active"
    ]
    job_services = [timer.removesuffix(".timer") + ".service" for timer in timers]
    processes = [unit for unit in process_units(config) if state.services.get(unit) == "active"]
    live = state.live_slot
    web = [layout.unit(live)] if live else []
    return HostUnits(stop=[*timers, *job_services, *web, *processes], start=[*web, *processes, *timers])


def app_units(config: Config, states: Mapping[str, HostState]) -> dict[str, HostUnits]:
    """{host: its units} of every host that runs something of the app."""
    out = {host: host_units(config, state) for host, state in states.items()}
    return {host: units for host, units in out.items() if units}


def describe(units: Mapping[str, HostUnits]) -> str:
    """One line: what stops on each host."""
    return "; ".join(f"{host} {', '.join(u.stop)}" for host, u in units.items())
