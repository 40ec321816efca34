"""deploy.yaml loading: valid files load, every kind of mistake names file, line, key and expectation."""

from __future__ import annotations

import textwrap

import pytest

from deploy.config.loader import ConfigError, load, load_text, parse_dotenv, read_secrets

pytestmark = pytest.mark.unit

BASE = """\
app:
  name: shop
  wsgi: "shop:create_app()"
  secrets: [SECRET_KEY]
server:
  domains: [shop.example.com]
  hosts: [web1.example.com]
"""


def problems(text: str, environment: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(textwrap.dedent(text), "deploy.yaml", environment)
    return [str(p) for p in info.value.problems]


def test_minimal_config_has_safe_defaults() -> None:
    config = load_text(BASE)
    assert config.server.user == "deploy"
    assert config.gunicorn.workers == "auto"
    assert config.base_dir == "/srv/shop"
    assert config.workers_for(2) == 5
    assert config.workers_for(None) is None
    assert config.server.hosts[0].address == "web1.example.com"


def test_unknown_key_names_line_and_suggests() -> None:
    out = problems(BASE.replace("  secrets:", "  secrest:"))
    assert out == ["deploy.yaml:4: app.secrest: unknown key 'secrest'; did you mean 'secrets'?"]


def test_unknown_section_lists_choices_when_nothing_is_close() -> None:
    out = problems(BASE + "zzz: 1\n")
    assert len(out) == 1
    assert out[0].startswith("deploy.yaml:8: zzz: unknown key 'zzz'; expected one of: app, server,")


def test_wrong_type_says_what_was_expected() -> None:
    out = problems(BASE + "gunicorn: {workers: lots}\n")
    assert out == ["deploy.yaml:8: gunicorn.workers: expected 'auto' or a whole number, got 'lots'"]


def test_missing_required_key() -> None:
    out = problems(BASE.replace('  wsgi: "shop:create_app()"\n', ""))
    assert out == ["deploy.yaml:1: app.wsgi: this key is required"]


@pytest.mark.parametrize(
    "domain",
    ["shop.example.com;", "shop.example.com\\nserver_name evil", "a b.com", "-bad.com", "x" * 64 + ".com"],
)
def test_domains_that_would_inject_into_nginx_are_rejected(domain: str) -> None:
    out = problems(BASE.replace("[shop.example.com]", f'["{domain}"]'))
    assert len(out) == 1 and "server.domains[0]: expected a domain name" in out[0]
    assert out[0].startswith("deploy.yaml:6:")


@pytest.mark.parametrize(
    ("yaml_line", "key"),
    [
        ('nginx: {client_max_body_size: "16m; return 200"}', "nginx.client_max_body_size"),
        ("nginx: {content_security_policy: 'default-src \"self\"'}", "nginx.content_security_policy"),
        ("app2: 1", "app2"),
        ('server2: {base_dir: "/srv/../etc"}', "server2"),
    ],
)
def test_values_that_would_break_a_config_file_are_rejected(yaml_line: str, key: str) -> None:
    out = problems(BASE + yaml_line + "\n")
    assert any(f" {key}" in p for p in out), out


def test_static_dir_cannot_escape_the_project() -> None:
    out = problems(
        BASE.replace("  secrets: [SECRET_KEY]\n", "  secrets: [SECRET_KEY]\n  static: {dir: ../etc}\n")
    )
    assert out[0].startswith("deploy.yaml:5: app.static.dir: expected a relative path inside the project")


def test_env_value_with_newline_is_rejected() -> None:
    out = problems(BASE.replace("  secrets:", '  env: {A: "x\\ny"}\n  secrets:'))
    assert out == [
        "deploy.yaml:4: app.env.A: must be one line of plain text; found U+000A (a newline) at character 2"
    ]


def test_debug_in_production_env_is_refused() -> None:
    out = problems(BASE.replace("  secrets:", "  env: {FLASK_DEBUG: '1'}\n  secrets:"))
    assert "FLASK_DEBUG='1' turns on the debugger in production" in out[0]


def test_secret_named_in_env_is_refused() -> None:
    out = problems(BASE.replace("  secrets:", "  env: {SECRET_KEY: hunter2}\n  secrets:"))
    assert "listed in both app.env and app.secrets" in out[0]
    assert "hunter2" not in out[0]


def test_app_user_root_is_refused() -> None:
    out = problems(BASE + "  user: root\n")
    assert out == [
        "deploy.yaml:8: server.user: the app must not run as root; use a dedicated user such as 'deploy'"
    ]


def test_tls_forms() -> None:
    assert load_text(BASE + "  tls: false\n").server.tls is False
    assert load_text(BASE + "  tls: {email: a@b.co}\n").server.tls.acme  # type: ignore[union-attr]
    own = load_text(BASE + "  tls: {cert: c.pem, key: k.pem}\n").server.tls
    assert own is not False and not own.acme
    assert "give both or neither" in problems(BASE + "  tls: {cert: c.pem}\n")[0]
    assert "tls: true is not enough" in problems(BASE + "  tls: true\n")[0]


def test_host_strings() -> None:
    config = load_text(BASE.replace("[web1.example.com]", "[admin@10.0.0.5:2222, '[::1]', web2]"))
    first = config.server.hosts[0]
    assert (first.user, first.address, first.port) == ("admin", "10.0.0.5", 2222)
    assert config.server.hosts[1].address == "[::1]"
    assert (
        "expected an IPv4 address or a host name"
        in problems(BASE.replace("[web1.example.com]", "[999.1.1.1]"))[0]
    )


def test_yaml_keys_are_taken_as_written() -> None:
    """YAML 1.1 reads 'on' as true; a hook's `on:` key must still be 'on'."""
    config = load_text(BASE + "hooks:\n  post_push:\n    - {run: echo hi, on: hosts}\n")
    assert config.hooks.post_push[0].on == "hosts"


def test_broken_yaml_names_the_line() -> None:
    out = problems("app:\n  name: [x\nserver: {}\n")
    assert len(out) == 1 and out[0].startswith("deploy.yaml:3: this is not valid YAML")


def test_duplicate_key() -> None:
    assert problems(BASE + "server: {}\n")[0] == "deploy.yaml:8: server: this key is given twice"


def test_several_problems_are_all_reported() -> None:
    out = problems(BASE.replace("name: shop", "name: Shop!") + "nginx: {gzip: maybe}\n")
    assert len(out) == 2
    assert out[0].startswith("deploy.yaml:2: app.name:")
    assert out[1] == "deploy.yaml:8: nginx.gzip: expected true or false, got 'maybe'"


def test_environment_overlay_merges_and_points_at_its_own_lines() -> None:
    text = (
        BASE
        + "environments:\n  staging:\n    server: {hosts: [s1.example.com]}\n    gunicorn: {workers: 0}\n"
    )
    config = load_text(text.replace("{workers: 0}", "{workers: 2}"), environment="staging")
    assert [h.address for h in config.server.hosts] == ["s1.example.com"]
    assert config.server.domains == ["shop.example.com"]
    assert config.gunicorn.workers == 2
    out = problems(text, environment="staging")
    assert out == [
        "deploy.yaml:11: environments.staging.gunicorn.workers: expected 'auto' or a value greater than "
        "or equal to 1, got 0"
    ]


def test_every_environment_is_validated_whichever_is_selected() -> None:
    """A typo in the production overlay fails `deploy config`/`check` in CI, not production's push."""
    text = (
        BASE
        + "environments:\n  staging:\n    server: {hosts: [s1.example.com]}\n"
        + "  production:\n    server:\n      hostz: [p1.example.com]\n"
    )
    expected = (
        "deploy.yaml:13: environments.production.server.hostz: unknown key 'hostz'; did you mean 'hosts'?"
    )
    assert problems(text) == [expected]
    assert problems(text, environment="staging") == [expected]
    assert problems(text, environment="production") == [expected]
    assert load_text(text.replace("hostz", "hosts")).server.hosts[0].address == "web1.example.com"
    assert problems(BASE + "environments:\n  ci: [a]\n") == [
        "deploy.yaml:9: environments.ci: expected a mapping of keys to values, got a list"
    ]


def test_unknown_environment_suggests() -> None:
    text = BASE + "environments:\n  staging: {}\n"
    assert "did you mean 'staging'?" in problems(text, environment="stagin")[0]


def test_sandbox_environment_comes_from_sandbox_state(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEPLOY_SANDBOX_DIR", str(tmp_path))
    assert "run 'deploy sandbox up' first" in problems(BASE, environment="sandbox")[0]
    (tmp_path / "environment.yaml").write_text("server:\n  hosts: [10.87.1.2]\n  ssh: {user: root}\n")
    config = load_text(BASE, environment="sandbox")
    assert [h.address for h in config.server.hosts] == ["10.87.1.2"]


def test_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "deploy.yaml")
    assert "no such file; run 'deploy init'" in str(info.value)


def test_secrets_come_from_environment_then_dotenv(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = load_text(BASE.replace("[SECRET_KEY]", "[SECRET_KEY, API_TOKEN]"))
    (tmp_path / ".env").write_text("# comment\nexport SECRET_KEY='from-dotenv'\nAPI_TOKEN=tok\n")
    monkeypatch.setenv("API_TOKEN", "from-env")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    assert read_secrets(config, tmp_path) == {"SECRET_KEY": "from-dotenv", "API_TOKEN": "from-env"}
    (tmp_path / ".env").unlink()
    with pytest.raises(ConfigError) as info:
        read_secrets(config, tmp_path)
    assert "no value for SECRET_KEY" in str(info.value)
    assert parse_dotenv(tmp_path / "nope") == {}


def test_an_empty_secret_is_no_secret(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`SECRET_KEY= deploy push` (a CI secret that is not defined) must not blank the key on every host."""
    (tmp_path / "deploy.yaml").write_text(BASE)
    config = load(tmp_path / "deploy.yaml")
    (tmp_path / ".env").write_text("SECRET_KEY=from-dotenv\n")
    monkeypatch.setenv("SECRET_KEY", "")
    assert read_secrets(config, tmp_path) == {"SECRET_KEY": "from-dotenv"}  # the empty variable is skipped
    (tmp_path / ".env").write_text("SECRET_KEY=\n")
    with pytest.raises(ConfigError) as info:
        read_secrets(config, tmp_path, str(tmp_path / "deploy.yaml"))
    assert str(info.value.problems[0]) == (
        f"{tmp_path / 'deploy.yaml'}:4: app.secrets: no value for SECRET_KEY (empty in the environment "
        "and in .env): set it in the environment or in .env (never in deploy.yaml)"
    )


def test_systemd_overrides_accept_yaml_booleans() -> None:
    overrides = "{MemoryDenyWriteExecute: false, PrivateDevices: true}"
    config = load_text(BASE + f"systemd:\n  overrides: {overrides}\n")
    assert config.systemd.overrides == {"MemoryDenyWriteExecute": "no", "PrivateDevices": "yes"}
    assert "cannot be overridden" in problems(BASE + "systemd:\n  overrides: {User: root}\n")[0]


def test_extra_headers_cannot_redefine_managed_headers() -> None:
    out = problems(BASE + "nginx:\n  extra_headers: {x-frame-options: SAMEORIGIN}\n")
    assert out[0].startswith("deploy.yaml:9: nginx.extra_headers: x-frame-options is set by deploy already")


@pytest.mark.parametrize("name", ["nginx", "postgresql", "sshd", "systemd-logind", "www-data"])
def test_system_names_are_reserved(name: str) -> None:
    out = problems(BASE.replace("name: shop", f"name: {name}"))
    assert "is the name of a system service or account" in out[0]


def test_strict_types_and_duplicates() -> None:
    assert "expected a whole number, got true" in problems(BASE + "gunicorn: {timeout: true}\n")[0]
    assert (
        "'shop.example.com' is listed twice"
        in problems(BASE.replace("[shop.example.com]", "[shop.example.com, shop.example.com]"))[0]
    )
    out = problems(BASE.replace("  secrets:", "  env: {WORKERS: 5}\n  secrets:"))
    assert out == ['deploy.yaml:4: app.env.WORKERS: expected a string, got 5; quote it: "5"']


@pytest.mark.parametrize("url", ["/", "/.well-known/static"])
def test_static_url_must_be_its_own_prefix(url: str) -> None:
    out = problems(BASE.replace("  secrets:", f"  static: {{url: '{url}'}}\n  secrets:"))
    assert "app.static.url" in out[0]


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    out = problems("\n".join(lines) + "\n")
    assert "expands to more than" in out[0]


def test_non_utf8_file_names_the_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "deploy.yaml").write_bytes(b"app:\n  name: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "deploy.yaml")
    assert str(info.value.problems[0]).endswith(
        "deploy.yaml:2: this file is not UTF-8 text; save it as UTF-8"
    )
