"""One sandbox host, two apps: a durable services.redis verified and pulled (`--service redis`), and a
second app's services.redis on the same host refused at setup, naming both apps.

The app is not pushed: Redis, its backups and the refusal are all `deploy setup` and `deploy services`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.sandbox.machines import Sandbox
from tests.hosts.pushkit import Project, make_project, private_sandbox

pytestmark = pytest.mark.hosts

REDIS_CLI = (
    "REDISCLI_AUTH=$(sed -n 's/^REDIS_ADMIN_PASSWORD=//p' /etc/deploy/flaskr/services/redis.env) "
    "redis-cli --no-auth-warning --user deploy-admin -s /run/redis/redis-server.sock"
)
FOLDER = "/var/backups/deploy/flaskr/redis"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with private_sandbox(tmp_path_factory, "leftovers", 1) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def project(box: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Project:
    made = make_project(tmp_path_factory.mktemp("leftovers-app"), box.hosts())
    made.write_config(extra="services:\n  redis: {persistence: rdb, durable: true}\n")
    made.commit("services.redis durable")
    setup = made.deploy("setup", timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    return made


def on_host(box: Sandbox, script: str) -> str:
    result = box.run(box.hosts()[0], ["sh", "-c", script], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_a_redis_backup_is_verified_by_a_scratch_server_and_pulled(
    project: Project, box: Sandbox, tmp_path: Path
) -> None:
    on_host(box, f"for i in $(seq 1 50); do {REDIS_CLI} set key:$i value-$i >/dev/null; done")
    made = project.deploy("services", "backup", "--service", "redis", timeout=300)
    assert made.returncode == 0 and "50 keys" in made.stdout, made.stdout + made.stderr
    verified = project.deploy("services", "verify", "--service", "redis", timeout=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verified (redis-check-rdb, then loaded by a scratch redis-server in " in verified.stdout
    assert "50 keys, as the backup recorded" in verified.stdout
    # The scratch server is gone, and left nothing behind.
    assert on_host(box, "pgrep -c -f '[r]edis-server.*deploy-redis-verify' || true") == "0"
    assert on_host(box, "ls -d /tmp/deploy-redis-verify-* 2>/dev/null || true") == ""
    listed = json.loads(
        on_host(
            box, f"python3 -c \"import json,glob; print(json.dumps(sorted(glob.glob('{FOLDER}/*.json'))))\""
        )
    )
    stamp = Path(listed[-1]).stem
    pulled = project.deploy("services", "pull", "--service", "redis", "-o", str(tmp_path / "r.rdb"))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert f"backup {stamp}" in pulled.stdout and "redis-server --dir ." in pulled.stdout
    recorded = json.loads(on_host(box, f"cat {FOLDER}/{stamp}.json"))
    assert hashlib.sha256((tmp_path / "r.rdb").read_bytes()).hexdigest() == recorded["rdb_sha256"]
    # A damaged copy fails its verification, and its record says why.
    on_host(box, f"printf garbage >> {FOLDER}/{stamp}.rdb")
    failed = project.deploy("services", "verify", "--service", "redis", stamp, timeout=300)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"Redis backup {stamp}: FAILED: the RDB changed since it was checked" in failed.stdout
    assert json.loads(on_host(box, f"cat {FOLDER}/{stamp}.json"))["status"] == "failed"


def test_a_second_apps_redis_on_the_same_host_is_refused_naming_both(
    project: Project, box: Sandbox, tmp_path: Path
) -> None:
    before = on_host(box, "sha256sum /etc/redis/redis.conf")
    other = make_project(tmp_path, box.hosts())
    text = (project.path / "deploy.yaml").read_text(encoding="utf-8").replace("name: flaskr", "name: shop", 1)
    (other.path / "deploy.yaml").write_text(text.replace("user: flaskr", "user: shop"), encoding="utf-8")
    other.commit("the app shop, with services.redis on flaskr's host")
    refused = other.deploy("setup", timeout=300)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    address = box.hosts()[0].address
    assert f"redis-server on {address} already serves the app flaskr" in said
    assert "shop's would replace flaskr's" in said and "services.redis.host" in said
    assert on_host(box, "sha256sum /etc/redis/redis.conf") == before
    assert on_host(box, "test -e /etc/deploy/shop || echo none") == "none"
    # flaskr's Redis still answers as flaskr set it up.
    assert on_host(box, f"{REDIS_CLI} dbsize") == "50"
