"""Hostile deploy.yaml values: what a careless user or an attacker writes must be refused in validation,
with one clear problem naming the key, before any file is rendered or any command runs on a host."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from deploy.config.loader import ConfigError, KeyPath, load, load_text
from deploy.config.model import Config
from deploy.config.model.base import _alternatives

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "app": {"name": "shop", "wsgi": "shop:create_app()", "secrets": ["SECRET_KEY"]},
    "server": {"domains": ["shop.example.com"], "hosts": ["web1.example.com"]},
}


def rejected(data: dict[str, Any], environment: str | None = None) -> list[tuple[KeyPath, str]]:
    text = yaml.safe_dump(data, allow_unicode=False, sort_keys=False)
    with pytest.raises(ConfigError) as info:
        load_text(text, "deploy.yaml", environment)
    return [(p.path, str(p)) for p in info.value.problems]


def accepted(data: dict[str, Any]) -> Config:
    return load_text(yaml.safe_dump(data, allow_unicode=False, sort_keys=False), "deploy.yaml")


def with_value(path: KeyPath, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(base if base is not None else BASE)
    node: Any = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value
    return data


# --- defect 2: "value\n" passed every `re.match(...$)` validator -------------------------------------

TRAILING_NEWLINE = [
    (("app", "name"), "shop"),
    (("app", "wsgi"), "shop:create_app()"),
    (("app", "requirements"), "requirements.txt"),
    (("app", "python"), "3.11"),
    (("app", "health"), "/health"),
    (("app", "static"), {"url": "/static", "dir": "static"}),
    (("server", "user"), "deploy"),
    (("server", "base_dir"), "/srv/shop"),
    (("server", "domains"), ["shop.example.com"]),
    (("server", "hosts"), ["web1.example.com"]),
    (("nginx", "version"), "1.22"),
    (("nginx", "client_max_body_size"), "16m"),
    (("docker", "base_image"), "python:3.11-slim-bookworm"),
    (("docker", "user"), "app"),
    (("push", "batch"), "25%"),
]


def _newline_at_end(value: Any) -> Any:
    if isinstance(value, str):
        return value + "\n"
    if isinstance(value, list):
        return [_newline_at_end(value[0]), *value[1:]]
    return {k: _newline_at_end(v) if i == 0 else v for i, (k, v) in enumerate(value.items())}


@pytest.mark.parametrize(("path", "good"), [pytest.param(p, g, id=".".join(p)) for p, g in TRAILING_NEWLINE])
def test_a_trailing_newline_is_refused(path: KeyPath, good: Any) -> None:
    accepted(with_value(path, good))
    problems = rejected(with_value(path, _newline_at_end(good)))
    assert any(p[: len(path)] == path for p, _ in problems), problems


@pytest.mark.parametrize(
    ("path", "good", "bad"),
    [
        (("app", "env"), {"LOG_LEVEL": "info"}, {"LOG_LEVEL\n": "info"}),
        (("app", "secrets"), ["API_TOKEN"], ["API_TOKEN\n"]),
        (("nginx", "extra_headers"), {"X-Robots-Tag": "none"}, {"X-Robots-Tag\n": "none"}),
        (("environments",), {"staging": {}}, {"staging\n": {}}),
    ],
)
def test_a_trailing_newline_in_a_name_is_refused(path: KeyPath, good: Any, bad: Any) -> None:
    accepted(with_value(path, good))
    problems = rejected(with_value(path, bad))
    assert any(p[: len(path)] == path for p, _ in problems), problems


def test_an_unpinned_image_with_a_newline_is_not_pinned() -> None:
    problems = rejected(with_value(("docker", "base_image"), "python:latest\n"))
    assert [p for p, _ in problems] == [("docker", "base_image")]


def test_a_header_value_cannot_add_a_header() -> None:
    """`X-A: "1\\nReferrer-Policy: unsafe-url"` would add a header past the managed ones."""
    for value in ("1\nReferrer-Policy: unsafe-url", "1\r\nReferrer-Policy: unsafe-url", "1\rX: y"):
        problems = rejected(with_value(("nginx", "extra_headers"), {"X-A": value}))
        assert [p for p, _ in problems] == [("nginx", "extra_headers", "X-A")]
        csp = rejected(with_value(("nginx", "content_security_policy"), "default-src 'self'\n" + value))
        assert [p for p, _ in csp] == [("nginx", "content_security_policy")]


def test_a_control_character_is_named_but_the_value_is_never_printed() -> None:
    problems = rejected(with_value(("app", "env"), {"API_URL": "hunter2\u2028x"}))
    assert len(problems) == 1
    path, text = problems[0]
    assert path == ("app", "env", "API_URL")
    assert "hunter2" not in text and "U+2028" in text and "\n" not in text


@pytest.mark.parametrize(
    "host", ["web1.example.com\n", "admin\n@web1.example.com", "admin@web1.example.com:22\n", " web1.com"]
)
def test_a_host_string_with_a_control_character_or_a_space_is_refused(host: str) -> None:
    problems = rejected(with_value(("server", "hosts"), [host]))
    assert problems and all(p[:3] == ("server", "hosts", 0) for p, _ in problems), problems


def test_hook_commands_and_release_commands_are_one_line() -> None:
    for path, value in (
        (("hooks", "post_push"), ["echo ok\nrm -rf /"]),
        (("hooks", "pre_push"), [{"run": "echo ok\r", "on": "hosts"}]),
        (("app", "release"), ["flask db upgrade\x00"]),
    ):
        problems = rejected(with_value(path, value))
        assert problems and all(p[: len(path)] == path for p, _ in problems), problems


# --- every string field of the model, found by introspection ------------------------------------------


class Key:
    """A slot that is a mapping's key (the value next to it is the mapping's sample value)."""


class Value:
    """A slot that is a mapping's value (under the mapping's sample key)."""


Slot = tuple[str | int | type[Key] | type[Value], ...]


def string_slots(annotation: Any = Config, prefix: Slot = ()) -> list[Slot]:
    """Every place in the model where deploy.yaml gives a string (keys of mappings included)."""
    out: list[Slot] = []
    for alt in _alternatives(annotation):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            for name, info in alt.model_fields.items():
                out += string_slots(info.annotation, (*prefix, name))
        elif alt is str:
            out.append(prefix)
        elif get_origin(alt) is list:
            out += string_slots(get_args(alt)[0], (*prefix, 0))
        elif get_origin(alt) is dict:
            key, value = get_args(alt)
            out += [(*prefix, Key)] if str in _alternatives(key) else []
            out += string_slots(value, (*prefix, Value))
        elif alt is Any or get_origin(alt) is Literal or alt in (int, bool):
            continue
        else:
            raise AssertionError(f"{prefix}: teach this test about {alt!r}")
    return out


def _name(slot: Slot) -> str:
    return ".".join("{key}" if p is Key else "{value}" if p is Value else str(p) for p in slot)


#: A valid value for every string slot (and, where a slot needs them, the keys around it). A new
#: string field fails test_every_string_field_has_a_sample until it has one here.
SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "app.name": ("shop", {}),
    "app.wsgi": ("shop:create_app()", {}),
    "app.requirements": ("requirements.txt", {}),
    "app.python": ("3.11", {}),
    "app.static.url": ("/static", {}),
    "app.static.dir": ("static", {}),
    "app.health": ("/health", {}),
    "app.env.{key}": ("LOG_LEVEL", {"value": "info"}),
    "app.env.{value}": ("info", {"key": "LOG_LEVEL"}),
    "app.secrets.0": ("SECRET_KEY", {}),
    "app.shared.0": ("instance", {}),
    "app.shared_files.0": ("secret.key", {}),
    "app.release.0": ("flask db upgrade", {}),
    "server.domains.0": ("shop.example.com", {}),
    "server.hosts.0.address": ("web1.example.com", {}),
    "server.hosts.0.user": ("admin", {"siblings": {"address": "web1.example.com"}}),
    "server.user": ("deploy", {}),
    "server.base_dir": ("/srv/shop", {}),
    "server.ssh.user": ("root", {}),
    "server.ssh.key": ("~/.ssh/id_ed25519", {}),
    "server.ssh.known_hosts": ("~/.ssh/known_hosts", {}),
    "server.ssh.proxy_jump": ("bastion.example.com", {}),
    "server.tls.email": ("ops@example.com", {}),
    "server.tls.cert": ("certs/site.pem", {"siblings": {"key": "certs/site.key"}}),
    "server.tls.key": ("certs/site.key", {"siblings": {"cert": "certs/site.pem"}}),
    "server.tls.acme_server": ("https://acme.example.com/dir", {"siblings": {"email": "ops@example.com"}}),
    "server.tls.ca_bundle": ("certs/ca.pem", {"siblings": {"email": "ops@example.com"}}),
    "nginx.version": ("1.22", {}),
    "nginx.client_max_body_size": ("16m", {}),
    "nginx.content_security_policy": ("default-src 'self'", {}),
    "nginx.csp_sources.{key}": ("script-src", {"value": ["'self'"]}),
    "nginx.csp_sources.{value}.0": ("'self'", {"outer": "script-src"}),
    "nginx.extra_headers.{key}": ("X-Robots-Tag", {"value": "none"}),
    "nginx.extra_headers.{value}": ("none", {"key": "X-Robots-Tag"}),
    "systemd.overrides.{key}": ("PrivateTmp", {"value": "yes"}),
    "systemd.overrides.{value}": ("yes", {"key": "PrivateTmp"}),
    "docker.base_image": ("python:3.11-slim-bookworm", {}),
    "docker.user": ("app", {}),
    "hooks.pre_push.0.run": ("echo pre-push", {}),
    "hooks.post_push.0.run": ("echo post-push", {}),
    "hooks.pre_rollback.0.run": ("echo pre-rollback", {}),
    "hooks.post_rollback.0.run": ("echo post-rollback", {}),
    "push.batch": ("25%", {}),
    "services.postgres.host": ("web1.example.com", {}),
    "services.postgres.database": ("shop", {}),
    "services.postgres.user": ("shop", {}),
    "services.postgres.env": ("DATABASE_URL", {}),
    "services.redis.host": ("web1.example.com", {}),
    "services.redis.maxmemory": ("256mb", {}),
    "services.redis.env": ("REDIS_URL", {}),
    "jobs.{key}": ("cleanup", {"value": {"command": "flask purge", "schedule": "hourly"}}),
    "jobs.{value}.command": ("flask purge", {"outer": "cleanup", "siblings": {"schedule": "hourly"}}),
    "jobs.{value}.schedule": ("Mon..Fri 09:00", {"outer": "cleanup", "siblings": {"command": "x"}}),
    "jobs.{value}.hosts": ("all", {"outer": "cleanup", "siblings": {"command": "x", "schedule": "daily"}}),
    "services.postgres.backups.schedule": ("daily", {}),
    "services.postgres.backups.copy_to": ("/mnt/offsite", {}),
    "server.hosts.0.roles.0": ("worker", {"up": {"address": "web1.example.com"}}),
    "processes.{key}": ("worker", {"value": {"command": "rq worker"}}),
    "processes.{value}.command": ("rq worker --url $REDIS_URL", {"outer": "worker"}),
    "processes.{value}.hosts": ("first", {"outer": "worker", "siblings": {"command": "rq worker"}}),
    "processes.{value}.memory_max": ("512M", {"outer": "worker", "siblings": {"command": "rq worker"}}),
    "processes.{value}.cpu_quota": ("50%", {"outer": "worker", "siblings": {"command": "rq worker"}}),
    "processes.{value}.ready.command": (
        "rq info --url $REDIS_URL",
        {"outer": "worker", "siblings": {"kind": "command"}, "up": {"command": "rq worker"}},
    ),
    "processes.{value}.ready.heartbeat": (
        "/tmp/alive",
        {"outer": "worker", "siblings": {"kind": "heartbeat"}, "up": {"command": "rq worker"}},
    ),
    "environments.{key}": ("staging", {"value": {}}),
    "environments.{value}.{key}": ("server", {"outer": "staging", "value": {}}),
    "environment": ("staging", {}),
}

SLOTS = string_slots()


def test_every_string_field_has_a_sample() -> None:
    assert len(SLOTS) > 30
    assert sorted(_name(s) for s in SLOTS) == sorted(SAMPLES)


def place(slot: Slot, value: str) -> tuple[dict[str, Any], KeyPath]:
    """BASE with `value` at `slot`, and the key path a problem about it must name."""
    _, extra = SAMPLES[_name(slot)]
    data = copy.deepcopy(BASE)
    node: Any = data
    path: KeyPath = ()
    up: Any = data
    for i, part in enumerate(slot[:-1]):
        nxt = slot[i + 1]
        if part is Value:
            node[extra["outer"]] = [None] if nxt == 0 else {}
            node = node[extra["outer"]]
            path = (*path, extra["outer"])
            continue
        assert isinstance(part, str | int)
        empty: Any = [{}] if nxt == 0 and slot[i + 2 :] else [None] if nxt == 0 else {}
        up = node
        if isinstance(part, int):
            node = node[part]
        else:
            if not isinstance(node.get(part), dict | list) or nxt == 0:
                node[part] = empty
            node = node[part]
        path = (*path, part)
    last = slot[-1]
    if last is Key:
        node.clear()
        node[value] = extra["value"]
    elif last is Value:
        node.clear()
        node[extra["key"]] = value
        path = (*path, extra["key"])
    elif isinstance(last, int):
        up.update(extra.get("up", {}))  # the item's siblings in the mapping that holds the list
        node[last] = value
        path = (*path, last)
    else:
        assert isinstance(last, str)
        if "up" in extra:
            up.update(extra["up"])  # siblings in the mapping one level up
        node.update(extra.get("siblings", {}))
        node[last] = value
        path = (*path, last)
    return data, path


def test_every_sample_is_valid_where_it_is_placed() -> None:
    """Otherwise the property below would prove nothing: the value must fail for its control character."""
    for slot in SLOTS:
        value = SAMPLES[_name(slot)][0]
        if slot == ("environment",):
            accepted_env = load_text(
                yaml.safe_dump({**BASE, "environments": {value: {}}}), "deploy.yaml", value
            )
            assert accepted_env.environment == value
            continue
        data, _ = place(slot, value)
        accepted(data)


#: Characters no deploy.yaml value may hold: they end a line in Nginx, systemd, a Dockerfile or a shell
#: command, or hide text (format characters such as U+202E and U+200B), or cannot be encoded.
CONTROL = st.one_of(
    st.sampled_from(
        ["\n", "\r", "\t", "\x00", "\x7f", "\x85", "\x1b", "\u2028", "\u2029", "\u202e", "\ufeff"]
    ),
    st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp"]),
)


@settings(
    max_examples=600, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(slot=st.sampled_from(SLOTS), char=CONTROL, where=st.floats(0, 1))
def test_a_control_character_in_any_string_field_is_refused(slot: Slot, char: str, where: float) -> None:
    good = SAMPLES[_name(slot)][0]
    at = round(where * len(good))
    bad = good[:at] + char + good[at:]
    if slot == ("environment",):
        data = {**BASE, "environments": {good: {}}}
        problems = rejected(data, environment=bad)
        assert problems and all(p[:1] == ("environments",) for p, _ in problems), problems
        return
    data, path = place(slot, bad)
    problems = rejected(data)
    named = [p for p, _ in problems]
    assert any(p[: len(path)] == path for p in named), (bad, problems)
    for _, text in problems:
        assert text.isprintable(), text  # one line, every character shown escaped


# --- defect 3: app.static.dir that would publish code, data or secrets --------------------------------


def _static(dir_: str, url: str = "/static", **app: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["app"].update(app, static={"url": url, "dir": dir_})
    return data


@pytest.mark.parametrize(
    ("dir_", "app", "says"),
    [
        (".", {}, "is the project root"),
        ("./", {}, "is the project root"),
        ("shop", {}, "holds the app's code (shop, from app.wsgi)"),
        ("shop/", {}, "holds the app's code"),
        ("src", {"wsgi": "src.shop.web:app"}, "holds the app's code (src, from app.wsgi)"),
        ("src/shop/web", {"wsgi": "src.shop.web:app"}, "holds the app's code (src.shop.web"),
        ("instance", {}, "overlaps Flask's instance folder"),
        ("instance/public", {}, "overlaps Flask's instance folder"),
        ("uploads", {"shared": ["uploads"]}, "overlaps the shared path 'uploads'"),
        ("data", {"shared": ["data/uploads"]}, "overlaps the shared path 'data/uploads'"),
        ("media/public", {"shared": ["media"]}, "overlaps the shared path 'media'"),
        (".git", {}, "is or is inside .git"),
        ("assets/.git/objects", {}, "is or is inside .git"),
        (".venv/lib", {}, "is or is inside .venv"),
        ("venv", {}, "is or is inside venv"),
        (".deploy", {}, "is or is inside .deploy"),
    ],
)
def test_a_static_folder_that_is_code_data_or_internal_is_refused(
    dir_: str, app: dict[str, Any], says: str
) -> None:
    problems = rejected(_static(dir_, **app))
    assert [p for p, _ in problems] == [("app", "static", "dir")], problems
    assert says in problems[0][1]


@pytest.mark.parametrize("dir_", ["static", "shop/static", "public", "assets/build"])
def test_a_folder_of_public_files_is_a_static_folder(dir_: str) -> None:
    assert accepted(_static(dir_, shared=["instance/uploads"] if dir_ != "static" else [])).app.static


@pytest.mark.parametrize(
    ("url", "health", "shadowed"),
    [
        ("/health", "/health", True),
        ("/h", "/h/ready", True),
        ("/static/", "/static/health", True),
        ("/healt", "/health/ready", False),
    ],
)
def test_a_static_url_cannot_shadow_the_health_check(url: str, health: str, shadowed: bool) -> None:
    data = _static("static", url=url, health=health)
    if not shadowed:
        accepted(data)  # a prefix of the name is not a prefix of the path
        return
    problems = rejected(data)
    assert [p for p, _ in problems] == [("app", "static", "url")]
    assert "would serve the health check" in problems[0][1]


def _line(file: Path, text: str) -> int:
    return next(n for n, line in enumerate(file.read_text().splitlines(), 1) if text in line)


def _project(tmp_path: Path, files: dict[str, str], dir_: str = "public") -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    (tmp_path / dir_).mkdir(parents=True, exist_ok=True)
    config = tmp_path / "deploy.yaml"
    config.write_text(yaml.safe_dump(_static(dir_)), encoding="utf-8")
    return config


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"public/app.py": ""}, "holds public/app.py: Nginx would serve code"),
        ({"public/js/__init__.pyc": ""}, "holds public/js/__init__.pyc: Nginx would serve code"),
        ({"public/shop.db": ""}, "holds public/shop.db: Nginx would serve data"),
        ({"public/x/site.sqlite3": ""}, "Nginx would serve data"),
        ({"public/.env": "SECRET_KEY=x"}, "holds public/.env: Nginx would serve secrets"),
        ({"public/.env.production": ""}, "Nginx would serve secrets"),
        ({"public/tls/site.key": ""}, "holds public/tls/site.key: Nginx would serve secrets"),
        ({"public/instance/config.py": ""}, "holds public/instance"),
        ({"public/deploy.yaml": ""}, "holds public/deploy.yaml: Nginx would serve configuration"),
        ({"public/.git/HEAD": ""}, "holds public/.git"),
    ],
)
def test_a_static_folder_holding_code_data_or_secrets_is_refused(
    tmp_path: Path, files: dict[str, str], says: str
) -> None:
    config = _project(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load(config)
    (problem,) = info.value.problems
    assert problem.path == ("app", "static", "dir") and problem.line == _line(config, "dir: public")
    assert says in problem.message


def test_a_static_folder_that_links_out_is_refused(tmp_path: Path) -> None:
    config = _project(tmp_path, {"instance/app.db": "", "public/style.css": ""})
    (tmp_path / "public/logo.png").symlink_to(tmp_path / "instance/app.db")
    with pytest.raises(ConfigError) as info:
        load(config)
    assert "holds public/logo.png, a link out of the folder" in str(info.value)
    (tmp_path / "public/logo.png").unlink()
    load(config)
    (tmp_path / "public").rename(tmp_path / "real")
    (tmp_path / "public").symlink_to(tmp_path)
    with pytest.raises(ConfigError) as info:
        load(config)
    assert "leads to the project root" in str(info.value)


def test_deploy_check_reports_it_as_a_critical_security_finding(tmp_path: Path) -> None:
    from deploy.checker.context import Context
    from deploy.checker.layers import Severity
    from deploy.checker.registry import load_checks, select
    from deploy.checker.runner import run

    config = _project(tmp_path, {"public/settings.py": "SECRET_KEY = 'x'\n"})
    loaded = load(config, project_files=False)
    report = run(select(load_checks(plugins=False), ["SEC022"]), Context(root=tmp_path, config=loaded))
    (result,) = report.active
    assert result.check.severity is Severity.CRITICAL and result.check.area == "security"
    assert result.finding.message.startswith("app.static.dir 'public' holds public/settings.py")
    assert result.finding.line == _line(config, "dir: public")


# --- defect 1: nested, overlapping or internal app.shared entries ------------------------------------


def _shared(*entries: str, **app: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["app"].update(app, shared=list(entries))
    return data


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        (["instance", "instance/uploads"], "'instance/uploads' is inside 'instance'"),
        (["instance/uploads", "instance"], "'instance/uploads' is inside 'instance'"),
        (["data/a/b", "logs", "data"], "'data/a/b' is inside 'data'"),
        (["instance", "instance/"], "'instance/' and 'instance' name the same folder"),
        (["uploads", "./uploads"], "'./uploads' and 'uploads' name the same folder"),
        (["a//b", "a/b"], "'a/b' and 'a//b' name the same folder"),
        (["a/./b", "a/b/"], "name the same folder"),
    ],
)
def test_nested_or_repeated_shared_entries_are_refused(entries: list[str], says: str) -> None:
    problems = rejected(_shared(*entries))
    assert [p[:2] for p, _ in problems] == [("app", "shared")], problems
    assert says in problems[0][1]
    assert "a push would delete the persistent data through the link" in problems[0][1]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (".", "the release itself"),
        ("./", "the release itself"),
        ("..", "relative path inside the project"),
        (".deploy", "deploy's own"),
        (".deploy/x", "deploy's own"),
        (".deploy-files.tar", "deploy's own"),
        (".venv", "the virtualenv"),
        ("venv", "the virtualenv"),
        ("gunicorn.conf.py", "deploy's own"),
        ("deploy-out", "deploy's own"),
        (".git", "git's"),
        (".git/hooks", "git's"),
        ("shop", "the app's code"),
    ],
)
def test_internal_names_cannot_be_shared(entry: str, says: str) -> None:
    problems = rejected(_shared("instance", entry))
    assert [p for p, _ in problems] == [("app", "shared", 1)], problems
    assert says in problems[0][1]


@pytest.mark.parametrize(("static", "entry"), [("shop/static", "shop/static"), ("assets/static", "assets")])
def test_the_static_folder_and_its_parents_cannot_be_shared(static: str, entry: str) -> None:
    problems = rejected(_shared("instance", entry, static={"dir": static}))
    assert problems and all(p[:2] == ("app", "shared") or p[:2] == ("app", "static") for p, _ in problems)
    assert any(entry in text and static in text for _, text in problems), problems


def test_shared_entries_are_kept_as_plain_folder_names() -> None:
    config = accepted(_shared("instance/", "./uploads", "logs//app"))
    assert config.app.shared == ["instance", "uploads", "logs/app"]
    assert accepted(_shared("instance", "instance-old", "data/a", "data/b")).app.shared


def test_a_shared_folder_that_holds_code_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shop/models").mkdir(parents=True)
    (tmp_path / "shop/models/__init__.py").write_text("")
    (tmp_path / "shop/uploads").mkdir()
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(_shared("instance", "shop/models")))
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "deploy.yaml")
    (problem,) = info.value.problems
    assert problem.path == ("app", "shared", 1)
    assert "holds code (shop/models/__init__.py)" in problem.message
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(_shared("instance", "shop/uploads")))
    assert load(tmp_path / "deploy.yaml").app.shared == ["instance", "shop/uploads"]


# --- defect 5: server.base_dir must be a folder of its own, never a system folder ---------------------


@pytest.mark.parametrize(
    "base_dir",
    [
        "/",
        "//",
        "/tmp",
        "/tmp/",
        "/tmp/shop",
        "/var/tmp",
        "/etc",
        "/etc/nginx",
        "/etc/shop",
        "/usr",
        "/usr/local",
        "/usr/local/bin",
        "/usr/lib/shop",
        "/var",
        "/var/lib",
        "/var/lib/dpkg",
        "/var/lib/nginx",
        "/var/log",
        "/var/log/shop",
        "/var/www",
        "/var/cache/shop",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/boot",
        "/dev",
        "/dev/shm",
        "/proc",
        "/sys",
        "/run",
        "/run/shop",
        "/home",
        "/home/deploy",
        "/home/deploy/.ssh",
        "/root",
        "/root/shop",
        "/opt",
        "/srv",
        "/srv/",
        "/mnt",
        "/media",
        "/snap",
        "/lost+found",
        "/srv/.hidden",
        "/srv/shop/./releases/..",
    ],
)
def test_a_system_folder_is_not_a_base_dir(base_dir: str) -> None:
    problems = rejected(with_value(("server", "base_dir"), base_dir))
    assert [p for p, _ in problems] == [("server", "base_dir")], problems


@pytest.mark.parametrize(
    "base_dir",
    ["/srv/shop", "/srv/apps/shop", "/opt/shop", "/var/www/shop", "/home/deploy/apps/shop", "/data/shop"],
)
def test_a_folder_of_its_own_is_a_base_dir(base_dir: str) -> None:
    assert accepted(with_value(("server", "base_dir"), base_dir)).base_dir == base_dir


def test_a_base_dir_says_why_and_what_to_use() -> None:
    (problem,) = rejected(with_value(("server", "base_dir"), "/tmp"))
    assert "/tmp is a system folder" in problem[1]
    assert "/srv/shop" in problem[1]


def test_an_invalid_wsgi_does_not_make_every_shared_entry_code() -> None:
    problems = rejected(_shared("instance", "uploads", wsgi="not a module"))
    assert [p for p, _ in problems] == [("app", "wsgi")], problems


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("app.name", "shop\\n"),
        ("nginx.extra_headers", '{X-A: "1\\nReferrer-Policy: unsafe-url"}'),
        ("app.env", '{LOG_LEVEL: "info\\u2028"}'),
        ("app.static", "{dir: .}"),
        ("app.shared", "[instance, instance/uploads]"),
        ("server.base_dir", "/tmp"),
    ],
)
def test_the_cli_refuses_with_one_line_and_exit_2(tmp_path: Path, key: str, value: str) -> None:
    import subprocess
    import sys

    section, name = key.split(".")
    text = yaml.safe_dump(BASE, sort_keys=False).replace(
        f"{section}:\n", f"{section}:\n  {name}: {value}\n", 1
    )
    if section not in BASE:
        text += f"{section}:\n  {name}: {value}\n"
    (tmp_path / "deploy.yaml").write_text(text, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "deploy", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and f" {key}" in out.stderr and "Traceback" not in out.stderr, (
        out.stderr
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Shop.DB", "data"),
        ("dump.sql", "data"),
        ("errors.log", "data"),
        ("SETTINGS.PY", "code"),
        (".ENV", "secrets"),
        (".flaskenv", "configuration"),
        ("site.ini", "configuration"),
        (".htpasswd", "secrets"),
    ],
)
def test_exposed_files_are_known_whatever_their_case(tmp_path: Path, name: str, kind: str) -> None:
    config = _project(tmp_path, {f"public/{name}": ""})
    with pytest.raises(ConfigError) as info:
        load(config)
    assert f"Nginx would serve {kind} to anyone" in str(info.value)


def test_a_shared_entry_is_a_folder_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "app.db").write_text("")
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(_shared("instance", "app.db")))
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "deploy.yaml")
    (problem,) = info.value.problems
    assert problem.path == ("app", "shared", 1) and "is a file" in problem.message
    problems = rejected(_shared("instance", "requirements.txt"))
    assert [p for p, _ in problems] == [("app", "shared", 1)]
    assert "app.requirements" in problems[0][1]


def test_the_default_web_root_is_not_a_base_dir() -> None:
    problems = rejected(with_value(("server", "base_dir"), "/var/www/html"))
    assert [p for p, _ in problems] == [("server", "base_dir")]


@pytest.mark.parametrize("selected", [None, "prod"])
def test_a_control_character_in_an_environment_overlay_is_refused(selected: str | None) -> None:
    data = {**BASE, "environments": {"prod": {"app": {"env": {"LOG_LEVEL": "info\r\nX=1"}}}}}
    problems = rejected(data, environment=selected)
    assert [p for p, _ in problems] == [("environments", "prod", "app", "env", "LOG_LEVEL")], problems


# --- a wildcard name with ACME: certbot's HTTP-01 challenge cannot get it ---------------------------


def test_a_wildcard_name_with_acme_is_refused_at_its_line_with_the_way_out() -> None:
    data = with_value(("server", "domains"), ["shop.example.com", "*.shop.example.com"])
    data = with_value(("server", "tls"), {"email": "ops@example.com"}, data)
    text = yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(ConfigError) as info:
        load_text(text, "deploy.yaml")
    (problem,) = info.value.problems
    assert problem.path == ("server", "domains", 1)
    assert problem.line == text.splitlines().index("  - '*.shop.example.com'") + 1
    assert "DNS-01" in problem.message and "tls.cert and tls.key" in problem.message


def test_a_wildcard_name_with_an_own_certificate_or_without_tls_is_accepted() -> None:
    domains = ["shop.example.com", "*.shop.example.com"]
    data = with_value(("server", "domains"), domains)
    assert accepted(data).server.domains == domains
    own = with_value(("server", "tls"), {"cert": "certs/site.pem", "key": "certs/site.key"}, data)
    assert accepted(own).server.domains == domains


# --- -e sandbox stands its hosts in for deploy.yaml's, roles and service hosts included --------------

PRODUCTION = """\
app: {name: shop, wsgi: "shop:app"}
server:
  domains: [shop.example.com]
  hosts:
    - {address: 192.0.2.10, roles: [web]}
    - {address: 192.0.2.11, roles: [web, worker]}
    - {address: 192.0.2.12, roles: [db]}
processes:
  worker: {command: rq worker, hosts: worker}
  sweeper: {command: python sweep.py, hosts: db, singleton: true}
services:
  postgres: {host: 192.0.2.12}
"""


def _rehearsed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, addresses: list[str]) -> Config:
    monkeypatch.setenv("DEPLOY_SANDBOX_DIR", str(tmp_path))
    (tmp_path / "environment.yaml").write_text(f"server:\n  hosts: {json.dumps(addresses)}\n")
    return load_text(PRODUCTION, "deploy.yaml", "sandbox")


def test_sandbox_hosts_take_the_roles_and_services_of_the_hosts_they_stand_in_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = _rehearsed(monkeypatch, tmp_path, ["10.87.1.2", "10.87.2.2", "10.87.3.2"])
    assert [(h.address, h.roles) for h in config.server.hosts] == [
        ("10.87.1.2", ["web"]),
        ("10.87.2.2", ["web", "worker"]),
        ("10.87.3.2", ["db"]),
    ]
    assert config.services.postgres is not None and config.services.postgres.host == "10.87.3.2"
    assert config.process_hosts("sweeper") == ["10.87.3.2"]


def test_a_smaller_sandbox_gives_its_last_host_the_roles_of_the_hosts_it_has_no_room_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = _rehearsed(monkeypatch, tmp_path, ["10.87.1.2", "10.87.2.2"])
    assert [(h.address, h.roles) for h in config.server.hosts] == [
        ("10.87.1.2", ["web"]),
        ("10.87.2.2", ["web", "worker", "db"]),
    ]
    assert config.services.postgres is not None and config.services.postgres.host == "10.87.2.2"
