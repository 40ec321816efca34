"""Whole steps of a rollback, a revert and a clean-up, compared as data (benchmarks/mutation.py: plans).

Each test writes down every action a host gets (command, arguments, description, sudo/check flags,
upload content, mode and owner) in order, and compares the plan with it as a whole, so that an
argument changed anywhere in `deploy.push.plan_*` makes it fail. The commands themselves are built by
`deploy.remote.commands` (tested apart, and run on sandbox hosts by tests/hosts).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from deploy.config.model import Config
from deploy.layout import shared_file_dirs, shared_files
from deploy.plan import Command, Step, Upload
from deploy.push.artifact import Artifact, FileEntry, requirements_hash, tarball
from deploy.push.plan_push import host_push
from deploy.push.plan_rollback import host_rollback, rollback_plan
from deploy.push.plan_setup import config_steps, env_file_content, setup_steps
from deploy.push.plan_switch import _finish_steps, _revert_steps, prune_list, rollback_target
from deploy.push.plan_types import HostPush, PlanError, platform_tag
from deploy.remote import bytecode
from deploy.remote import commands as cmd
from deploy.remote.facts import HostState, ReleaseInfo
from tests.unit.push.test_plans import (
    CONFIG,
    LAYOUT,
    SECRETS,
    artifact,
    build,
    json_fingerprint,
    rendered_map,
    served_state,
    set_up,
    states,
)

pytestmark = pytest.mark.unit

R0, R1, R2 = "20240101-000000-r0", "20240102-000000-r1", "20240103-000000-r2"
INFO: dict[str, object] = {"id": "r"}
HEALTH = (CONFIG.primary_domain, CONFIG.app.health, CONFIG.push.health_timeout)


def _web1(**changes: object) -> HostState:
    return replace(served_state()["web1"], **changes)  # type: ignore[arg-type]


def _start(slot: str, release: str, pythonpath: str | None = None) -> tuple[Step, ...]:
    env = f"# Written by deploy when this slot starts a release.\nDEPLOY_RELEASE={release}\n"
    env += "DEPLOY_ENVIRONMENT=default\n"
    if pythonpath:
        env += f"PYTHONPATH={pythonpath}\n"
    return (
        Step(
            "start",
            "web1",
            (
                cmd.cancel_drain(LAYOUT, slot),
                cmd.symlink(
                    f"/srv/shop/releases/{release}",
                    f"/srv/shop/slots/{slot}",
                    f"slot {slot} -> release {release}",
                ),
                Upload(
                    f"/srv/shop/slots/{slot}.env",
                    env.encode(),
                    0o644,
                    "root",
                    "root",
                    description=f"DEPLOY_RELEASE={release} for slot {slot}",
                ),
                cmd.systemctl(
                    "restart",
                    "--no-block",
                    f"shop@{slot}.service",
                    description=f"start shop@{slot}.service (release {release})",
                ),
            ),
        ),
        Step("health", "web1", (cmd.health_probe(LAYOUT, slot, *HEALTH, release),)),
    )


def _switch(slot: str, release: str, marker: Command | Upload) -> Step:
    return Step(
        "switch",
        "web1",
        (
            cmd.symlink(
                f"/run/shop/{slot}.sock",
                LAYOUT.paths.upstream_socket,
                f"new connections go to slot {slot} (atomic rename of live.sock)",
            ),
            cmd.symlink(f"/srv/shop/releases/{release}", "/srv/shop/current", f"current -> {release}"),
            marker,
            *cmd.start_at_boot(LAYOUT, slot),
        ),
    )


def _revert(old: str, new: str, previous: str) -> tuple[Step, ...]:
    return (
        Step(
            "revert",
            "web1",
            (
                cmd.cancel_drain(LAYOUT, old),
                cmd.systemctl(
                    "start", f"shop@{old}.service", description=f"make sure shop@{old}.service runs"
                ),
                cmd.health_probe(LAYOUT, old, *HEALTH, previous),
                cmd.symlink(
                    f"/run/shop/{old}.sock",
                    LAYOUT.paths.upstream_socket,
                    f"new connections go back to slot {old}",
                ),
                cmd.symlink(f"/srv/shop/releases/{previous}", "/srv/shop/current", f"current -> {previous}"),
                *cmd.start_at_boot(LAYOUT, old),
                cmd.stop_after_drain(LAYOUT, new, 1.0),
            ),
        ),
    )


def _abort(slot: str) -> tuple[Step, ...]:
    return (Step("abort", "web1", (cmd.systemctl("stop", f"shop@{slot}.service", check=False),)),)


def test_the_paths_these_tests_write_down_are_the_layouts() -> None:
    assert LAYOUT.release(R1) == f"/srv/shop/releases/{R1}"
    assert (LAYOUT.slot("green"), LAYOUT.slot_env("green")) == (
        "/srv/shop/slots/green",
        "/srv/shop/slots/green.env",
    )
    assert (LAYOUT.paths.current, LAYOUT.paths.slot_socket("blue")) == (
        "/srv/shop/current",
        "/run/shop/blue.sock",
    )
    assert LAYOUT.unit("green") == "shop@green.service"
    stop = Command(
        ("systemctl", "stop", "shop@green.service"), "systemctl stop shop@green.service", True, False
    )
    assert cmd.systemctl("stop", "shop@green.service", check=False) == stop


def test_a_rollback_to_the_release_that_served_before_is_a_whole_blue_green_switch() -> None:
    """web1 serves r2 from blue; r1 (a src/ layout) served before it; r0 never finished."""
    releases = (
        ReleaseInfo(R0, None),
        ReleaseInfo(R1, {"id": "r1", "python_root": "src"}, True),
        ReleaseInfo(R2, {"id": "r2"}, True, before=R1),
    )
    host = _web1(releases=releases)
    assert host_rollback(CONFIG, host, None) == HostPush(
        host="web1",
        release=R1,
        previous=R2,
        old_slot="blue",
        new_slot="green",
        start=_start("green", R1, f"/srv/shop/releases/{R1}/src"),
        # r1 served before: its record of what it replaced then is kept (touch, not rewritten).
        switch=(
            _switch(
                "green",
                R1,
                Command(("touch", f"/srv/shop/releases/{R1}/.deploy/served"), "mark as served", sudo=True),
            ),
        ),
        # r0 is unfinished and neither current, target nor in a slot: the clean-up removes it.
        finish=(
            Step("finish", "web1", (cmd.stop_after_drain(LAYOUT, "blue", 1.0), cmd.prune(LAYOUT, [R0]))),
        ),
        abort=_abort("green"),
        revert=_revert("blue", "green", R2),
        diagnose=cmd.slot_log(LAYOUT, "green"),
    )


def test_a_rollback_to_a_named_release_that_never_served_records_what_it_replaces() -> None:
    """Named explicitly, a release that never served (it failed its health gate on another push)
    gets a served marker naming the current release: a rollback from it comes back here."""
    releases = (ReleaseInfo(R1, {"id": "r1", "python_root": 7}, False), ReleaseInfo(R2, {"id": "r2"}, True))
    host = _web1(releases=releases, links={**_web1().links, "live": "/run/shop/green.sock", "green": None})
    got = host_rollback(CONFIG, host, R1)
    marker = Upload(
        f"/srv/shop/releases/{R1}/.deploy/served",
        f"{R2}\n".encode(),
        0o644,
        "root",
        "root",
        description=f"mark the release as served (after {R2})",
    )
    assert got == HostPush(
        host="web1",
        release=R1,
        previous=R2,
        old_slot="green",
        new_slot="blue",
        start=_start("blue", R1),  # a python_root that is not a path is no PYTHONPATH
        switch=(_switch("blue", R1, marker),),
        finish=(Step("finish", "web1", (cmd.stop_after_drain(LAYOUT, "green", 1.0),)),),
        abort=_abort("blue"),
        revert=_revert("green", "blue", R2),
        diagnose=cmd.slot_log(LAYOUT, "blue"),
    )
    plan = rollback_plan(CONFIG, {"web1": host}, R1)
    assert (plan.action, plan.release, plan.hosts, plan.release_steps) == ("rollback", R1, (got,), ())


def test_a_named_release_that_was_never_current_and_has_no_info_gets_no_pythonpath() -> None:
    host = _web1(releases=(ReleaseInfo(R1, {}, True), ReleaseInfo(R2, {"id": "r2"}, True)))
    assert host_rollback(CONFIG, host, R1).start == _start("green", R1)


def test_a_rollback_to_the_current_release_changes_nothing() -> None:
    host = _web1()
    assert host_rollback(CONFIG, host, R2) == HostPush("web1", R2, R2, "blue", "blue", unchanged=True)
    assert rollback_plan(CONFIG, {"web1": host}, R2).changed_hosts == ()
    # Nothing serves yet (no live slot): the unchanged host names blue, the first slot.
    idle = _web1(links={"current": f"/srv/shop/releases/{R2}"})
    assert host_rollback(CONFIG, idle, R2) == HostPush("web1", R2, R2, None, "blue", unchanged=True)


def test_no_earlier_release_is_refused_with_the_releases_the_host_has() -> None:
    only = _web1(releases=(ReleaseInfo(R0, None), ReleaseInfo(R2, {"id": "r2"}, True)))
    with pytest.raises(PlanError) as raised:
        host_rollback(CONFIG, only, None)
    assert str(raised.value) == f"web1: no earlier release to roll back to (releases: {R2})"
    empty = _web1(releases=(), links={})
    with pytest.raises(PlanError) as raised:
        rollback_plan(CONFIG, {"web1": empty}, None)
    assert str(raised.value) == "web1: no earlier release to roll back to (releases: none)"


def test_a_named_release_that_is_missing_or_unfinished_is_refused() -> None:
    host = _web1()
    for name in ("nope", R0):
        with pytest.raises(PlanError) as raised:
            host_rollback(CONFIG, host, name)
        assert str(raised.value) == f"web1: no complete release {name!r}; releases there: {R1}, {R2}"
    with pytest.raises(PlanError) as raised:
        host_rollback(CONFIG, _web1(releases=()), "nope")
    assert str(raised.value) == "web1: no complete release 'nope'; releases there: none"


def test_a_rollback_refuses_a_host_that_was_not_set_up() -> None:
    with pytest.raises(PlanError, match=r"^web1 is not set up \(the user shop missing\)"):
        host_rollback(CONFIG, _web1(user_exists=False), None)


def test_a_rollback_plan_of_no_host_names_no_release() -> None:
    assert rollback_plan(CONFIG, {}, None).release == ""
    assert rollback_plan(CONFIG, {}, R1).release == R1


def test_a_rollback_plan_names_the_first_hosts_target() -> None:
    plan = rollback_plan(CONFIG, {"web1": _web1(), "web2": replace(_web1(), host="web2")}, None)
    assert plan.release == R1 and [h.host for h in plan.hosts] == ["web1", "web2"]


# --- revert ---------------------------------------------------------------------------------------


def test_a_revert_with_an_earlier_release_starts_and_probes_the_old_slot_then_switches_back() -> None:
    steps = _revert_steps(CONFIG, LAYOUT, HostState("web1"), "blue", R1, "green")
    assert steps == _revert("blue", "green", R1)


@pytest.mark.parametrize(("old_slot", "previous"), [(None, None), (None, R1), ("blue", None)])
def test_a_revert_of_a_first_release_stops_serving_it(old_slot: str | None, previous: str | None) -> None:
    assert _revert_steps(CONFIG, LAYOUT, HostState("web1"), old_slot, previous, "green") == (
        Step(
            "revert",
            "web1",
            (
                cmd.remove_tree(LAYOUT.paths.upstream_socket, "remove live.sock (no earlier release)"),
                cmd.remove_tree("/srv/shop/current", "remove current (no earlier release)"),
                cmd.systemctl("stop", "shop@green.service", check=False),
                cmd.systemctl("disable", "--quiet", "--no-reload", "shop@green.service", check=False),
            ),
        ),
    )


# --- clean-up -------------------------------------------------------------------------------------


def _config(keep: int) -> Config:
    return CONFIG.model_copy(update={"push": CONFIG.push.model_copy(update={"keep_releases": keep})})


def test_the_clean_up_stops_the_old_slot_after_the_drain_then_prunes() -> None:
    releases = tuple(ReleaseInfo(f"2024010{i}-000000-r{i}", {"id": i}, True) for i in range(1, 6))
    host = _web1(releases=releases, links={"current": "/srv/shop/releases/20240105-000000-r5"})
    steps = _finish_steps(_config(2), LAYOUT, host, "blue", None)
    assert steps == (
        Step(
            "finish",
            "web1",
            (
                cmd.stop_after_drain(LAYOUT, "blue", 1.0),
                cmd.prune(LAYOUT, ["20240101-000000-r1", "20240102-000000-r2", "20240103-000000-r3"]),
            ),
        ),
    )
    # The new release counts among the two kept (r6, r5); r4 stays as the rollback target.
    assert _finish_steps(_config(2), LAYOUT, host, None, "20240106-000000-r6") == (
        Step(
            "finish",
            "web1",
            (cmd.prune(LAYOUT, [f"2024010{i}-000000-r{i}" for i in range(1, 4)]),),
        ),
    )


def test_nothing_to_stop_and_nothing_to_prune_is_no_clean_up_step() -> None:
    host = _web1(releases=(ReleaseInfo(R1, {"id": "r1"}, True),), links={"current": LAYOUT.release(R1)})
    assert _finish_steps(CONFIG, LAYOUT, host, None, None) == ()
    assert _finish_steps(CONFIG, LAYOUT, host, "green", None) == (
        Step("finish", "web1", (cmd.stop_after_drain(LAYOUT, "green", 1.0),)),
    )


# --- push -----------------------------------------------------------------------------------------

NEW = "20250101-000000-aaaaaaa"
TARGET = f"/srv/shop/releases/{NEW}"
WHEEL = "flask-3.1.3-py3-none-any.whl"


def _req_hash() -> str:
    return requirements_hash(artifact().requirements, "3.11.2", "cp311-glibc2.36-x86_64")


def _release_json(upload: Command | Upload, fingerprint_of: HostPush) -> None:
    """release.json names what was pushed, by whom, with which venv (its fingerprint: see below)."""
    assert isinstance(upload, Upload)
    info = json.loads(upload.content)
    assert info == {
        "processes": [],
        "python_root": None,
        "id": NEW,
        "commit": "a" * 40,
        "dirty": False,
        "requirements": _req_hash(),
        "fingerprint": json_fingerprint(fingerprint_of),
        "by": "ann@laptop",
        "environment": "production",
    }
    assert upload.content == (json.dumps(info, indent=1, sort_keys=True) + "\n").encode()


def _tail(venv_actions: list[Command | Upload], reused: bool) -> list[Command | Upload]:
    """From the shared folder's link to release.json (release.json itself checked apart)."""
    venv = f"/srv/shop/venvs/{_req_hash()}"
    manifest = (json.dumps(artifact().manifest, sort_keys=True) + "\n").encode()
    return [
        cmd.remove_paths(TARGET, ["instance"], "no copy of the shared folders of its own"),
        cmd.make_dir("/srv/shop/shared/instance", "shop", "shop", 0o750),
        cmd.symlink(
            "/srv/shop/shared/instance",
            f"{TARGET}/instance",
            "instance -> shared/instance (kept across releases)",
        ),
        *venv_actions,
        cmd.symlink(
            venv, f"{TARGET}/.venv", f".venv -> venvs/{_req_hash()}" + (" (reused)" if reused else " (new)")
        ),
        cmd.make_dir(f"{TARGET}/.deploy", "root", "shop", 0o750),
        Upload(
            f"{TARGET}/.deploy/manifest.json", manifest, 0o640, "root", "shop", description="file manifest"
        ),
    ]


def _gunicorn(rendered: dict[str, str]) -> Upload:
    conf = rendered["gunicorn.conf.py"].encode()
    return Upload(f"{TARGET}/gunicorn.conf.py", conf, 0o640, "root", "shop", description="gunicorn.conf.py")


def _served_upload(replaced: str | None) -> Upload:
    return Upload(
        f"{TARGET}/.deploy/served",
        f"{replaced}\n".encode() if replaced else b"",
        0o644,
        "root",
        "root",
        description=f"mark the release as served (after {replaced or 'no release'})",
    )


def test_a_first_push_is_every_step_of_a_new_release_its_venv_and_a_switch_to_blue() -> None:
    hosts = states()
    rendered = rendered_map(hosts)["web1"]
    got = host_push(CONFIG, hosts["web1"], rendered, SECRETS, build())
    a = artifact()
    venv = f"/srv/shop/venvs/{_req_hash()}"
    incoming = f"/srv/shop/wheels/.incoming-{NEW}.tar"
    wheels = tarball({WHEEL: FileEntry(b"wheel")}, [WHEEL])
    names = ["requirements.txt", "shop/__init__.py"]
    expected = [
        cmd.make_dir(TARGET, "root", "root", 0o755),
        Upload(
            f"{TARGET}/.deploy-files.tar",
            tarball(a.files, names, a.timestamp, group="shop"),
            0o600,
            "root",
            "root",
            description="2 changed file(s)",
        ),
        cmd.extract_tar(f"{TARGET}/.deploy-files.tar", TARGET, "unpack 2 file(s)"),
        _gunicorn(rendered),
        *_tail(
            [
                Upload(incoming, wheels, 0o600, "root", "root", description="1 wheel(s)"),
                cmd.extract_tar(incoming, "/srv/shop/wheels", "unpack 1 wheel(s)"),
                cmd.new_venv(venv),
                cmd.pip_install(
                    venv, hosts["web1"].pip_wheel or "", "/srv/shop/wheels", f"{TARGET}/requirements.txt"
                ),
                cmd.mark_complete(venv),
            ],
            reused=False,
        ),
    ]
    (upload,) = got.prepare
    assert (upload.name, upload.host, list(upload.actions[:-1])) == ("upload", "web1", expected)
    _release_json(upload.actions[-1], got)
    assert replace(got, prepare=()) == HostPush(
        host="web1",
        release=NEW,
        previous=None,
        old_slot=None,
        new_slot="blue",
        start=_start("blue", NEW),
        switch=(_switch("blue", NEW, _served_upload(None)),),
        # nothing to stop, nothing to prune; the new venv's bytecode compiled in the background
        finish=(Step("bytecode", "web1", (bytecode.compile_later(LAYOUT, _req_hash()),)),),
        abort=_abort("blue"),
        revert=_revert_steps(CONFIG, LAYOUT, HostState("web1"), None, None, "blue"),
        diagnose=cmd.slot_log(LAYOUT, "blue"),
        files_sent=2,
        files_deleted=0,
        wheels_sent=1,
        venv_reused=False,
    )
    # A host that has the wheel already gets none; the venv is built all the same.
    has_wheel = host_push(CONFIG, replace(hosts["web1"], wheels=(WHEEL,)), rendered, SECRETS, build())
    upload_actions = has_wheel.prepare[0].actions
    assert has_wheel.wheels_sent == 0 and cmd.new_venv(venv) in upload_actions
    assert not any(isinstance(x, Upload) and x.remote_path == incoming for x in upload_actions)


def test_a_code_push_links_the_previous_release_sends_the_change_and_reuses_the_venv() -> None:
    hosts = served_state()
    rendered = rendered_map(hosts)["web1"]
    new = artifact(b"print('v2')\n")
    got = host_push(CONFIG, hosts["web1"], rendered, SECRETS, build(code=b"print('v2')\n"))
    expected = [
        cmd.make_dir(TARGET, "root", "root", 0o755),
        cmd.link_release_files(f"/srv/shop/releases/{R2}", TARGET),
        cmd.remove_paths(
            TARGET, [".deploy", ".venv", "instance"], "drop 0 deleted file(s), old links and metadata"
        ),
        cmd.prune_empty_dirs(TARGET),
        Upload(
            f"{TARGET}/.deploy-files.tar",
            tarball(new.files, ["shop/__init__.py"], new.timestamp, group="shop"),
            0o600,
            "root",
            "root",
            description="1 changed file(s)",
        ),
        cmd.extract_tar(f"{TARGET}/.deploy-files.tar", TARGET, "unpack 1 file(s)"),
        _gunicorn(rendered),
        *_tail([], reused=True),
    ]
    manifest = expected[-1]
    assert isinstance(manifest, Upload)
    expected[-1] = replace(manifest, content=(json.dumps(new.manifest, sort_keys=True) + "\n").encode())
    (upload,) = got.prepare
    assert list(upload.actions[:-1]) == expected
    assert replace(got, prepare=()) == HostPush(
        host="web1",
        release=NEW,
        previous=R2,
        old_slot="blue",
        new_slot="green",
        start=_start("green", NEW),
        switch=(_switch("green", NEW, _served_upload(R2)),),
        finish=(
            Step("finish", "web1", (cmd.stop_after_drain(LAYOUT, "blue", 1.0), cmd.prune(LAYOUT, [R0]))),
        ),
        abort=_abort("green"),
        revert=_revert("blue", "green", R2),
        diagnose=cmd.slot_log(LAYOUT, "green"),
        files_sent=1,
        files_deleted=0,
        wheels_sent=0,
        venv_reused=True,
    )


def test_a_file_deleted_since_the_previous_release_is_dropped_with_the_old_links() -> None:
    hosts = served_state()
    old: dict[str, list[object]] = {**artifact().manifest, "shop/old.py": ["0" * 64, "644"]}
    host = replace(hosts["web1"], manifest=old)
    got = host_push(CONFIG, host, rendered_map(hosts)["web1"], SECRETS, build())
    assert got.prepare[0].actions[2] == cmd.remove_paths(
        TARGET,
        [".deploy", ".venv", "instance", "shop/old.py"],
        "drop 1 deleted file(s), old links and metadata",
    )
    assert (got.files_sent, got.files_deleted) == (0, 1)
    assert not any(
        isinstance(x, Upload) and x.remote_path.endswith(".deploy-files.tar") for x in got.prepare[0].actions
    )


def test_a_release_id_that_exists_is_refused() -> None:
    hosts = served_state()
    with pytest.raises(PlanError) as raised:
        host_push(CONFIG, hosts["web1"], rendered_map(hosts)["web1"], SECRETS, build(release=R1))
    assert str(raised.value) == f"web1: a release named {R1} already exists; push again in a second"


def test_the_fingerprint_changes_with_the_code_the_venv_the_gunicorn_conf_and_the_shared_paths() -> None:
    hosts = served_state()
    rendered = rendered_map(hosts)["web1"]

    def fingerprint(
        config: Config = CONFIG, code: bytes = b"x", conf: str | None = None, python: str = "3.11.2"
    ) -> str:
        host = replace(hosts["web1"], python_version=python)
        mine = {**rendered, "gunicorn.conf.py": conf} if conf else rendered
        return json_fingerprint(host_push(config, host, mine, SECRETS, build(code=code)))

    base = fingerprint()
    shared_file = CONFIG.model_copy(
        update={"app": CONFIG.app.model_copy(update={"shared_files": ["db.sqlite"]})}
    )
    others = [
        fingerprint(code=b"y"),
        fingerprint(conf="bind = 'x'\n"),
        fingerprint(python="3.11.3"),
        fingerprint(CONFIG.model_copy(update={"app": CONFIG.app.model_copy(update={"shared": ["data"]})})),
        fingerprint(shared_file),
    ]
    assert len({base, *others}) == 6 and all(len(f) == 16 for f in others)


# --- setup ----------------------------------------------------------------------------------------

DIRS = [
    ("/srv/shop", "root", "root", 0o755),
    ("/srv/shop/releases", "root", "root", 0o755),
    ("/srv/shop/slots", "root", "root", 0o755),
    ("/srv/shop/venvs", "root", "root", 0o755),
    ("/srv/shop/wheels", "root", "root", 0o755),
    ("/srv/shop/.deploy", "root", "root", 0o700),
    ("/srv/shop/shared", "root", "shop", 0o750),
    ("/etc/shop", "root", "root", 0o755),
    ("/srv/shop/shared/instance", "shop", "shop", 0o750),
]
NGINX_FILES = [
    ("/etc/nginx/sites-available/shop.conf", "nginx/shop.conf"),
    ("/etc/nginx/snippets/shop-security-headers.conf", "nginx/snippets/shop-security-headers.conf"),
    ("/etc/nginx/snippets/shop-proxy.conf", "nginx/snippets/shop-proxy.conf"),
    ("/etc/nginx/conf.d/deploy-catch-all.conf", "nginx/conf.d/deploy-catch-all.conf"),
]
SITE_LINK = ("/etc/nginx/sites-available/shop.conf", "/etc/nginx/sites-enabled/shop.conf")


def _env_step(secrets: dict[str, str] = SECRETS) -> Step:
    env = env_file_content(secrets)
    upload = Upload(
        "/etc/shop/env",
        env,
        0o600,
        "root",
        "root",
        sensitive=True,
        description=f"secrets ({len(secrets)} keys)",
    )
    return Step("env file", "web1", (upload,))


def _unit_step(rendered: dict[str, str]) -> Step:
    unit = rendered["systemd/shop@.service"].encode()
    upload = Upload(
        "/etc/systemd/system/shop@.service", unit, 0o644, "root", "root", description="systemd unit template"
    )
    return Step("systemd unit", "web1", (upload, cmd.daemon_reload()))


def test_setup_of_a_bare_host_is_every_step_in_order() -> None:
    rendered = rendered_map(states())["web1"]
    bare = HostState("web1")
    # Without a certificate on the host, the HTTPS catch-all is not rendered, and not written.
    assert "nginx/conf.d/deploy-catch-all-tls.conf" not in rendered
    assert setup_steps(CONFIG, bare, rendered, SECRETS, "c0ffee") == (
        Step("packages", "web1", (cmd.apt_install(["python3", "python3-venv", "nginx-light"]),)),
        Step(
            "user",
            "web1",
            (
                cmd.create_system_user("shop", "/srv/shop"),
                Command(
                    ("usermod", "-a", "-G", "shop", "www-data"),
                    "let Nginx (www-data) reach the app's sockets",
                    sudo=True,
                ),
            ),
        ),
        Step("directories", "web1", tuple(cmd.make_dir(*d) for d in DIRS)),
        Step(
            "project",
            "web1",
            (Upload("/srv/shop/.deploy/project", b"c0ffee\n", 0o644, "root", "root", description="project"),),
        ),
        _env_step(),
        _unit_step(rendered),
        Step(
            "nginx",
            "web1",
            cmd.nginx_change(
                [(path, rendered[key].encode(), key) for path, key in NGINX_FILES], [SITE_LINK], []
            ),
        ),
    )


def test_setup_of_a_prepared_host_is_nothing_and_each_difference_is_its_own_step() -> None:
    host = set_up(states())["web1"]
    rendered = rendered_map(states())["web1"]
    assert setup_steps(CONFIG, host, rendered, SECRETS) == ()
    # Debian's nginx (not -light), or an nginx found without a package: nothing to install.
    assert (
        setup_steps(
            CONFIG,
            replace(host, packages={"python3": True, "python3-venv": True, "nginx": True}),
            rendered,
            SECRETS,
        )
        == ()
    )
    no_package = replace(host, packages={"python3": True, "python3-venv": True})
    assert setup_steps(CONFIG, no_package, rendered, SECRETS) == ()
    unknown = replace(no_package, nginx_version=None)
    assert setup_steps(CONFIG, unknown, rendered, SECRETS) == (
        Step("packages", "web1", (cmd.apt_install(["nginx-light"]),)),
    )
    no_venv = replace(host, packages={"python3": True, "nginx-light": True})
    assert setup_steps(CONFIG, no_venv, rendered, SECRETS)[0].actions == (cmd.apt_install(["python3-venv"]),)
    # One directory with the wrong mode: only it is made again.
    owners = {
        **host.owners,
        "/srv/shop/slots": {"owner": "root", "group": "root", "mode": 0o775, "kind": "dir"},
    }
    assert setup_steps(CONFIG, replace(host, owners=owners), rendered, SECRETS) == (
        Step("directories", "web1", (cmd.make_dir("/srv/shop/slots", "root", "root", 0o755),)),
    )
    # The Debian default site is removed, and an Nginx that fails its test is repaired, in one change.
    default = replace(host, links={**host.links, "debian_default": "/etc/nginx/sites-available/default"})
    assert setup_steps(CONFIG, default, rendered, SECRETS) == (
        Step("nginx", "web1", cmd.nginx_change([], [], ["/etc/nginx/sites-enabled/default"])),
    )
    assert setup_steps(CONFIG, replace(host, nginx_ok=False), rendered, SECRETS) == (
        Step("nginx", "web1", cmd.nginx_change([], [], [])),
    )
    assert setup_steps(CONFIG, replace(host, nginx_ok=True), rendered, SECRETS) == ()


def test_shared_files_are_made_empty_for_the_app_user_only_where_they_differ() -> None:
    config = CONFIG.model_copy(
        update={"app": CONFIG.app.model_copy(update={"shared_files": ["db/app.sqlite"]})}
    )
    host = set_up(states())["web1"]
    rendered = rendered_map(states())["web1"]
    made = [cmd.make_dir(*d) for d in shared_file_dirs(config)]
    path = "/srv/shop/shared/.files/db/app.sqlite"
    assert [p for p, _ in shared_files(config)] == [path]
    steps = setup_steps(config, host, rendered, SECRETS)
    assert steps == (
        Step("directories", "web1", tuple(made)),
        Step(
            "shared files",
            "web1",
            (cmd.make_file(path, "shop", "shop", 0o600, f"shared file {path} (empty if new)"),),
        ),
    )
    owners = {
        p: {"owner": o, "group": g, "mode": m, "kind": "dir"} for p, o, g, m in shared_file_dirs(config)
    }
    owners[path] = {"owner": "shop", "group": "shop", "mode": 0o600, "kind": "file"}
    assert setup_steps(config, replace(host, owners={**host.owners, **owners}), rendered, SECRETS) == ()


@pytest.mark.parametrize(
    "env",
    [
        {"owner": "shop", "group": "root", "mode": 0o600},
        {"owner": "root", "group": "shop", "mode": 0o600},
        {"owner": "root", "group": "root", "mode": 0o640},
        None,
    ],
)
def test_an_env_file_not_root_root_0600_is_written_again(env: dict[str, object] | None) -> None:
    host = set_up(states())["web1"]
    owners = {k: v for k, v in host.owners.items() if k != "/etc/shop/env"}
    if env is not None:
        owners["/etc/shop/env"] = {**env, "kind": "file"}
    rendered = rendered_map(states())["web1"]
    assert config_steps(CONFIG, replace(host, owners=owners), rendered, SECRETS) == (_env_step(),)


def test_changed_secrets_a_changed_unit_and_a_changed_site_are_each_written() -> None:
    host = set_up(states())["web1"]
    rendered = rendered_map(states())["web1"]
    assert config_steps(CONFIG, host, rendered, {"SECRET_KEY": "new"}) == (_env_step({"SECRET_KEY": "new"}),)
    files = {**host.files, "/etc/systemd/system/shop@.service": "old"}
    assert config_steps(CONFIG, replace(host, files=files), rendered, SECRETS) == (_unit_step(rendered),)
    site = "/etc/nginx/snippets/shop-proxy.conf"
    files = {**host.files, site: "old"}
    assert config_steps(CONFIG, replace(host, files=files), rendered, SECRETS) == (
        Step(
            "nginx",
            "web1",
            cmd.nginx_change(
                [
                    (
                        site,
                        rendered["nginx/snippets/shop-proxy.conf"].encode(),
                        "nginx/snippets/shop-proxy.conf",
                    )
                ]
            ),
        ),
    )
    # The site not enabled: only the link.
    links = {**host.links, "enabled": None}
    assert config_steps(CONFIG, replace(host, links=links), rendered, SECRETS) == (
        Step("nginx", "web1", cmd.nginx_change([], [SITE_LINK], [])),
    )


def test_the_project_is_recorded_once() -> None:
    host = set_up(states())["web1"]
    rendered = rendered_map(states())["web1"]
    record = Step(
        "project",
        "web1",
        (Upload("/srv/shop/.deploy/project", b"abc\n", 0o644, "root", "root", description="project"),),
    )
    assert config_steps(CONFIG, host, rendered, SECRETS, "abc") == (record,)
    blank = replace(host, files={**host.files, "/srv/shop/.deploy/project": " \n"})
    assert config_steps(CONFIG, blank, rendered, SECRETS, "abc") == (record,)
    recorded = replace(host, files={**host.files, "/srv/shop/.deploy/project": "abc\n"})
    assert config_steps(CONFIG, recorded, rendered, SECRETS, "abc") == ()
    assert config_steps(CONFIG, host, rendered, SECRETS, None) == ()


# --- rollback target and pruning: the cases the first mutation run found untested ------------------


def test_with_two_kept_the_newest_complete_releases_stay_even_when_they_never_served() -> None:
    """After a rollback to r3, r4 and r5 (the newest) are kept with keep_releases: 2, though neither
    is current, the rollback target or in a slot."""
    releases = tuple(ReleaseInfo(f"2024010{i}-000000-r{i}", {"id": i}, i <= 3) for i in range(1, 6))
    host = _web1(releases=releases, links={"current": "/srv/shop/releases/20240103-000000-r3"})
    assert prune_list(_config(2), host, None) == ["20240101-000000-r1"]


def test_a_replaced_release_that_is_unfinished_is_followed_to_what_it_replaced() -> None:
    """r5 replaced r4, which never finished and had replaced r2: the target is r2, not r3 (the newest
    earlier release that served)."""
    releases = (
        ReleaseInfo("r1", INFO, served=True),
        ReleaseInfo("r2", INFO, served=True),
        ReleaseInfo("r3", INFO, served=True),
        ReleaseInfo("r4", None, served=True, before="r2"),
        ReleaseInfo("r5", INFO, served=True, before="r4"),
    )
    host = _web1(releases=releases, links={"current": "/srv/shop/releases/r5"})
    assert rollback_target(host) == "r2"


# --- push: the cases the second mutation run found untested -----------------------------------------


def test_a_push_with_shared_files_links_each_into_the_release_after_removing_its_copy() -> None:
    config = CONFIG.model_copy(
        update={"app": CONFIG.app.model_copy(update={"shared_files": ["db/app.sqlite", "key.pem"]})}
    )
    hosts = states()
    rendered = rendered_map(hosts)["web1"]
    actions = list(host_push(config, hosts["web1"], rendered, SECRETS, build()).prepare[0].actions)
    start = actions.index(cmd.make_dir("/srv/shop/shared/instance", "shop", "shop", 0o750)) + 2
    db = "/srv/shop/shared/.files/db/app.sqlite"
    key = "/srv/shop/shared/.files/key.pem"
    expected = [
        cmd.remove_paths(TARGET, ["db/app.sqlite", "key.pem"], "no copy of the shared files of its own"),
        *(cmd.make_dir(*d) for d in shared_file_dirs(config)),
        cmd.make_dir(f"{TARGET}/db", "root", "root", 0o755),
        cmd.make_file(db, "shop", "shop", 0o600, f"shared file {db}"),
        cmd.symlink(
            db,
            f"{TARGET}/db/app.sqlite",
            "db/app.sqlite -> shared/.files/db/app.sqlite (kept across releases)",
        ),
        cmd.make_file(key, "shop", "shop", 0o600, f"shared file {key}"),
        cmd.symlink(key, f"{TARGET}/key.pem", "key.pem -> shared/.files/key.pem (kept across releases)"),
    ]
    assert actions[start : start + len(expected)] == expected
    assert [path for path, *_ in shared_file_dirs(config)] == [
        "/srv/shop/shared/.files",
        "/srv/shop/shared/.files/db",
    ]


def test_a_pyproject_venv_installs_the_dependency_list_kept_in_the_venv() -> None:
    hosts = states()
    rendered = rendered_map(hosts)["web1"]
    files = {
        "shop/__init__.py": FileEntry(b"x"),
        "pyproject.toml": FileEntry(
            b'[project]\nname = "shop"\nversion = "1"\ndependencies = ["flask==3.1.3"]\n'
        ),
    }
    a = Artifact("a" * 40, False, files, "pyproject.toml", 1700000000)
    pushed = host_push(CONFIG, hosts["web1"], rendered, SECRETS, replace(build(), artifact=a))
    venv = f"/srv/shop/venvs/{requirements_hash(a.requirements, '3.11.2', 'cp311-glibc2.36-x86_64')}"
    actions = list(pushed.prepare[0].actions)
    at = actions.index(cmd.new_venv(venv))
    assert actions[at : at + 4] == [
        cmd.new_venv(venv),
        Upload(
            f"{venv}/requirements.txt",
            b"flask==3.1.3\n",
            0o644,
            "root",
            "root",
            description="the dependencies listed in pyproject.toml",
        ),
        cmd.pip_install(venv, hosts["web1"].pip_wheel or "", "/srv/shop/wheels", f"{venv}/requirements.txt"),
        cmd.mark_complete(venv),
    ]


def test_a_host_that_serves_this_build_from_a_running_slot_is_unchanged_and_says_what_it_serves() -> None:
    hosts = served_state()
    rendered = rendered_map(hosts)["web1"]
    fingerprint = json_fingerprint(host_push(CONFIG, hosts["web1"], rendered, SECRETS, build()))
    releases = tuple(
        replace(r, info={**(r.info or {}), "fingerprint": fingerprint}) for r in hosts["web1"].releases
    )
    same = replace(hosts["web1"], releases=releases)
    assert host_push(CONFIG, same, rendered, SECRETS, build()) == HostPush(
        "web1", R2, R2, "blue", "blue", unchanged=True
    )
    # The slot that serves it is not running: the push starts it again, as a new release.
    stopped = replace(same, services={"shop@blue.service": "failed"})
    assert not host_push(CONFIG, stopped, rendered, SECRETS, build()).unchanged
    # Its config differs (a project to record): not unchanged either.
    with_id = replace(build(), project_id="c0ffee")
    assert host_push(CONFIG, same, rendered, SECRETS, with_id).prepare[0] == Step(
        "project",
        "web1",
        (Upload("/srv/shop/.deploy/project", b"c0ffee\n", 0o644, "root", "root", description="project"),),
    )


def test_a_first_push_ignores_a_manifest_without_a_current_release() -> None:
    hosts = states()
    host = replace(hosts["web1"], manifest=artifact().manifest)
    pushed = host_push(CONFIG, host, rendered_map(hosts)["web1"], SECRETS, build())
    assert (pushed.files_sent, pushed.files_deleted) == (2, 0)


def test_a_host_python_that_is_unknown_keys_its_venv_on_an_empty_version() -> None:
    hosts = states()
    host = replace(hosts["web1"], python_version=None, machine=None)
    pushed = host_push(CONFIG, host, rendered_map(hosts)["web1"], SECRETS, build())
    tag = platform_tag(host)
    assert (
        cmd.new_venv(f"/srv/shop/venvs/{requirements_hash(artifact().requirements, '', tag)}")
        in pushed.prepare[0].actions
    )


def test_a_host_without_wheels_in_the_build_gets_none() -> None:
    hosts = states()
    host = replace(hosts["web1"], host="web2")
    pushed = host_push(CONFIG, host, rendered_map(hosts)["web1"], SECRETS, build())
    assert pushed.wheels_sent == 0 and not pushed.venv_reused


def test_nginx_from_any_package_needs_no_install_even_when_its_version_is_unknown() -> None:
    host = replace(
        set_up(states())["web1"],
        packages={"python3": True, "python3-venv": True, "nginx-full": True},
        nginx_version=None,
    )
    assert setup_steps(CONFIG, host, rendered_map(states())["web1"], SECRETS) == ()


def test_no_earlier_release_lists_every_complete_release_there() -> None:
    releases = (ReleaseInfo(R1, {"id": "r1"}, False), ReleaseInfo(R2, {"id": "r2"}, True))
    with pytest.raises(PlanError) as raised:
        host_rollback(CONFIG, _web1(releases=releases), None)
    assert str(raised.value) == f"web1: no earlier release to roll back to (releases: {R1}, {R2})"


def test_release_json_is_written_last_root_owned_readable_by_the_app_group() -> None:
    hosts = states()
    pushed = host_push(CONFIG, hosts["web1"], rendered_map(hosts)["web1"], SECRETS, build())
    last = pushed.prepare[0].actions[-1]
    assert isinstance(last, Upload)
    assert replace(last, content=b"") == Upload(
        f"{TARGET}/.deploy/release.json",
        b"",
        0o640,
        "root",
        "shop",
        description="release.json (marks the release complete)",
    )


def test_a_src_layout_push_records_its_python_root_and_starts_with_it_on_pythonpath() -> None:
    hosts = states()
    files = {"src/shop/__init__.py": FileEntry(b"x"), "requirements.txt": FileEntry(b"flask==3.1.3\n")}
    a = Artifact("a" * 40, False, files, "requirements.txt", 1700000000)
    pushed = host_push(
        CONFIG, hosts["web1"], rendered_map(hosts)["web1"], SECRETS, replace(build(), artifact=a)
    )
    last = pushed.prepare[0].actions[-1]
    assert isinstance(last, Upload) and json.loads(last.content)["python_root"] == "src"
    assert pushed.start == _start("blue", NEW, f"{TARGET}/src")


def test_a_current_release_without_a_manifest_is_not_linked_from() -> None:
    host = replace(served_state()["web1"], manifest=None)
    pushed = host_push(CONFIG, host, rendered_map(served_state())["web1"], SECRETS, build())
    assert not any(
        a == cmd.link_release_files(f"/srv/shop/releases/{R2}", TARGET) for a in pushed.prepare[0].actions
    )
    assert pushed.files_sent == 2
