"""Push, rollback and setup plans, and the rollout order, built from fixture host states (no hosts)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

import pytest

from deploy.config.loader import load_text
from deploy.layout import layout_for, managed_files
from deploy.plan import Command, Upload
from deploy.push.artifact import Artifact, FileEntry
from deploy.push.plan_push import push_plan
from deploy.push.plan_rollback import rollback_plan
from deploy.push.plan_setup import env_file_content, setup_plan, shared_roots
from deploy.push.plan_switch import prune_list, rollback_target
from deploy.push.plan_types import Build, HostPush, PlanError
from deploy.push.rollout import Rollout, batches
from deploy.remote import commands as cmd
from deploy.remote.executor import Recorder, display_line, step_script
from deploy.remote.facts import HostState, ReleaseInfo, parse_state
from deploy.render.render import render

pytestmark = pytest.mark.unit

YAML = """\
app:
  name: shop
  wsgi: "shop:create_app()"
  secrets: [SECRET_KEY]
  shared: [instance]
  release: ["flask --app shop init-db"]
server:
  domains: [shop.example.com]
  hosts: [web1, web2, web3]
  user: shop
  tls: false
"""
CONFIG = load_text(YAML)
LAYOUT = layout_for(CONFIG)
SECRETS = {"SECRET_KEY": "s3cret-value"}
UNIT = "/etc/systemd/system/shop@.service"


def artifact(code: bytes = b"print('v1')\n") -> Artifact:
    files = {"shop/__init__.py": FileEntry(code), "requirements.txt": FileEntry(b"flask==3.1.3\n")}
    return Artifact("a" * 40, False, files, "requirements.txt", 1700000000)


def state(host: str, rendered: dict[str, str], **changes: object) -> HostState:
    """A host that `deploy setup` prepared, with no release yet."""
    files = {path: rendered[key] for path, key in managed_files(CONFIG) if key in rendered}
    env_sha = hashlib.sha256(env_file_content(SECRETS)).hexdigest()
    base = HostState(
        host=host,
        cores=2,
        python_version="3.11.2",
        machine="x86_64",
        libc="glibc",
        libc_version="2.36",
        pip_wheel="/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl",
        nginx_version="1.22.1",
        systemd_version=252,
        packages={"python3": True, "python3-venv": True, "nginx-light": True},
        user_exists=True,
        links={"enabled": "/etc/nginx/sites-available/shop.conf"},
        owners={
            "/srv/shop": {"owner": "root", "group": "root", "mode": 0o755, "kind": "dir"},
            "/srv/shop/.deploy": {"owner": "root", "group": "root", "mode": 0o700, "kind": "dir"},
            "/etc/shop/env": {"owner": "root", "group": "root", "mode": 0o600, "kind": "file"},
        },
        files=files,
        secret_files={"/etc/shop/env": env_sha},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def build(release: str = "20250101-000000-aaaaaaa", code: bytes = b"print('v1')\n") -> Build:
    return Build(
        artifact(code),
        release,
        {h: {"flask-3.1.3-py3-none-any.whl": b"wheel"} for h in ("web1",)},
        "ann@laptop",
        "production",
    )


def states(**changes: object) -> dict[str, HostState]:
    """web1, set up by `deploy setup` (its config files match what render() makes), no release yet."""
    rendered = render(CONFIG, state("x", _blank()).facts)
    return {h: state(h, rendered, **changes) for h in ("web1",)}


def _blank() -> dict[str, str]:
    return {key: "" for _, key in managed_files(CONFIG)}


def lines(plan_steps: object) -> list[str]:
    out = []
    for step in plan_steps:  # type: ignore[attr-defined]
        for action in step.actions:
            out.append(display_line(action) if isinstance(action, Command) else f"write {action.remote_path}")
    return out


def rendered_map(host_states: dict[str, HostState]) -> dict[str, dict[str, str]]:
    return {h: render(CONFIG, s.facts) for h, s in host_states.items()}


def test_first_push_ships_every_file_builds_a_venv_and_switches_blue() -> None:
    hosts = states()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build())
    (web1,) = plan.hosts
    assert (web1.old_slot, web1.new_slot, web1.previous) == (None, "blue", None)
    assert web1.files_sent == 2 and not web1.venv_reused and web1.wheels_sent == 1
    prepare = lines(web1.prepare)
    release = "/srv/shop/releases/20250101-000000-aaaaaaa"
    assert (
        prepare[0]
        == f"python3 -I -S -c '<program: {cmd.SAFE_FS.count(chr(10))} lines>' dir {release} root root 0755"
    )
    assert not any(" cp -al " in line for line in prepare)
    venv = [line for line in prepare if "/venvs/" in line]
    assert venv[0].startswith(
        'sh -c \'rm -rf -- "$1" && "$2" -m venv --without-pip "$1"\' venv /srv/shop/venvs/'
    )
    assert any(
        "--no-index --find-links /srv/shop/wheels -r " + release + "/requirements.txt" in v for v in venv
    )
    assert prepare[-1] == f"write {release}/.deploy/release.json"  # written last: marks it complete
    assert lines(web1.start) == [
        "systemctl stop shop-drain-blue.timer shop-drain-blue.service",
        display_line(cmd.symlink(release, "/srv/shop/slots/blue")),
        "write /srv/shop/slots/blue.env",
        "systemctl restart --no-block shop@blue.service",
        lines(web1.start)[4],
    ]
    slot_env = next(a for a in web1.start[0].actions if isinstance(a, Upload))
    assert slot_env.content == (
        b"# Written by deploy when this slot starts a release.\n"
        b"DEPLOY_RELEASE=20250101-000000-aaaaaaa\nDEPLOY_ENVIRONMENT=default\n"
    )
    assert lines(web1.start)[4].endswith(
        "/run/shop/blue.sock shop.example.com /health 30 shop@blue.service 20250101-000000-aaaaaaa"
    )
    assert lines(web1.switch)[0].endswith(" link /run/shop/blue.sock /srv/shop/live.sock")
    assert lines(plan.release_steps)[0].startswith("systemd-run --quiet --wait --pipe --collect")
    assert lines(plan.release_steps)[0].endswith("-- /bin/sh -c 'flask --app shop init-db'")


def served_state(**changes: object) -> dict[str, HostState]:
    """web1 serving release r2 from the blue slot, with r1 before it and an unfinished r0."""
    a = artifact()
    releases = (
        ReleaseInfo("20240101-000000-r0", None),
        ReleaseInfo("20240102-000000-r1", {"id": "r1"}, True),
        ReleaseInfo("20240103-000000-r2", {"id": "r2"}, True),
    )
    from deploy.push.artifact import requirements_hash

    req = requirements_hash(a.requirements, "3.11.2", "cp311-glibc2.36-x86_64")
    links = {
        "enabled": "/etc/nginx/sites-available/shop.conf",
        "current": "/srv/shop/releases/20240103-000000-r2",
        "live": "/run/shop/blue.sock",
        "blue": "/srv/shop/releases/20240103-000000-r2",
        "green": "/srv/shop/releases/20240102-000000-r1",
    }
    base = states()["web1"]
    return {
        "web1": replace(
            base,
            releases=releases,
            links=links,
            venvs=(req,),
            compiled_venvs=(req,),
            manifest=a.manifest,
            services={"shop@blue.service": "active"},
            **changes,
        )
    }  # type: ignore[arg-type]


def test_code_push_sends_only_changed_files_and_reuses_the_venv() -> None:
    hosts = served_state()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"print('v2')\n"))
    (web1,) = plan.hosts
    assert (web1.old_slot, web1.new_slot, web1.previous) == ("blue", "green", "20240103-000000-r2")
    assert web1.files_sent == 1 and web1.venv_reused and web1.wheels_sent == 0
    prepare = lines(web1.prepare)
    assert any(
        line.endswith(
            " cp -al -- /srv/shop/releases/20240103-000000-r2/. /srv/shop/releases/20250101-000000-aaaaaaa"
        )
        for line in prepare
    )
    assert not any("pip" in line for line in prepare)
    # The old slot stops after the switch, by a timer on the host; r0 (unfinished) is pruned.
    finish = lines(web1.finish)
    assert finish[0].startswith("systemd-run --quiet --collect --unit=shop-drain-blue --on-active=1s")
    assert finish[1].endswith(" rm /srv/shop/releases 20240101-000000-r0")


def test_a_push_removes_the_links_it_copied_before_anything_else_touches_the_release() -> None:
    """The previous release's links into shared/ (and to its venv) are copied by `cp -al`: they go
    before any file is removed, unpacked or written, so nothing reaches the persistent data."""
    hosts = served_state()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"print('v2')\n"))
    actions = [a for step in plan.hosts[0].prepare if step.name == "upload" for a in step.actions]
    shown = [display_line(a) if isinstance(a, Command) else f"write {a.remote_path}" for a in actions]
    copy = next(i for i, line in enumerate(shown) if " cp -al -- " in line)
    target = "/srv/shop/releases/20250101-000000-aaaaaaa"
    assert shown[copy + 1].endswith(f" rm {target} .deploy .venv instance"), shown[copy + 1]
    # Only the safe host program removes anything in a release (never `rm -rf` through a link).
    assert not any("rm -rf" in line for line in shown)
    link = next(
        i
        for i, line in enumerate(shown)
        if line.endswith(f" link /srv/shop/shared/instance {target}/instance")
    )
    assert shown[link - 2].endswith(f" rm {target} instance")


def test_a_shared_path_inside_another_is_reached_through_its_link_and_never_linked_itself() -> None:
    assert shared_roots(["instance/uploads", "instance", "data", "instance2"]) == [
        "data",
        "instance",
        "instance2",
    ]


def test_a_host_that_serves_this_exact_build_is_unchanged() -> None:
    hosts = served_state()
    first = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build())
    fingerprint = json_fingerprint(first.hosts[0])
    releases = tuple(
        replace(r, info={**(r.info or {}), "fingerprint": fingerprint}) if r.id.endswith("r2") else r
        for r in hosts["web1"].releases
    )
    same = {"web1": replace(hosts["web1"], releases=releases)}
    plan = push_plan(CONFIG, same, rendered_map(same), SECRETS, build())
    assert plan.hosts[0].unchanged and not plan.changed_hosts and plan.as_plan().steps == ()


def json_fingerprint(host_push: HostPush) -> str:
    import json

    uploads = (a for s in host_push.prepare for a in s.actions if isinstance(a, Upload))
    upload = next(a for a in uploads if a.remote_path.endswith("release.json"))
    return str(json.loads(upload.content)["fingerprint"])


def test_push_refuses_a_host_that_was_not_set_up() -> None:
    hosts = states(user_exists=False)
    with pytest.raises(
        PlanError, match=r"web1 is not set up \(the user shop missing\): run 'deploy setup' first"
    ):
        push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build())


def test_a_failed_start_reads_the_new_slots_log_since_the_start_step_wrote_its_env_file() -> None:
    """Push and rollback: the log begins when the start step (re)wrote green.env, so an earlier
    run's errors are never shown as this one's; each line names its process (short-unix)."""
    hosts = served_state()
    pushed = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2")).hosts[0]
    rolled = rollback_plan(CONFIG, hosts, None).hosts[0]
    expected = (
        'sh -c \'since=$(stat -c %Y -- "$1" 2>/dev/null) || since=0; exec journalctl --no-pager '
        '--quiet -o short-unix -n "$3" --since "@$since" -u "$2"\' sh /srv/shop/slots/green.env '
        "shop@green.service 400"
    )
    for push in (pushed, rolled):
        assert push.diagnose is not None and push.diagnose.line() == expected
        assert push.diagnose.sudo and not push.diagnose.check
        assert "write /srv/shop/slots/green.env" in lines(push.start)


def test_rollback_goes_to_the_release_that_served_before_and_never_prunes_it() -> None:
    hosts = served_state()
    assert rollback_target(hosts["web1"]) == "20240102-000000-r1"
    plan = rollback_plan(CONFIG, hosts, None)
    (web1,) = plan.hosts
    assert (web1.release, web1.new_slot, web1.previous) == (
        "20240102-000000-r1",
        "green",
        "20240103-000000-r2",
    )
    assert plan.release_steps == ()  # release commands never run on rollback
    assert "20240102-000000-r1" not in prune_list(CONFIG, hosts["web1"], None)
    with pytest.raises(PlanError, match="no complete release 'nope'"):
        rollback_plan(CONFIG, hosts, "nope")


def test_prune_keeps_the_newest_current_and_rollback_target() -> None:
    many = tuple(ReleaseInfo(f"2024010{i}-000000-r{i}", {"id": i}, True) for i in range(1, 9))
    host = replace(
        served_state()["web1"],
        releases=many,
        links={"current": "/srv/shop/releases/20240102-000000-r2", "blue": None, "green": None},
    )
    doomed = prune_list(CONFIG, host, "20250101-000000-new")
    assert "20240102-000000-r2" not in doomed and "20240101-000000-r1" not in doomed  # current, target
    assert doomed == ["20240103-000000-r3", "20240104-000000-r4"]


def set_up(host_states: dict[str, HostState]) -> dict[str, HostState]:
    """The hosts with every directory `deploy setup` makes, as setup makes it."""
    from deploy.push.plan_setup import _dirs

    owners = {path: {"owner": o, "group": g, "mode": m, "kind": "dir"} for path, o, g, m in _dirs(CONFIG)}
    return {h: replace(state, owners={**state.owners, **owners}) for h, state in host_states.items()}


def test_setup_on_a_prepared_host_changes_nothing_and_never_shows_secrets() -> None:
    hosts = served_state()
    ready = set_up(hosts)
    assert setup_plan(CONFIG, ready, rendered_map(ready), SECRETS).steps == ()
    fresh = {"web1": replace(ready["web1"], user_exists=False, secret_files={})}
    plan = setup_plan(CONFIG, fresh, rendered_map(fresh), SECRETS)
    assert [s.name for s in plan.steps] == ["user", "env file"]
    upload = plan.steps[1].actions[0]
    assert isinstance(upload, Upload) and upload.sensitive and upload.mode == 0o600 and upload.owner == "root"
    recorder = Recorder()
    recorder.run_step("web1", plan.steps[1])
    assert "s3cret" not in " ".join(recorder.lines()) and "(secret)" in recorder.lines()[0]


def test_a_host_set_up_before_the_shared_catch_all_gets_it_with_its_site_in_one_nginx_test() -> None:
    """Older sites claimed default_server themselves: the new site and the catch-all that takes the
    claim over are written in the same step, before one `nginx -t`, so no state between them is tested."""
    hosts = served_state()
    rendered = rendered_map(hosts)["web1"]
    old_site = rendered["nginx/shop.conf"] + "server {\n    listen 80 default_server;\n    return 444;\n}\n"
    files = dict(hosts["web1"].files)
    files["/etc/nginx/sites-available/shop.conf"] = old_site
    del files["/etc/nginx/conf.d/deploy-catch-all.conf"]
    upgraded = {"web1": replace(hosts["web1"], files=files)}
    ready = set_up(upgraded)
    plan = setup_plan(CONFIG, ready, rendered_map(ready), SECRETS)
    assert [s.name for s in plan.steps] == ["nginx"]
    written, test = lines(plan.steps)[:-1], lines(plan.steps)[-1]
    # Staged beside their targets; one program puts both in place, tests, and reloads or restores.
    assert written == [
        "write /etc/nginx/sites-available/shop.conf.deploy-new",
        "write /etc/nginx/conf.d/deploy-catch-all.conf.deploy-new",
    ]
    assert test.endswith(
        " file /etc/nginx/sites-available/shop.conf file /etc/nginx/conf.d/deploy-catch-all.conf"
    )
    (apply,) = [a for a in plan.steps[0].actions if isinstance(a, Command)]
    assert apply.argv[:3] == ("python3", "-c", cmd.NGINX_APPLY)


def test_every_nginx_change_is_staged_then_applied_by_one_program_that_can_undo_it() -> None:
    """Setup, push and HTTPS setup change Nginx's files the same way: nothing is written under a
    name Nginx reads until the program that tests the result (and restores it on failure) runs."""
    from deploy.tls import steps as tls

    hosts = states(links={"debian_default": "/etc/nginx/sites-available/default"}, files={})
    rendered = rendered_map(hosts)
    steps = [s for s in setup_plan(CONFIG, hosts, rendered, SECRETS).steps if s.name == "nginx"]
    cfg = load_text(YAML.replace("tls: false", "tls: {email: ops@example.com}"))
    steps.append(tls.site_step(cfg, "web1", render(cfg, hosts["web1"].facts), "tls: HTTPS site"))
    for step in steps:
        uploads = [a for a in step.actions if isinstance(a, Upload)]
        commands = [a for a in step.actions if isinstance(a, Command)]
        assert uploads and all(u.remote_path.endswith(cmd.STAGED) for u in uploads)
        assert [c.argv[:3] for c in commands] == [("python3", "-c", cmd.NGINX_APPLY)]
        ops = commands[0].argv[3:]
        assert "link" in ops and ops[ops.index("link") + 1] == "/etc/nginx/sites-enabled/shop.conf"
        assert ops[-2:] == ("remove", "/etc/nginx/sites-enabled/default")


@pytest.mark.parametrize(
    ("owner", "mode", "entries", "why"),
    [
        ("root", 0o1777, [], "its mode is 1777"),
        ("root", 0o755, ["notes.txt"], "it holds notes.txt"),
        ("ann", 0o700, [], "ann owns it"),
        ("root", 0o775, [], "its mode is 0775"),
    ],
)
def test_setup_refuses_an_existing_base_dir_that_is_not_deploys(
    owner: str, mode: int, entries: list[str], why: str
) -> None:
    """/tmp, /etc, a home folder: setup would reset the folder's owner and mode, so nothing runs."""
    found = {"/srv/shop": {"owner": owner, "group": owner, "mode": mode, "kind": "dir"}}
    hosts = states(owners=found, base_entries=entries, user_exists=False)
    with pytest.raises(PlanError) as error:
        setup_plan(CONFIG, hosts, rendered_map(hosts), SECRETS)
    message = str(error.value)
    assert message.startswith("server.base_dir: web1: /srv/shop already exists and is not deploy's (")
    assert why in message and "no /srv/shop/.deploy in it" in message


def test_setup_takes_a_new_or_empty_root_folder_or_one_it_made() -> None:
    empty = {"/srv/shop": {"owner": "root", "group": "root", "mode": 0o755, "kind": "dir"}}
    ours = {
        "/srv/shop": {"owner": "root", "group": "root", "mode": 0o700, "kind": "dir"},
        "/srv/shop/.deploy": {"owner": "root", "group": "root", "mode": 0o700, "kind": "dir"},
    }
    for owners, entries in (({}, None), (empty, []), (ours, [".deploy", "releases"])):
        hosts = states(owners=owners, base_entries=entries, user_exists=False)
        plan = setup_plan(CONFIG, hosts, rendered_map(hosts), SECRETS)
        assert any(line.endswith(" dir /srv/shop/releases root root 0755") for line in lines(plan.steps))


def test_an_env_file_the_app_user_owns_is_rewritten_root_only_by_setup_and_push() -> None:
    """The app must not rewrite what systemd reads as root when it starts the app: root:root 0600."""
    app_owned = {"/etc/shop/env": {"owner": "shop", "group": "shop", "mode": 0o600, "kind": "file"}}
    hosts = served_state()
    hosts = {"web1": replace(hosts["web1"], owners={**hosts["web1"].owners, **app_owned})}
    for steps in (
        setup_plan(CONFIG, hosts, rendered_map(hosts), SECRETS).steps,
        push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2")).hosts[0].prepare,
    ):
        (env,) = [a for s in steps if s.name == "env file" for a in s.actions if isinstance(a, Upload)]
        assert (env.remote_path, env.owner, env.group, env.mode, env.sensitive) == (
            "/etc/shop/env",
            "root",
            "root",
            0o600,
            True,
        )


def test_the_app_may_not_run_as_the_user_deploy_logs_in_as() -> None:
    hosts = states(login_user="shop")
    message = "web1: server.user 'shop' is the user deploy logs in as, and it runs commands as root (sudo)"
    with pytest.raises(PlanError, match=re.escape(message)):
        setup_plan(CONFIG, hosts, rendered_map(hosts), SECRETS)
    with pytest.raises(PlanError, match=re.escape(message)):
        push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build())
    other = set_up(states(login_user="ann"))
    assert setup_plan(CONFIG, other, rendered_map(other), SECRETS).steps == ()


def test_setup_refuses_a_domain_another_nginx_site_on_the_host_serves() -> None:
    hosts = served_state()
    names = {
        "/etc/nginx/sites-enabled/shop.conf": ["shop.example.com"],  # this app's own site: fine
        "/etc/nginx/conf.d/deploy-catch-all.conf": ["_"],
        "/etc/nginx/sites-enabled/blog.conf": ["blog.example.com", "www.blog.example.com"],
    }
    ours = {"web1": replace(hosts["web1"], nginx_server_names=names)}
    setup_plan(CONFIG, ours, rendered_map(ours), SECRETS)  # no clash: no error
    names["/etc/nginx/sites-enabled/old-shop.conf"] = ["shop.example.com", "old.example.com"]
    clash = {"web1": replace(hosts["web1"], nginx_server_names=names)}
    with pytest.raises(PlanError) as error:
        setup_plan(CONFIG, clash, rendered_map(clash), SECRETS)
    assert str(error.value).startswith("another Nginx site serves this app's domains")
    assert str(error.value).endswith(
        ":\n  web1: /etc/nginx/sites-enabled/old-shop.conf already serves shop.example.com"
    )


def test_the_first_setup_records_the_project_and_another_project_of_the_same_name_is_refused() -> None:
    hosts = served_state()
    ready = set_up(hosts)
    plan = setup_plan(CONFIG, ready, rendered_map(ready), SECRETS, "aaa,bbb")
    assert lines(plan.steps) == ["write /srv/shop/.deploy/project"]
    upload = plan.steps[0].actions[0]
    assert isinstance(upload, Upload) and upload.content == b"aaa,bbb\n"
    files = {**ready["web1"].files, "/srv/shop/.deploy/project": "aaa,bbb\n"}
    recorded = {"web1": replace(ready["web1"], files=files)}
    assert setup_plan(CONFIG, recorded, rendered_map(recorded), SECRETS, "bbb").steps == ()  # a shared root
    assert setup_plan(CONFIG, recorded, rendered_map(recorded), SECRETS, None).steps == ()  # not checked
    with pytest.raises(PlanError) as error:
        setup_plan(CONFIG, recorded, rendered_map(recorded), SECRETS, "ccc")
    assert "another project already deploys an app named 'shop' here" in str(error.value)
    assert str(error.value).endswith(
        "web1: /srv/shop/.deploy/project names git root aaa,bbb; this project's: ccc"
    )
    with pytest.raises(PlanError, match="another project already deploys"):
        push_plan(CONFIG, recorded, rendered_map(recorded), SECRETS, replace(build(), project_id="ccc"))


def test_env_file_escapes_values_and_refuses_line_breaks() -> None:
    assert env_file_content({"A": 'x"y\\z'}).endswith(b'A="x\\"y\\\\z"\n')
    with pytest.raises(PlanError, match="line break"):
        env_file_content({"A": "x\ny"})


def test_batches() -> None:
    hosts = ["a", "b", "c", "d"]
    assert batches(hosts, None) == [hosts]
    assert batches(hosts, "1") == [["a"], ["b"], ["c"], ["d"]]
    assert batches(hosts, "50%") == [["a", "b"], ["c", "d"]]
    assert batches(hosts, "10%") == [["a"], ["b"], ["c"], ["d"]]
    with pytest.raises(ValueError, match="--batch expects"):
        batches(hosts, "0")


def three_hosts() -> dict[str, HostState]:
    one = served_state()["web1"]
    return {h: replace(one, host=h) for h in ("web1", "web2", "web3")}


def test_rollout_health_failure_in_a_later_batch_reverts_switched_hosts() -> None:
    hosts = three_hosts()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2"))
    recorder = Recorder(fail={("web2", "health"): "GET /health answered 500"})
    outcome = Rollout(recorder, plan, LAYOUT, batch="1").run()
    assert not outcome.ok and outcome.reverted == ["web1"]
    assert [f.host for f in outcome.failures] == ["web2"]
    steps = [(h, s) for h, s, _ in recorder.log]
    assert ("web1", "revert") in steps and ("web2", "abort") in steps
    assert not any(h == "web3" and s in ("start", "switch") for h, s in steps)
    assert not any(s == "finish" for _, s in steps)


def test_rollout_release_command_failure_starts_nothing() -> None:
    hosts = three_hosts()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2"))
    recorder = Recorder(fail={("web1", "release"): "migration failed"})
    outcome = Rollout(recorder, plan, LAYOUT).run()
    assert not outcome.ok and outcome.failures[0].step == "release"
    assert not any(s in ("start", "switch") for _, s, _ in recorder.log)


def test_rollout_within_the_failure_threshold_goes_ahead() -> None:
    hosts = three_hosts()
    plan = push_plan(CONFIG, hosts, rendered_map(hosts), SECRETS, build(code=b"v2"))
    recorder = Recorder(fail={("web3", "health"): "down"})
    outcome = Rollout(recorder, plan, LAYOUT, max_failures=1).run()
    assert outcome.completed and not outcome.ok and outcome.switched == ["web1", "web2"]


def test_step_script_stops_at_the_first_failure_and_keeps_uploads_off_command_lines() -> None:
    script = step_script(
        [
            Command(("echo", "a b")),
            Upload("/etc/x", b"secret", 0o600, "app", "app", True),
            Command(("false",), check=False),
        ]
    )
    assert 'echo \'a b\' </dev/null || { rc=$?; echo "@@deploy-failed 0 $rc"; exit "$rc"; }' in script
    assert "c2VjcmV0" in script and "secret" not in script.replace("c2VjcmV0", "")
    assert script.rstrip().endswith("false </dev/null || true")


def test_probe_output_parses_into_host_state() -> None:
    text = (
        '{"cores": 2, "python": {"version": "3.11.2", "machine": "x86_64", "libc": "glibc", '
        '"libc_version": "2.36"}, '
        '"links": {"current": "/srv/shop/releases/r2", "live": "/run/shop/green.sock"}, '
        '"releases": [{"id": "r1", "info": {"id": "r1"}, "served": true}, {"id": "r2", "info": null}], '
        '"lock": {"held": true, "record": "{\\"by\\": \\"ann\\"}", "heartbeat_age": 3.0}}'
    )
    host = parse_state("web1", text)
    assert (host.current, host.live_slot, host.complete_releases) == ("r2", "green", ("r1",))
    assert host.lock.held and host.lock.holder() == {"by": "ann"}


def test_dry_run_diffs_a_staged_nginx_file_against_the_file_it_replaces(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from deploy.cli import main  # noqa: F401  (registers the commands before cli_push is imported)
    from deploy.cli.common import Printer, show_step

    hosts = served_state()
    site = "/etc/nginx/sites-available/shop.conf"
    old = hosts["web1"].files[site] or ""
    edited = {
        "web1": replace(hosts["web1"], files={**hosts["web1"].files, site: old.replace("listen", "listen  ")})
    }
    plan = setup_plan(CONFIG, edited, rendered_map(edited), SECRETS)
    (nginx,) = [s for s in plan.steps if s.name == "nginx"]
    show_step(nginx, edited["web1"], Printer(False))
    out = capsys.readouterr().out
    assert f"write {site}.deploy-new (0644 root:root" in out
    assert f"--- {site} (on host)" in out and f"+++ {site} (new)" in out
    assert "-    listen  " in out
