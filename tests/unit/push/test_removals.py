"""Processes a host no longer runs: removed from deploy.yaml (push, rollback and setup stop them, take them
out of the boot and remove their units) or no longer this host's in its live slot (setup)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.layout import layout_for
from deploy.push.plan_push import push_plan
from deploy.push.plan_rollback import rollback_plan
from deploy.push.plan_setup import setup_plan
from deploy.push.processes import unboot
from deploy.push.removals import removed
from deploy.remote.commands import SAFE_FS
from deploy.remote.facts import HostState
from deploy.remote.facts import probe_command as facts_probe
from deploy.render.render import render
from tests.unit.push.test_plans import SECRETS, build, lines
from tests.unit.push.test_processes_plan import YAML, hosts
from tests.unit.remote.test_jobs import run_probe

SAFE_FS_LINES = SAFE_FS.count(chr(10))

pytestmark = pytest.mark.unit

CONFIG = load_text(YAML)
#: deploy.yaml without the beat process (worker stays).
WITHOUT_BEAT = load_text(YAML[: YAML.index("  beat:\n")])
TEMPLATES = "/etc/systemd/system/shop-*@.service"
BOOT = "/etc/systemd/system/multi-user.target.wants/shop-*@*.service"
UNIT_DIR = "/etc/systemd/system"


def installed(extra: dict[str, str] | None = None, boot: tuple[str, ...] = ()) -> dict[str, HostState]:
    """web1 and web2 as `hosts()`, with the unit templates `CONFIG` renders installed (and `extra`)."""
    states = hosts()
    out = {}
    for host, state in states.items():
        rendered = render(CONFIG, state.facts)
        files = {
            f"{UNIT_DIR}/{key.removeprefix('systemd/')}": text
            for key, text in rendered.items()
            if key.startswith("systemd/shop-") and "@" in key
        }
        files.update(extra or {})
        globs = {TEMPLATES: sorted(files), BOOT: [f"{UNIT_DIR}/multi-user.target.wants/{u}" for u in boot]}
        out[host] = replace(state, files={**state.files, **files}, globs={**state.globs, **globs})
    return out


def push(config: object, states: dict[str, HostState]):  # type: ignore[no-untyped-def]
    rendered = {h: render(config, s.facts) for h, s in states.items()}  # type: ignore[arg-type]
    return push_plan(config, states, rendered, SECRETS, build(code=b"print('v2')\n"))  # type: ignore[arg-type]


def test_a_removed_process_is_found_by_its_template_and_another_apps_units_are_left_alone() -> None:
    other = {
        # The web template of an app named shop-admin: `shop-` + `admin` matches the glob.
        f"{UNIT_DIR}/shop-admin@.service": "# shop-admin@.service, rendered by deploy: the app's web slot\n",
        # A process template of the app shop-admin: it names its own unit.
        f"{UNIT_DIR}/shop-admin-mail@.service": (
            "# shop-admin-mail@.service, rendered by deploy: the process `mail` beside the web slots.\n"
        ),
    }
    states = installed(extra=other)
    assert removed(CONFIG, states["web1"]) == []
    assert removed(WITHOUT_BEAT, states["web1"]) == ["beat"]


def test_a_push_without_a_process_stops_and_removes_its_units_after_the_switch() -> None:
    plan = push(WITHOUT_BEAT, installed())
    for host in plan.hosts:
        assert not host.unchanged
        names = [s.name for s in host.finish]
        assert "drop processes" in names
        step = host.finish[names.index("drop processes")]
        assert lines([step]) == [
            "systemctl stop 'shop-beat@*.service'",
            # Stopped on purpose: an exit code on the way out does not leave a failed unit behind.
            "systemctl reset-failed 'shop-beat@*.service'",
            "sh -c 'cd \"$1\" && shift && for pattern; do rm -f -- $pattern; done' sh "
            "/etc/systemd/system/multi-user.target.wants 'shop-beat@*.service'",
            f"python3 -I -S -c '<program: {SAFE_FS_LINES} lines>' rm {UNIT_DIR} shop-beat@.service",
            "systemctl daemon-reload",
        ]
        # Nothing of it before the switch: a failed push leaves it running.
        assert not any("shop-beat@*" in line for line in lines((*host.prepare, *host.start, *host.switch)))
        assert not any("shop-beat@*" in line for line in lines((*host.abort, *host.revert)))
    # With beat in deploy.yaml: no removal.
    assert all("drop processes" not in [s.name for s in h.finish] for h in push(CONFIG, installed()).hosts)


def test_a_rollback_does_not_bring_back_a_process_deploy_yaml_no_longer_has() -> None:
    plan = rollback_plan(WITHOUT_BEAT, installed(), None)
    for host in plan.hosts:
        assert "drop processes" in [s.name for s in host.finish]
        assert not any("shop-beat@" in line for line in lines(host.start))


def test_setup_stops_instances_the_host_no_longer_runs_and_removed_processes() -> None:
    fewer = load_text(YAML.replace("instances: 2", "instances: 1"))
    boot = ("shop-worker@blue-1.service", "shop-worker@blue-2.service", "shop-beat@blue-1.service")
    states = installed(boot=boot)
    plan = setup_plan(fewer, states, {h: render(fewer, s.facts) for h, s in states.items()}, SECRETS)
    web1 = [s for s in plan.for_host("web1") if s.name == "drop processes"]
    web2 = [s for s in plan.for_host("web2") if s.name == "drop processes"]
    # web1 has no worker role: every worker instance goes; beat (a singleton on web1) stays.
    assert "stop shop-worker@blue-1.service, shop-worker@blue-2.service" in web1[0].actions[0].description
    # web2 runs one worker now: the second goes; beat runs on web1 only.
    text = web2[0].actions[0].description
    assert "shop-worker@blue-2.service" in text and "shop-beat@blue-1.service" in text
    assert "shop-worker@blue-1.service" not in text
    # Nothing to stop when the boot links match deploy.yaml.
    same = installed(boot=("shop-worker@blue-1.service", "shop-worker@blue-2.service"))
    rendered = {h: render(CONFIG, s.facts) for h, s in same.items()}
    assert not [
        s
        for s in setup_plan(CONFIG, same, rendered, SECRETS).for_host("web2")
        if s.name == "drop processes"
    ]


def test_the_probe_reads_the_process_templates_a_glob_matches(tmp_path: Path) -> None:
    (tmp_path / "shop-beat@.service").write_text(
        "# shop-beat@.service, rendered by deploy: the process `beat`\n"
    )
    (tmp_path / "shop@.service").write_text("web\n")
    request = json.loads(facts_probe(CONFIG).argv[-1])
    assert request["read_globs"] == [TEMPLATES] and BOOT in request["globs"]
    state = run_probe(tmp_path, CONFIG, read_globs=[f"{tmp_path}/shop-*@.service"])
    assert state.globs[f"{tmp_path}/shop-*@.service"] == [f"{tmp_path}/shop-beat@.service"]
    assert state.files[f"{tmp_path}/shop-beat@.service"].startswith("# shop-beat@.service, rendered")


def test_a_rollback_says_it_does_not_bring_back_a_process_the_release_ran() -> None:
    r1 = "20240102-000000-r1"
    ran = {
        h: replace(
            s,
            releases=tuple(
                replace(r, info={**(r.info or {}), "processes": ["beat", "worker"]}) if r.id == r1 else r
                for r in s.releases
            ),
        )
        for h, s in installed().items()
    }
    plan = rollback_plan(WITHOUT_BEAT, ran, None)
    assert plan.release == r1
    assert plan.notes == (
        f"release {r1} ran beat, which deploy.yaml no longer has: the rollback does not start it again "
        "(put it back in deploy.yaml to run it)",
    )
    assert rollback_plan(CONFIG, ran, None).notes == ()


def test_a_release_records_the_processes_it_runs() -> None:
    plan = push(CONFIG, installed())
    uploads = [
        a
        for s in plan.hosts[0].prepare
        for a in s.actions
        if getattr(a, "remote_path", "").endswith("release.json")
    ]
    assert json.loads(uploads[0].content)["processes"] == ["beat", "worker"]  # type: ignore[attr-defined]


def test_unboot_removes_the_links_each_pattern_matches_in_its_folder_only(tmp_path: Path) -> None:
    """The patterns are expanded by the shell in the wants folder (quoted, they would match nothing)."""
    wants = tmp_path / "multi-user.target.wants"
    wants.mkdir()
    for name in ("shop-worker@blue-1.service", "shop-worker@blue-2.service", "shop-worker@green-1.service"):
        (wants / name).symlink_to("/nonexistent")
    (tmp_path / "shop-worker@blue-9.service").write_text("")  # outside the folder: kept
    command = unboot(
        replace(layout_for(CONFIG), unit_dir=str(tmp_path)), ["shop-worker@blue-*.service", "shop-x@*"], "t"
    )
    subprocess.run(command.argv, check=True, timeout=30)
    assert sorted(p.name for p in wants.iterdir()) == ["shop-worker@green-1.service"]
    assert (tmp_path / "shop-worker@blue-9.service").exists()
