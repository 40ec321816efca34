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
from deploy.config.loader import ConfigError, load_text
from deploy.config.model import _alternatives, _strings

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


@pytest.mark.parametrize("address", ["[g::1]", "[::1", "::1]", "a1:2b", "[]", "[::1]x"])
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
