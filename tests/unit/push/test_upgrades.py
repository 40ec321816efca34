"""A service's change in setup: the downtime said before and after each step, the app started again
(the other slot, health-gated, then the switch) when the service URLs of its env file changed, and a
service removed from deploy.yaml said to run on with its data."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy.config.loader import load_text
from deploy.plan import Command, Step
from deploy.push.plan_setup import env_file_content, setup_plan
from deploy.push.service_changes import ServiceChanges
from deploy.push.upgrades import (
    PENDING,
    after,
    before,
    digest_command,
    expected_digest,
    leftovers,
    leftovers_command,
    removal_notes,
    restart_plan,
    urls_changed,
    variables,
)
from tests.unit.push.test_plans import CONFIG, YAML, lines, rendered_map, served_state

pytestmark = pytest.mark.unit

WITH_SERVICES = load_text(
    YAML.replace("[web1, web2, web3]", "[10.0.0.1, 10.0.0.2]")
    + "services:\n  postgres: {}\n  redis: {env: CACHE_URL}\n"
)
SECRETS = {
    "SECRET_KEY": "s3cret",
    "DATABASE_URL": 'postgresql://shop:p"w\\d@10.0.0.1:5432/shop',
    "CACHE_URL": "rediss://shop:pw@10.0.0.1:6379/0",
}


def host_digest(tmp_path: Path, secrets: dict[str, str]) -> str:
    """What the digest command prints on a host whose env file setup wrote with `secrets`."""
    env = tmp_path / "env"
    env.write_bytes(env_file_content(secrets))
    command = digest_command(WITH_SERVICES)
    argv = [*command.argv[:4], str(env), *command.argv[5:]]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def test_the_host_digest_matches_what_setup_writes_and_changes_with_any_service_url(tmp_path: Path) -> None:
    assert variables(WITH_SERVICES) == ["CACHE_URL", "DATABASE_URL", "REDIS_URL"]
    command = digest_command(WITH_SERVICES)
    assert command.sudo and command.argv[4] == "/etc/shop/env"
    # The values never travel: the host prints a digest only.
    assert not any("pw" in arg for arg in command.argv)
    same = host_digest(tmp_path, SECRETS)
    assert same == expected_digest(WITH_SERVICES, SECRETS)
    assert urls_changed(WITH_SERVICES, SECRETS, {"web1": same + "\n"}) == []
    # Another app secret changing is not a service's change.
    assert host_digest(tmp_path, {**SECRETS, "SECRET_KEY": "other"}) == same
    moved = {**SECRETS, "DATABASE_URL": SECRETS["DATABASE_URL"].replace("10.0.0.1", "10.0.0.2")}
    assert urls_changed(WITH_SERVICES, SECRETS, {"web1": host_digest(tmp_path, moved)}) == ["web1"]
    # A service removed from deploy.yaml: its URL leaves the env file, which is a change too.
    without = {k: v for k, v in SECRETS.items() if k != "CACHE_URL"}
    assert urls_changed(WITH_SERVICES, without, {"web1": same}) == ["web1"]
    assert expected_digest(WITH_SERVICES, without) == host_digest(tmp_path, without)


def test_a_restart_an_interrupted_setup_still_owes_is_done_by_the_next_setup(tmp_path: Path) -> None:
    """Setup records on the host that the app must start again before it writes the new URLs; while
    that record is there, the host's URLs count as changed, whatever its env file holds."""
    command = digest_command(WITH_SERVICES)
    assert command.argv[6] == "/srv/shop/.deploy/restart-pending"
    env, marker = tmp_path / "env", tmp_path / "restart-pending"
    env.write_bytes(env_file_content(SECRETS))
    marker.touch()
    argv = [*command.argv[:4], str(env), command.argv[5], str(marker), *command.argv[7:]]
    printed = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    assert printed == PENDING
    assert urls_changed(WITH_SERVICES, SECRETS, {"web1": printed}) == ["web1"]
    marker.unlink()
    assert host_digest(tmp_path, SECRETS) == expected_digest(WITH_SERVICES, SECRETS)
    # Owed only where the app runs (a host that serves nothing starts with the new env file anyway).
    served, bare = served_state()["web1"], served_state()["web1"].__class__("web2")
    changes = ServiceChanges({"web1": PENDING, "web2": PENDING})
    assert changes.owed(CONFIG, {}, {"web1": served, "web2": bare}) == ["web1"]
    # The plan writes the record in the env file's step, before the env file itself.
    new_url = {"SECRET_KEY": "s3cret-value", "DATABASE_URL": "postgresql://shop:pw@10.0.0.2/shop"}
    hosts = {"web1": served}
    for owed, expected in (((), []), (("web1",), ["restart-pending"])):
        plan = setup_plan(CONFIG, hosts, rendered_map(hosts), new_url, None, owed)
        (env_step,) = [s for s in plan.steps if s.name == "env file"]
        written = lines((env_step,))
        assert written[-1] == "write /etc/shop/env"
        assert [w.rsplit("/", 1)[1].split()[0] for w in written[:-1]] == expected, written


def test_a_restart_is_the_current_release_again_in_the_other_slot_health_gated_then_switched() -> None:
    states = served_state()
    plan = restart_plan(CONFIG, states, ["web1"])
    (host,) = plan.hosts
    assert (host.release, host.previous, host.old_slot, host.new_slot) == (
        "20240103-000000-r2",
        "20240103-000000-r2",
        "blue",
        "green",
    )
    assert not host.unchanged
    started = lines(host.start)
    assert any("restart --no-block shop@green.service" in line for line in started)
    assert (
        "/run/shop/green.sock shop.example.com /health 30 shop@green.service 20240103-000000-r2"
        in started[-1]
    )
    switch = lines(host.switch)
    assert any("/srv/shop/live.sock" in line for line in switch)
    assert "systemctl disable --quiet --no-reload shop@blue.service" in switch
    assert host.revert and host.abort
    # A host that serves nothing has nothing to start again.
    bare = {"web1": states["web1"].__class__("web1")}
    assert restart_plan(CONFIG, bare, ["web1"]).hosts == ()


def step(name: str) -> Step:
    return Step(name, "10.0.0.1", (Command(("true",), "x"),))


def test_the_downtime_of_each_service_change_is_said_before_and_after() -> None:
    restart = before(step("postgres (restart: max_connections changed)"))
    assert restart is not None
    assert "Postgres restarts (max_connections changed)" in restart and "connections drop" in restart
    assert "no downtime" in str(before(step("postgres (reload)")))
    assert before(step("postgres")) is None and before(step("postgres configuration")) is None
    assert "data is kept (persistence: rdb" in str(before(step("redis (configuration)"), "rdb"))
    assert "data is lost" in str(before(step("redis (configuration)"), "none"))
    assert before(step("redis (start redis-server)"), "rdb") is None
    assert before(step("redis CA certificate"), "rdb") is None
    said = after(step("redis (configuration)"), 1.234, "redis-server restarted (Redis has no reload)\n")
    assert said == "10.0.0.1: Redis was restarted: the app could not use it for at most 1.2s"
    said = after(step("postgres (restart: port changed)"), 3.0, "restarted postgresql@15-main: ...\n")
    assert said == "10.0.0.1: Postgres was restarted: the app could not use it for at most 3.0s"
    assert "no downtime" in str(after(step("postgres (reload)"), 0.2, "reloaded postgresql@15-main\n"))
    assert after(step("redis (start redis-server)"), 0.5, "redis-server started\n") is None


def test_a_service_removed_from_deploy_yaml_is_said_to_run_on_with_its_data() -> None:
    assert leftovers_command(CONFIG).argv[-1] == "/etc/deploy/shop/services"
    found = {"web1": "postgres.env\nredis.env\n", "web2": ""}
    assert leftovers(WITH_SERVICES, found) == {}
    left = leftovers(CONFIG, found)
    assert left == {"postgres": ["web1"], "redis": ["web1"]}
    notes = removal_notes(CONFIG, left)
    assert len(notes) == 2
    assert notes[0].startswith("web1: services.postgres is no longer in deploy.yaml")
    assert "still runs on web1" in notes[0] and "never deletes data" in notes[0]
    assert "dropdb shop" in notes[0] and "/var/backups/deploy/shop/postgres" in notes[0]
    assert "redis" in notes[1] and "/etc/redis/redis.conf" in notes[1]
