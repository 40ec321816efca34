"""deploy.yaml validation asserted in process, exactly (benchmarks/mutation.py: model, loader).

The mutation runs leave out the tests that start `python -m deploy` (seconds each); these say in
process what those say through a process: a bad deploy.yaml is one line per problem naming file,
line and key, exit code 2, never a traceback; and they pin the exact words and line numbers of the
loader's messages, which mutants of the loader and the model's helpers change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from click.testing import CliRunner

from deploy.cli import main
from deploy.config import csp
from deploy.config.document import (
    MAX_BYTES,
    Document,
    merge,
    parse_yaml,
    read_bytes,
    read_text,
    show,
)
from deploy.config.loader import (
    ConfigError,
    _expected,
    _join_alternatives,
    _model_keys,
    _overlay_lines,
    _submodel,
    find_secret,
    known_secrets,
    line_of,
    load,
    load_text,
    parse_dotenv,
    problem_at,
    read_secrets,
    secret_status,
)
from deploy.config.model import Config
from deploy.config.model.base import _alternatives, _strings
from deploy.config.redact import MIN_SECRET_LENGTH
from deploy.config.sandbox_overlay import _sandbox_acme, sandbox_environment_file

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
        load_text(text, "deploy.yaml", environment)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(here)


@pytest.mark.parametrize(
    ("line", "replace", "expected"),
    [
        (
            2,
            ("  name: shop\n", "  name: Shop!\n"),
            "error: deploy.yaml:2: app.name: expected a short lower-case name: letters, digits and hyphens,"
            " starting with a letter, got 'Shop!'\n",
        ),
        (
            7,
            ("[web1.example.com]", "[web1.example.com, web1.example.com]"),
            "error: deploy.yaml:7: server.hosts",
        ),
        (
            4,
            ("  secrets:", "  secrest:"),
            "error: deploy.yaml:4: app.secrest: unknown key 'secrest'; did you",
        ),
    ],
)
def test_the_cli_names_file_line_and_key_on_one_line_and_exits_2(
    project: Path, line: int, replace: tuple[str, str], expected: str
) -> None:
    (project / "deploy.yaml").write_text(BASE.replace(*replace), encoding="utf-8")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(expected), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# --- the model's helpers: exact limits and messages -----------------------------------------------


def _hosts(address: str) -> str:
    """The address in the mapping form (the string form's user@host:port parsing comes first)."""
    return BASE.replace("[web1.example.com]", f"[{{address: {json.dumps(address)}}}]")


@pytest.mark.parametrize(
    "address", ["10.0.0.255", "255.255.255.0", "0.0.0.0", "[::1]", "[FE80::A:b]", "[::ffff:10.0.0.1]"]
)
def test_an_ipv4_address_up_to_255_and_a_bracketed_ipv6_address_are_hosts(address: str) -> None:
    assert load_text(_hosts(address)).server.hosts[0].address == address


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("10.0.0.256", "expected an IPv4 address or a host name, got '10.0.0.256'"),
        ("256.0.0.1", "expected an IPv4 address or a host name, got '256.0.0.1'"),
    ],
)
def test_an_ipv4_part_above_255_is_refused_with_its_message(address: str, message: str) -> None:
    assert problems(_hosts(address)) == [f"deploy.yaml:7: server.hosts[0].address: {message}"]


@pytest.mark.parametrize("address", ["[g::1]", "[::1g]", "[::1", "::1]", "a1:2b", "[]", "[::1]x"])
def test_anything_else_with_brackets_or_colons_is_judged_as_a_host_name_and_refused(address: str) -> None:
    (problem,) = problems(_hosts(address))
    assert problem.startswith("deploy.yaml:7: server.hosts[0].address: expected a domain name ("), problem


@pytest.mark.parametrize("value", ['say "hi"', "C:\\temp", "$host", "a$", "\\"])
def test_a_header_value_with_a_quote_a_backslash_or_a_dollar_is_refused(value: str) -> None:
    text = BASE + f"nginx:\n  extra_headers: {{X-Note: {json.dumps(value)}}}\n"
    assert problems(text) == [
        "deploy.yaml:9: nginx.extra_headers.X-Note: a header value must not contain double quotes, "
        'backslashes or "$"'
    ]


def test_a_plain_header_value_is_kept() -> None:
    config = load_text(BASE + "nginx:\n  extra_headers: {X-Note: 'max-age=5, private'}\n")
    assert config.nginx.extra_headers == {"X-Note": "max-age=5, private"}


def test_an_unknown_csp_directive_lists_the_known_ones() -> None:
    (problem,) = problems(BASE + "nginx:\n  csp_sources: {scripts-src: [cdn.example.com]}\n")
    assert problem == (
        "deploy.yaml:9: nginx.csp_sources.scripts-src: expected a CSP directive "
        f"({', '.join(csp.FALLBACK)}), got 'scripts-src'"
    )


def test_a_csp_source_is_refused_with_what_is_wrong_with_it() -> None:
    (bad,) = problems(BASE + "nginx:\n  csp_sources: {script-src: ['https://']}\n")
    assert bad == (
        "deploy.yaml:9: nginx.csp_sources.script-src[0]: expected a CSP source such as 'self', "
        "'sha256-<base64>', https:, cdn.example.com or https://*.example.com, got 'https://'"
    )
    (nonce,) = problems(BASE + "nginx:\n  csp_sources: {script-src: [\"'nonce-abc'\"]}\n")
    assert nonce == (
        "deploy.yaml:9: nginx.csp_sources.script-src[0]: a nonce written into deploy.yaml is the same on "
        "every response, so it protects nothing; list the inline script's hash ('sha256-...') instead "
        "(deploy check SEC021 prints it)"
    )


def test_a_fixed_worker_count_is_used_whatever_the_cores() -> None:
    config = load_text(BASE + "gunicorn: {workers: 3}\n")
    assert (config.workers_for(8), config.workers_for(None)) == (3, 3)
    auto = load_text(BASE.replace("  hosts:", "  cores: 4\n  hosts:"))
    assert (auto.workers_for(None), auto.workers_for(1)) == (9, 3)


def test_a_control_character_is_named_by_its_unicode_name_lower_case_or_as_a_control_character() -> None:
    overlay = BASE + 'environments:\n  prod: {app: {env: {X: "a\\x1bb"}}}\n'
    assert problems(overlay) == [
        "deploy.yaml:9: environments.prod.app.env.X: must be one line of plain text; found U+001B "
        "(a control character) at character 2"
    ]
    separator = BASE + 'systemd:\n  overrides: {"Nice\\u2028": "1"}\n'
    assert problems(separator) == [
        "deploy.yaml:9: systemd.overrides.'Nice\\u2028': must be one line of plain text; found U+2028 "
        "(line separator) at character 5"
    ]


def test_the_types_an_annotation_allows() -> None:
    assert _alternatives(Annotated[int, "meta"]) == [int]
    assert _alternatives(int | None) == [int]
    assert _alternatives(Annotated[str, "meta"] | list[int] | None) == [str, list[int]]
    assert _alternatives(type(None)) == []
    assert _alternatives(list[str]) == [list[str]]


def test_every_string_of_a_value_is_found_with_its_place_but_not_below_any() -> None:
    assert list(_strings(["a", "b"], list[str] | None, ("x",))) == [(("x", 0), "a"), (("x", 1), "b")]
    assert list(_strings(["a"], Annotated[list[Any], "meta"], ("x",))) == []
    assert list(_strings({"k": "v"}, dict[str, Any], ("x",))) == [(("x", "k"), "k")]
    assert list(_strings({"k": ["v"]}, object, ())) == [(("k",), "k"), (("k", 0), "v")]
    assert list(_strings({"k": "v"}, Any, ())) == []
    assert list(_strings({"k": "v"}, dict[Any, str], ())) == [(("k",), "v")]


@pytest.mark.parametrize(
    "domain", ["*.example.com", "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61]
)
def test_a_wildcard_over_a_name_and_a_name_of_253_characters_are_domains(domain: str) -> None:
    assert load_text(BASE.replace("[shop.example.com]", f"['{domain}']")).server.domains == [domain]


@pytest.mark.parametrize("domain", ["*.com", "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62])
def test_a_wildcard_over_a_top_level_domain_and_a_longer_name_are_refused(domain: str) -> None:
    assert problems(BASE.replace("[shop.example.com]", f"['{domain}']")) == [
        "deploy.yaml:6: server.domains[0]: expected a domain name (letters, digits, hyphens and dots, "
        "such as app.example.com; a wildcard only as the first label of a name with two more), "
        f"got {domain!r}"
    ]


# --- the loader: files, the sandbox overlay, hints, secrets ---------------------------------------


def _one(error: pytest.ExceptionInfo[ConfigError]) -> str:
    (problem,) = error.value.problems
    return str(problem)


def test_a_file_that_is_missing_a_folder_or_too_large_is_named_with_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        read_bytes(tmp_path / "nope")
    assert _one(missing) == f"{tmp_path / 'nope'}: no such file"
    with pytest.raises(ConfigError) as folder:
        read_bytes(tmp_path)
    assert _one(folder) == f"{tmp_path}: cannot read this file: Is a directory"
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(ConfigError) as large:
        read_text(big)
    assert _one(large) == f"{big}: this file is larger than 1 MiB; refusing to read it"
    big.write_bytes(b"#" * MAX_BYTES)
    assert read_bytes(big) == b"#" * MAX_BYTES


def test_load_reads_deploy_yaml_of_the_current_folder_by_default(project: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load()
    assert _one(missing) == (
        "deploy.yaml: no such file; run 'deploy init' to write one, or name another with -c FILE"
    )
    (project / "deploy.yaml").write_text(BASE + "environments:\n  staging: {gunicorn: {workers: 3}}\n")
    assert load().gunicorn.workers == "auto"
    staging = load(project / "deploy.yaml", "staging")
    assert (staging.gunicorn.workers, staging.environment) == (3, "staging")


def test_load_judges_the_project_files_unless_told_not_to(project: Path) -> None:
    (project / "public").mkdir()
    (project / "public" / "settings.py").write_text("SECRET = 1\n")
    (project / "deploy.yaml").write_text(BASE.replace("  secrets:", "  static: {dir: public}\n  secrets:"))
    with pytest.raises(ConfigError):
        load("deploy.yaml")
    assert load("deploy.yaml", project_files=False).app.static is not None


def test_the_sandbox_overlay_is_found_in_the_sandbox_dir_then_xdg_state_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEPLOY_SANDBOX_DIR", str(tmp_path / "box"))
    assert sandbox_environment_file() == tmp_path / "box" / "environment.yaml"
    monkeypatch.delenv("DEPLOY_SANDBOX_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert sandbox_environment_file() == tmp_path / "state" / "deploy/sandbox/environment.yaml"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sandbox_environment_file() == tmp_path / "home" / ".local/state/deploy/sandbox/environment.yaml"


ACME = BASE.replace("  hosts:", "  tls: {email: ops@example.com}\n  hosts:")
PEBBLE = "acme:\n  server: https://10.87.0.1:14000/dir\n  ca_bundle: /tmp/pebble.pem\n"


def _sandboxed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, overlay: str) -> Any:
    monkeypatch.setenv("DEPLOY_SANDBOX_DIR", str(tmp_path))
    (tmp_path / "environment.yaml").write_text("server:\n  hosts: [10.87.1.2]\n" + overlay)
    return load_text(text, environment="sandbox").server.tls


def test_the_sandbox_points_an_acme_tls_at_its_pebble(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tls = _sandboxed(monkeypatch, tmp_path, ACME, PEBBLE)
    assert (tls.email, tls.acme_server, tls.ca_bundle) == (
        "ops@example.com",
        "https://10.87.0.1:14000/dir",
        "/tmp/pebble.pem",
    )
    # Without an ACME server in the sandbox, no host can reach Let's Encrypt: no HTTPS there.
    assert _sandboxed(monkeypatch, tmp_path, ACME, "acme: false\n") is False
    # No acme section: the tls as written.
    assert _sandboxed(monkeypatch, tmp_path, ACME, "").acme_server is None


@pytest.mark.parametrize(
    "text",
    [
        BASE,  # tls: false (the default)
        BASE.replace("  hosts:", "  tls: {cert: c.pem, key: k.pem}\n  hosts:"),
        BASE.replace("  hosts:", "  tls: false\n  hosts:"),
    ],
)
def test_the_sandbox_leaves_a_tls_without_acme_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str
) -> None:
    expected = load_text(text).server.tls
    assert _sandboxed(monkeypatch, tmp_path, text, PEBBLE) == expected
    assert _sandboxed(monkeypatch, tmp_path, text, "acme: false\n") == expected


def test_acme_tls_with_an_own_certificate_is_not_touched_by_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEPLOY_SANDBOX_DIR", str(tmp_path))
    (tmp_path / "environment.yaml").write_text(PEBBLE)
    data = {"server": {"tls": {"email": "a@b.c", "cert": "c"}}}
    assert _sandbox_acme(data, {"server": "s", "ca_bundle": "c"}, Document("e", {})) == data
    data = {"server": {"tls": {"email": "a@b.c", "key": "k"}}}
    assert _sandbox_acme(data, False, Document("e", {})) == data
    assert _sandbox_acme({"server": "x"}, False, Document("e", {})) == {"server": "x"}
    assert _sandbox_acme({}, False, Document("e", {})) == {}


@pytest.mark.parametrize(
    "acme",
    [
        "acme: true\n",
        "acme: {server: https://x}\n",
        "acme: {server: https://x, ca_bundle: /c, extra: 1}\n",
        "acme: {server: https://x, ca_bundle: ''}\n",
        "acme: {server: 1, ca_bundle: /c}\n",
        "acme: [server, ca_bundle]\n",
    ],
)
def test_a_sandbox_acme_section_that_deploy_did_not_write_is_refused_with_its_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, acme: str
) -> None:
    with pytest.raises(ConfigError) as error:
        _sandboxed(monkeypatch, tmp_path, ACME, acme)
    assert _one(error) == (
        f"{tmp_path / 'environment.yaml'}:3: acme: expected false or a mapping with server and ca_bundle; "
        "run 'deploy sandbox up' again to rewrite this file"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "true"),
        (False, "false"),
        ({"a": 1}, "a mapping"),
        ([1], "a list"),
        (None, "nothing (null)"),
        ("x" * 78, repr("x" * 78)),
        ("x" * 79, f"'{'x' * 59}... (81 characters)"),
        (7, "7"),
    ],
)
def test_a_value_is_shown_as_yaml_writes_it_and_long_ones_are_cut(value: Any, shown: str) -> None:
    assert show(value) == shown


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "  tls: {emial: ops@example.com}\n",
            "deploy.yaml:7: server.tls.emial: unknown key 'emial'; did you mean 'email'?",
        ),
        (
            "  hosts: [{address: 10.0.0.1, prot: 22}]\n",
            "deploy.yaml:7: server.hosts[0].prot: unknown key 'prot'; did you mean 'port'?",
        ),
    ],
)
def test_an_unknown_key_deep_in_a_section_gets_a_hint_from_that_section(extra: str, expected: str) -> None:
    text = BASE.replace("  hosts: [web1.example.com]\n", "") + extra
    if "hosts" not in extra:
        text += "  hosts: [web1.example.com]\n"
    assert problems(text) == [expected]


def test_model_keys_are_those_of_the_section_at_the_path() -> None:
    assert _model_keys(Config, ("server", "tls")) == ["email", "cert", "key", "acme_server", "ca_bundle"]
    assert _model_keys(Config, ("server", "hosts", 0))[:1] == ["address"]
    assert _model_keys(Config, ("server", "nope")) == []
    assert _model_keys(Config, ("app", "name")) == []
    assert _submodel(int | None) is None
    assert _submodel(list[Annotated[str, "m"]] | None) is None


def test_line_of_finds_a_key_in_the_overlay_first(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(BASE + "environments:\n  prod:\n    app: {secrets: [A]}\n")
    assert line_of(path, None, ("app", "secrets")) == (4, ("app", "secrets"))
    assert line_of(path, "prod", ("app", "secrets")) == (10, ("environments", "prod", "app", "secrets"))
    assert line_of(path, "other", ("app", "secrets")) == (4, ("app", "secrets"))
    assert line_of(path, "prod", ("app", "name")) == (2, ("app", "name"))
    assert line_of(tmp_path / "gone.yaml", None, ("app",)) == (None, ("app",))


def test_secrets_that_are_too_short_are_named_with_their_length(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "deploy.yaml").write_text(BASE.replace("[SECRET_KEY]", "[SECRET_KEY, TOKEN]"))
    config = load(tmp_path / "deploy.yaml")
    monkeypatch.setenv("SECRET_KEY", "abc")
    monkeypatch.delenv("TOKEN", raising=False)
    with pytest.raises(ConfigError) as error:
        read_secrets(config, tmp_path, str(tmp_path / "deploy.yaml"))
    assert [str(p) for p in error.value.problems] == [
        f"{tmp_path / 'deploy.yaml'}:4: app.secrets: no value for TOKEN: set it in the environment or in "
        ".env (never in deploy.yaml)",
        f"{tmp_path / 'deploy.yaml'}:4: app.secrets: SECRET_KEY has 3 characters: too short to keep out of "
        f"deploy's output (a secret needs at least {MIN_SECRET_LENGTH} characters; shorter ones would be in "
        "ordinary words)",
    ]
    monkeypatch.setenv("TOKEN", "t" * MIN_SECRET_LENGTH)
    monkeypatch.setenv("SECRET_KEY", "s" * MIN_SECRET_LENGTH)
    assert read_secrets(config, tmp_path) == {
        "SECRET_KEY": "s" * MIN_SECRET_LENGTH,
        "TOKEN": "t" * MIN_SECRET_LENGTH,
    }


def test_where_each_secret_comes_from_never_its_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = load_text(BASE.replace("[SECRET_KEY]", "[SECRET_KEY, TOKEN, OTHER]"))
    (tmp_path / ".env").write_text("TOKEN=" + "q7Z!" * 10 + "\nOTHER=\n")
    monkeypatch.setenv("SECRET_KEY", "changeme")
    monkeypatch.delenv("TOKEN", raising=False)
    monkeypatch.delenv("OTHER", raising=False)
    status = secret_status(config, tmp_path)
    assert status["TOKEN"] == "(set in .env)"
    assert status["OTHER"] == "(missing)"
    assert (
        status["SECRET_KEY"].startswith("(set in the environment; weak: it ")
        and "changeme" not in status["SECRET_KEY"]
    )
    assert known_secrets(config, tmp_path) == {"SECRET_KEY": "changeme", "TOKEN": "q7Z!" * 10}
    assert find_secret("TOKEN", {"TOKEN": "x"}) == ("x", ".env")
    assert find_secret("SECRET_KEY", {"SECRET_KEY": "x"}) == ("changeme", "the environment")
    assert find_secret("NONE", {"NONE": ""}) is None


def test_a_dotenv_file_is_read_as_shells_and_docker_write_it(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\n\nexport A=1\nB = 'two words'\nC=\"x\"\nD='\nE=\"mixed'\n"
        'F=a=b\nnot a pair\n  G=  spaced  \nH=""\n'
    )
    assert parse_dotenv(env) == {
        "A": "1",
        "B": "two words",
        "C": "x",
        "D": "'",
        "E": "\"mixed'",
        "F": "a=b",
        "G": "spaced",
        "H": "",
    }
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(ConfigError):
        parse_dotenv(tmp_path / "link")  # a dangling link is a file that cannot be read, not no file


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"type": "missing", "msg": "Field required"}, "this key is required"),
        ({"type": "value_error", "msg": "Value error, it is wrong"}, "it is wrong"),
        ({"type": "string_type", "msg": "", "input": 5}, 'expected a string, got 5; quote it: "5"'),
        ({"type": "string_type", "msg": "", "input": True}, 'expected a string, got true; quote it: "true"'),
        ({"type": "string_type", "msg": "", "input": 1.5}, 'expected a string, got 1.5; quote it: "1.5"'),
        ({"type": "string_type", "msg": "", "input": [1]}, "expected a string, got a list"),
        ({"type": "int_type", "msg": "", "input": "x"}, "expected a whole number, got 'x'"),
        ({"type": "int_parsing", "msg": "", "input": "y"}, "expected a whole number, got 'y'"),
        ({"type": "bool_type", "msg": "", "input": 3}, "expected true or false, got 3"),
        ({"type": "bool_parsing", "msg": "", "input": "m"}, "expected true or false, got 'm'"),
        ({"type": "dict_type", "msg": "", "input": [1]}, "expected a mapping of keys to values, got a list"),
        ({"type": "model_type", "msg": "", "input": 1}, "expected a mapping of keys to values, got 1"),
        (
            {"type": "model_attributes_type", "msg": "", "input": "s"},
            "expected a mapping of keys to values, got 's'",
        ),
        ({"type": "list_type", "msg": "", "input": {}}, "expected a list, got a mapping"),
        (
            {"type": "literal_error", "msg": "Input should be 'a' or 'b'", "input": "c"},
            "expected 'a' or 'b', got 'c'",
        ),
        (
            {"type": "greater_than_equal", "msg": "Input should be greater than or equal to 1", "input": 0},
            "expected a value greater than or equal to 1, got 0",
        ),
        (
            {"type": "less_than_equal", "msg": "Input should be less than or equal to 9", "input": 10},
            "expected a value less than or equal to 9, got 10",
        ),
        (
            {"type": "greater_than", "msg": "Input should be greater than 0", "input": 0},
            "expected a value greater than 0, got 0",
        ),
        (
            {"type": "less_than", "msg": "Input should be less than 5", "input": 5},
            "expected a value less than 5, got 5",
        ),
        ({"type": "too_short", "msg": "List should have at least 1 item"}, "expected at least one item"),
        ({"type": "something_else", "msg": "as pydantic says it"}, "as pydantic says it"),
    ],
)
def test_each_kind_of_pydantic_error_is_said_as_deploy_yaml_is_written(
    error: dict[str, Any], expected: str
) -> None:
    assert _expected(error) == expected


def test_a_problem_about_a_whole_file_has_no_key_path(tmp_path: Path) -> None:
    for call in (lambda: read_text(tmp_path / "nope"), lambda: read_bytes(tmp_path)):
        with pytest.raises(ConfigError) as error:
            call()
        assert [p.path for p in error.value.problems] == [()]
    with pytest.raises(ConfigError) as missing:
        read_text(tmp_path / "nope")
    assert str(missing.value) == f"{tmp_path / 'nope'}: no such file"
    big = tmp_path / "big"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    for path in (big, tmp_path / "latin1"):
        with pytest.raises(ConfigError) as error:
            read_text(path)
        assert [p.path for p in error.value.problems] == [()]


def test_an_overlay_is_merged_key_by_key_and_anything_else_replaces() -> None:
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 9}, "e": 4}) == {
        "a": {"b": 9, "c": 2},
        "d": 3,
        "e": 4,
    }
    assert merge("x", {"a": 1}) == {"a": 1}
    assert merge({"a": 1}, 5) == 5
    assert merge({"a": 1}, [1]) == [1]


def test_an_overlays_own_lines_are_those_below_its_name() -> None:
    doc = parse_yaml(
        BASE + "environments:\n  prod:\n    app:\n      name: x\n  other: {app: {name: y}}\n", "d"
    )
    assert _overlay_lines(doc, "prod") == {("app",): 10, ("app", "name"): 11}
    assert _model_keys(Config, ("server", "hosts", 0, "address")) == []


def test_every_other_environment_is_judged_with_the_projects_files_and_each_is_reported(
    tmp_path: Path,
) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "settings.py").write_text("SECRET = 1\n")
    text = BASE + "environments:\n  prod: {app: {static: {dir: public}}}\n  qa: {gunicorn: {workers: 0}}\n"
    (tmp_path / "deploy.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load(tmp_path / "deploy.yaml")
    keys = [p.key for p in error.value.problems]
    assert (
        keys[0].startswith("environments.prod.app.static") and keys[1] == "environments.qa.gunicorn.workers"
    ), keys
    assert len(keys) == 2


def test_secrets_are_read_from_the_current_folder_by_default(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SECRET_KEY", "A_MISSING", "B_MISSING", "TOKEN"):
        monkeypatch.delenv(name, raising=False)
    (project / "deploy.yaml").write_text(
        BASE.replace("[SECRET_KEY]", "[A_MISSING, SECRET_KEY, B_MISSING, TOKEN]")
    )
    (project / ".env").write_text(
        "# SECRET_KEY=commented\nSECRET_KEY="
        + "Zq8vN3xR5tL0wB7mK2pY9cH4jD6fG1sA"
        + "\nTOKEN=XabcX"
        + "t" * 30
        + "X\n"
    )
    config = load()
    with pytest.raises(ConfigError) as error:
        read_secrets(config)
    assert str(error.value.problems[0]) == (
        "deploy.yaml:4: app.secrets: no value for A_MISSING, B_MISSING: set it in the environment or in .env "
        "(never in deploy.yaml)"
    )
    assert known_secrets(config) == {
        "SECRET_KEY": "Zq8vN3xR5tL0wB7mK2pY9cH4jD6fG1sA",
        "TOKEN": "XabcX" + "t" * 30 + "X",
    }
    assert secret_status(config) == {
        "A_MISSING": "(missing)",
        "SECRET_KEY": "(set in .env)",
        "B_MISSING": "(missing)",
        "TOKEN": "(set in .env)",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "deploy.yaml: this file is empty; expected the sections app: and server:"),
        ("# only a comment\n", "deploy.yaml: this file is empty; expected the sections app: and server:"),
        ("- a\n- b\n", "deploy.yaml:1: expected a mapping with the sections app: and server:"),
        ("a: &x [*x]\n", "deploy.yaml:1: a[0]: a YAML alias refers to a value that contains it"),
        (
            "base: &b {x: 1}\nother:\n  <<: *b\n",
            "deploy.yaml:3: other: YAML merge keys (<<) are not supported",
        ),
        ("? [a, b]\n: 1\n", "deploy.yaml:1: a key must be a plain string"),
        ("app: {}\nserver: {}\napp: {}\n", "deploy.yaml:3: app: this key is given twice"),
        (
            "a: 2024-02-30\n",
            "deploy.yaml:1: a: '2024-02-30' is not a valid YAML timestamp: day is out of range for month",
        ),
        (
            "a: !!int x\n",
            "deploy.yaml:1: a: 'x' is not a valid YAML int: invalid literal for int() with base 10: 'x'",
        ),
        ("a: " + "9" * 4001 + "\n", "deploy.yaml:1: a: expected a number of at most 4000 digits"),
        ("a: 0x" + "f" * 3400 + "\n", "deploy.yaml:1: a: expected a number of at most 4000 digits"),
        (
            "a: [\n",
            "deploy.yaml:2: this is not valid YAML: expected the node content, but found '<stream end>'",
        ),
        ("a: \x07\n", "deploy.yaml:1: this is not valid YAML: it contains the control character U+0007"),
        (
            "a: " + "[" * 60 + "]" * 60 + "\n",
            "deploy.yaml:1: this is not valid YAML: values are nested more than 50 levels deep",
        ),
    ],
)
def test_yaml_that_is_no_deploy_yaml_is_one_problem_with_its_line(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_an_overlay_and_an_environment_that_are_wrong_are_named_where_they_are_written() -> None:
    assert problems(BASE + "environments:\n  prod: [a]\n", "prod") == [
        "deploy.yaml:9: environments.prod: expected a mapping that overlays deploy.yaml's keys"
    ]
    assert problems(BASE + "environments:\n  prod: {}\n  qa: {}\n", "zz") == [
        "deploy.yaml:8: environments: no environment 'zz' in environments:; defined: prod, qa"
    ]
    assert problems(BASE + "environments:\n  prod: {}\n", "prd") == [
        "deploy.yaml:8: environments: no environment 'prd' in environments:; did you mean 'prod'?"
    ]
    assert problems(BASE, "prod") == ["deploy.yaml: environments: no environment 'prod' in environments:"]
    assert problems(BASE + "environments: [a]\n", "prod")[0].startswith(
        "deploy.yaml:8: environments: no environment"
    )
    # A key of the base file stays named as in the base file under an overlay.
    assert problems(BASE.replace("name: shop", "name: Shop") + "environments:\n  prod: {}\n", "prod")[
        0
    ].startswith("deploy.yaml:2: app.name: expected a short lower-case name")


def test_a_unions_branch_errors_are_joined_into_one_expectation() -> None:
    assert _join_alternatives(["expected 'auto', got 'x'", "expected a whole number, got 'x'"]) == (
        "expected 'auto' or a whole number, got 'x'"
    )
    assert _join_alternatives(["expected a list, got 5"]) == "expected a list, got 5"
    assert (
        _join_alternatives(["expected a list, got 5", "it is wrong"]) == "expected a list, got 5; it is wrong"
    )
    assert _join_alternatives(["expected a, got 1", "expected b"]) == "expected a, got 1; expected b"
    # The value itself holds ", got ": it is kept whole (it was cut at its last ", got ").
    value = "'x, got y'"
    assert _join_alternatives([f"expected 'auto', got {value}", f"expected a whole number, got {value}"]) == (
        f"expected 'auto' or a whole number, got {value}"
    )
    assert problems(BASE + 'gunicorn: {workers: "x, got y"}\n') == [
        "deploy.yaml:8: gunicorn.workers: expected 'auto' or a whole number, got 'x, got y'"
    ]
    # Branches that got different things are not merged into one "got".
    assert (
        _join_alternatives(["expected a, got 1", "expected b, got 2"])
        == "expected a, got 1; expected b, got 2"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "Shop",
            "expected a plain SQL name (lower-case letters, digits and underscores, starting with a letter"
            " or underscore, at most 63 characters, not pg_...), got 'Shop'",
        ),
        ("pg_shop", "not pg_...), got 'pg_shop'"),
        ("a" * 64, f"at most 63 characters, not pg_...), got '{'a' * 64}'"),
        ("template0", "'template0' is Postgres's own; choose another name (such as the app's name)"),
        ("postgres", "'postgres' is Postgres's own; choose another name (such as the app's name)"),
    ],
)
def test_a_database_not_a_plain_sql_name_or_postgress_own_is_refused(name: str, message: str) -> None:
    found = problems(BASE + f"services:\n  postgres:\n    database: {name}\n")
    assert len(found) == 1
    assert found[0].startswith("deploy.yaml:10: services.postgres.database: ")
    assert found[0].endswith(message)


def test_a_plain_sql_name_of_63_characters_is_a_database_name() -> None:
    name = "_" + "a" * 62
    config = load_text(BASE + f"services:\n  postgres:\n    database: {name}\n    user: pg\n")
    assert config.services.postgres is not None
    assert (config.services.postgres.database, config.services.postgres.user) == (name, "pg")


def test_a_problem_after_loading_names_the_line_of_its_key_or_its_closest_parent(tmp_path: Path) -> None:
    config = tmp_path / "deploy.yaml"
    config.write_text(
        BASE.replace("[web1.example.com]", "[]") + "environments:\n  prod:\n    server: {hosts: []}\n"
    )
    hosts = ("server", "hosts")
    assert str(problem_at(config, None, hosts, "expected at least one host")) == (
        f"{config}:7: server.hosts: expected at least one host"
    )
    # Written in the environment's overlay: named as written there.
    assert str(problem_at(config, "prod", hosts, "x")) == f"{config}:10: environments.prod.server.hosts: x"
    # Not written: the line of the closest parent that is; none written: the file alone.
    assert str(problem_at(config, None, ("server", "ssh", "key"), "x")) == f"{config}:5: server.ssh.key: x"
    assert str(problem_at(config, None, ("services", "postgres"), "x")) == f"{config}: services.postgres: x"
