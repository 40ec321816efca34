"""Scheduled jobs in setup and push plans: install, update and enable the timers of the jobs a host runs,
disable and remove those deploy.yaml no longer has. Pure: from config, host state and rendered files.

The units run the job in the release `current` points at, so a push changes them after its switch (the
finish phase) and a rollback leaves them as they are: either way a job runs the release being served.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from deploy.config.model import Config
from deploy.layout import job_files, job_unit, job_unit_glob, layout_for
from deploy.plan import Action, Step, Upload
from deploy.remote import commands as cmd
from deploy.remote import jobs
from deploy.remote.facts import HostState


def job_steps(config: Config, state: HostState, rendered: Mapping[str, str]) -> tuple[Step, ...]:
    """What makes the host's job units match deploy.yaml; () when they already do."""
    wanted = jobs.jobs_on(config, state.host)
    uploads: list[Action] = []
    new_schedule: list[str] = []
    for name in wanted:
        for path, key in job_files(config, name):
            if state.files.get(path) == rendered[key]:
                continue
            kind = "timer" if key.endswith(".timer") else "service"
            uploads.append(
                Upload(path, rendered[key].encode(), 0o644, "root", "root", description=f"job {name}: {kind}")
            )
            if key.endswith(".timer") and state.files.get(path) is not None:
                new_schedule.append(name)
    keep = {path for name in wanted for path, _ in job_files(config, name)}
    stale = [p for p in state.globs.get(job_unit_glob(config), []) if p not in keep]
    stale_timers = [PurePosixPath(p).name for p in stale if p.endswith(".timer")]
    idle = [n for n in wanted if state.services.get(f"{job_unit(config, n)}.timer") != "active"]
    actions: list[Action] = []
    if stale_timers:
        actions.append(jobs.disable_timers(stale_timers))
    if stale:
        actions.append(
            cmd.remove_paths(
                layout_for(config).unit_dir,
                [PurePosixPath(p).name for p in stale],
                f"remove the units of jobs deploy.yaml no longer has ({len(stale)} file(s))",
            )
        )
    actions += uploads
    if stale or uploads:
        actions.append(cmd.daemon_reload())
    if new_schedule:
        actions.append(jobs.restart_timers(config, new_schedule))
    if idle:
        actions.append(jobs.enable_timers(config, idle))
    return (Step("jobs", state.host, tuple(actions)),) if actions else ()
