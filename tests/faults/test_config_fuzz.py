"""Configuration fuzzing: every generated deploy.yaml is rejected with clear one-line problems, or
renders configs that the real `nginx -t` and `systemd-analyze verify` accept; never a traceback.

Documents start from the playbooks (playbooks/*.yaml, the example app's deploy.yaml) and a small
base, and are mutated: values replaced with valid ones, hostile ones (`;`, braces, newlines, NUL,
unicode, shell and Jinja syntax, huge numbers, wrong types) or nested garbage, keys deleted or added,
then written as YAML and sometimes damaged on the way to bytes (a BOM, UTF-16, invalid UTF-8, control
characters, truncation); others are YAML attacks (alias bombs, self-referencing aliases, deep nesting,
100,000-digit numbers, tags, merge keys, several documents). Each goes through the real CLI entry
(`deploy render` and `deploy config`, in-process) and must exit 0 or 2, with one clear line per
problem naming the file. Every accepted config's rendered files then go through the real tools: the
Nginx sites one after another in one private namespace (tests/tools/nginx_jail.py), the systemd
units many per `systemd-analyze verify` call, identical renders once. Derandomized and without an
example database, so CI sees the same examples every run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.cli import main
from deploy.config.loader import ConfigError, load_text, parse_yaml
from deploy.render.render import render

REPO = Path(__file__).resolve().parents[2]
JAIL = REPO / "tests" / "tools" / "nginx_jail.py"

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare"),
    pytest.mark.skipif(
        not shutil.which("nginx") or not shutil.which("systemd-analyze"),
        reason="needs nginx, systemd-analyze",
    ),
]

#: The Done-when of issue #14: at least this many generated deploy.yaml files through the CLI.
EXAMPLES = 1000

BASE: dict[str, Any] = {
    "app": {
        "name": "flaskr",
        "wsgi": "flaskr:create_app()",
        "static": {"url": "/static", "dir": "flaskr/static"},
        "health": "/health",
        "env": {"LOG_LEVEL": "info"},
        "secrets": ["SECRET_KEY"],
        "shared": ["instance"],
        "release": ["flask --app flaskr init-db"],
    },
    "server": {
        "domains": ["flaskr.example.com"],
        "hosts": ["web1.example.com"],
        "user": "flaskr",
        "tls": False,
    },
    "gunicorn": {"workers": "auto", "timeout": 30},
    "nginx": {"client_max_body_size": "1m"},
}

# Read as deploy reads them: keys as written (yaml.safe_load would turn the hooks' `on:` into True).
SEEDS: list[dict[str, Any]] = [
    BASE,
    *(
        parse_yaml(path.read_text(encoding="utf-8"), path.name).data
        for path in [*sorted((REPO / "playbooks").glob("*.yaml")), REPO / "playbooks/flaskr/deploy.yaml"]
    ),
]

HOSTILE = st.sampled_from(
    [
        "a;b",
        "example.com; return 301 http://evil",
        "x}\nserver { listen 81; }",
        "line\nbreak",
        "trailing\n",
        "nul\x00byte",
        "tab\there",
        "esc\x1b[31m",
        "del\x7f",
        "nel\x85",
        "ls\u2028ps\u2029",
        "bom\ufeff",
        "ünïcödé.example",
        "例え.テスト",
        "",
        " ",
        "../../etc/passwd",
        "/",
        "/etc",
        "/tmp",
        ".",
        "..",
        "$(id)",
        "`id`",
        "{{ 7 * 7 }}",
        "{% raw %}",
        "%i%n%h",
        "%%",
        "'\"\\",
        "a" * 300,
        "-rf",
        "#comment",
        "*",
        "&anchor",
        "!!python/name:os.system",
    ]
) | st.text(max_size=12)
NUMBERS = st.sampled_from([0, -1, 10**30, 2**63, -(2**63), 1e308, float("inf"), float("nan"), 3.5, True])
JUNK = st.recursive(
    st.none() | st.booleans() | NUMBERS | HOSTILE,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
DOMAIN = st.from_regex(r"[a-z][a-z0-9-]{0,10}\.(example\.com|test|org)", fullmatch=True)
NAME = st.from_regex(r"[a-z][a-z0-9-]{1,12}", fullmatch=True)
SIZE = st.from_regex(r"[1-9][0-9]{0,2}[km]", fullmatch=True)
ENV_KEY = st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True)
ENV_VALUE = st.text(st.characters(exclude_categories=["Cs"]), max_size=16)

#: Key path -> values a user could mean.
VALID: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("app", "name"): NAME,
    ("app", "health"): st.from_regex(r"/[a-z]{0,10}", fullmatch=True),
    ("app", "env"): st.dictionaries(ENV_KEY, ENV_VALUE, max_size=3),
    ("app", "secrets"): st.lists(ENV_KEY, max_size=3),
    ("app", "shared"): st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), max_size=2),
    ("app", "release"): st.lists(st.text(max_size=20), max_size=2),
    ("server", "domains"): st.lists(DOMAIN, min_size=1, max_size=3),
    ("server", "user"): NAME,
    ("server", "tls"): st.sampled_from([False, {"email": "ops@example.com"}]),
    ("gunicorn", "workers"): st.sampled_from(["auto"]) | st.integers(1, 16),
    ("gunicorn", "timeout"): st.integers(1, 300),
    ("nginx", "client_max_body_size"): SIZE,
}

#: YAML that attacks the parser rather than the model. Each is just past its limit (nesting, digits):
#: the 100,000-character forms take PyYAML's pure-Python scanner seconds, and tests/unit/cli/test_common.py
#: has them.
ATTACKS = [
    "&a [*a]",
    "&a {x: *a}",
    "[" * 200,
    "[" * 3000 + "]" * 3000,
    "{a: " * 60 + "1" + "}" * 60,
    "9" * 4001,
    "9" * 4301,
    "0x" + "f" * 3400,
    ":".join(["59"] * 2300),
    "1e99999",
    "-.inf",
    ".nan",
    "2024-02-30",
    "!!timestamp nope",
    "!!float nope",
    "!!int nope",
    "!!binary '!!'",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!python/object/apply:os.system [id]",
    "!!map nope",
    "!<tag:yaml.org,2002:str> x",
    "!local x",
    "{<<: {a: 1}}",
    "{a: 1, a: 2}",
    "{? [a, b] : c}",
    "'unterminated",
    "|\n  block\n  text",
    "*undefined_alias",
]


def dump(doc: Any, **style: Any) -> str:
    """A document as YAML text; with libyaml's emitter when PyYAML has it (the generation is then a
    fraction of the run, not half of it)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(doc, Dumper=dumper, sort_keys=False, **style)  # type: ignore[no-any-return]


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        child = doc.get(key)
        if not isinstance(child, dict):
            child = doc[key] = {}
        doc = child
    doc[path[-1]] = value


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a document (mapping keys and list indexes)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn, hostile: bool) -> str:
    """A playbook or the base with valid values set and, when `hostile`, values replaced, keys
    deleted or added; as YAML text in one of its styles."""
    doc = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for path, valid in VALID.items():
        if draw(st.integers(0, 3)) == 0:
            _set(doc, path, copy.deepcopy(draw(valid)))  # sampled values are shared: copy
    if hostile:
        for _ in range(draw(st.integers(1, 3))):
            paths = _paths(doc)
            if not paths:
                break
            path = draw(st.sampled_from(paths))
            parent = _parent(doc, path)
            operation = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
            if operation == "replace":
                parent[path[-1]] = draw(st.one_of(HOSTILE, NUMBERS, JUNK))
            elif operation == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(JUNK)
    style = draw(st.sampled_from([False, None, True]))
    return dump(doc, allow_unicode=draw(st.booleans()), default_flow_style=style)


@st.composite
def attacked(draw: st.DrawFn) -> str:
    """A valid document with one YAML attack as the value of a key, or as the whole document."""
    attack = draw(st.sampled_from(ATTACKS))
    where = draw(st.sampled_from(["whole", "top", "app.name", "gunicorn.timeout", "server.domains"]))
    if where == "whole":
        return attack + "\n"
    doc = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    marker = "ATTACK_MARKER_0"
    if where == "top":
        doc["x-extra"] = marker
    else:
        _set(doc, tuple(where.split(".")), marker)
    text = dump(doc, default_flow_style=False)
    if draw(st.booleans()):
        text = "---\n" + text + draw(st.sampled_from(["", "...\n", "---\nother: 1\n"]))
    return text.replace(marker, attack.replace("\n", "\n" + " " * 4))


@st.composite
def encoded(draw: st.DrawFn, text: str) -> bytes:
    """`text` as the bytes of a file: UTF-8 mostly, or damaged on the way."""
    data = text.encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["utf-8"] * 6 + ["bom", "utf-16", "invalid", "control", "truncate"]))
    at = draw(st.integers(0, len(data)))
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "utf-16":
        return text.encode("utf-16", "surrogatepass")
    if kind == "invalid":
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]))
        return data[:at] + bad + data[at:]
    if kind == "control":
        char = draw(st.sampled_from([*map(chr, range(32)), "\x7f", "\x85", "\u2028", "\ufeff", "\ufffe"]))
        return data[:at] + char.encode("utf-8", "surrogatepass") + data[at:]
    if kind == "truncate":
        return data[:at]
    return data


#: Half the documents are valid configs (most accepted: the real tools judge their renders), the
#: rest hostile ones, YAML attacks and noise, damaged on the way to bytes or not.
DOCUMENTS = st.one_of(
    mutated(hostile=False).map(str.encode),
    mutated(hostile=False).map(str.encode),
    mutated(hostile=False).flatmap(encoded),
    mutated(hostile=True).flatmap(encoded),
    mutated(hostile=True).flatmap(encoded),
    attacked().flatmap(encoded),
    st.text(max_size=60).flatmap(encoded),
    st.binary(max_size=80),
)


@dataclass
class Accepted:
    """What the fuzz run accepted: rendered Nginx sites and systemd units, each once."""

    sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    units: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    examples: int = 0
    rejected: int = 0


def cli(*args: str) -> tuple[int, str, str]:
    """Run the real CLI entry in-process; exit code, stdout, stderr. An exception that escapes the
    CLI (not SystemExit) fails the test with its traceback."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_clear(code: int, out: str, err: str, file: str, data: bytes) -> None:
    """Exit 0, or exit 2 with one line per problem that names the file; never a traceback."""
    shown = data[:300]
    assert "Traceback" not in out + err, (shown, err)
    assert code in (0, 2), (code, shown, err)
    if code == 2:
        lines = err.splitlines()
        assert lines, shown
        for line in lines:
            assert line.startswith(f"error: {file}"), (shown, line)


def run_one(data: bytes, folder: Path, accepted: Accepted) -> None:
    """One document through `deploy render` (and, when accepted, `deploy config`); what it rendered
    into `accepted`."""
    accepted.examples += 1
    folder.mkdir()
    config_file = folder / "deploy.yaml"
    config_file.write_bytes(data)
    out = folder / "out"
    code, stdout, stderr = cli("render", "-c", str(config_file), "--out", str(out))
    assert_clear(code, stdout, stderr, str(config_file), data)
    if code != 0:
        accepted.rejected += 1
        return
    # What render accepts, config prints (its values dumped as YAML, secrets as their status).
    shown_code, shown, shown_err = cli("config", "-c", str(config_file))
    assert shown_code == 0 and "Traceback" not in shown + shown_err, (data[:300], shown_err)
    files = {
        p.relative_to(out).as_posix(): p.read_text(encoding="utf-8") for p in out.rglob("*") if p.is_file()
    }
    # Template units: the app's slots (Gunicorn) and one per process; job units are checked by RND008.
    templates = [path for path in files if path.startswith("systemd/") and path.endswith("@.service")]
    [app_unit] = [path for path in templates if "Gunicorn)" in files[path]]
    app = app_unit.removeprefix("systemd/").removesuffix("@.service")
    site = {"app": app, "files": {k: v for k, v in files.items() if k.startswith("nginx/")}}
    accepted.sites.setdefault(_digest(site), site)
    for unit_path in templates:
        name = unit_path.removeprefix("systemd/").removesuffix("@.service")
        accepted.units.setdefault(_digest([name, files[unit_path]]), (name, files[unit_path], data[:2000]))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def nginx_t(sites: list[dict[str, Any]], tmp: Path) -> list[dict[str, Any]]:
    """`nginx -t` for each site, one after another in one private namespace."""
    (tmp / "scratch").mkdir(parents=True)
    spec = tmp / "batch.json"
    spec.write_text(json.dumps({"scratch": str(tmp / "scratch"), "batch": sites}))
    done = subprocess.run(
        ["unshare", "--mount", "--net", "--fork", sys.executable, str(JAIL), str(spec)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)["batch"]
    return results


def _exec_start(unit: str) -> str:
    """The binary a rendered unit's ExecStart runs, for the blue slot (`%i` and `%%` expanded)."""
    found = re.search(r"^ExecStart=[-@+!:]*(\S+)", unit, re.MULTILINE)
    assert found, unit
    return found[1].replace("%i", "blue").replace("%%", "%")


def systemd_verify(units: list[tuple[str, str]], tmp: Path) -> dict[str, list[str]]:
    """`systemd-analyze verify` over many units: rounds of units with distinct names, each round in
    one call against a scratch root (--root) that holds the system's units and each ExecStart binary.
    The output about each unit, by name; nothing for a unit that verifies clean."""
    root = tmp / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    unit_dir = root / "etc/systemd/system"
    rounds: list[dict[str, str]] = []
    for name, text in units:
        free = next((r for r in rounds if name not in r), None)
        if free is None:
            free = {}
            rounds.append(free)
        free[name] = text
    problems: dict[str, list[str]] = {}
    for batch in rounds:
        shutil.rmtree(unit_dir, ignore_errors=True)
        unit_dir.mkdir(parents=True)
        for name, text in batch.items():
            (unit_dir / f"{name}@.service").write_text(text, encoding="utf-8")
            binary = root / os.path.normpath(_exec_start(text)).lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
        done = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", *(f"{name}@blue.service" for name in batch)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        # systemd names the unit ("a@blue.service: ...") or its file (".../a@.service:3: ...").
        for line in done.stderr.splitlines():
            found = re.search(r"(?:^|/)([a-z0-9-]+)@", line)
            problems.setdefault(found[1] if found else "(no unit named)", []).append(line)
        if done.returncode != 0 and not done.stderr:
            problems.setdefault("(no unit named)", []).append(done.stdout)
    return problems


QUIET = list(HealthCheck)

#: A site and a unit that the tools must reject: they prove a batch can fail.
BROKEN_SITE = {"app": "zz-broken", "files": {"nginx/zz-broken.conf": "server { no_such_directive on; }\n"}}
BROKEN_UNIT = ("zz-broken", "[Service]\nExecStart=/srv/zz-broken/bin/run\nRestart=sometimes\n")


def test_fuzzed_configs_exit_0_or_2_and_accepted_ones_pass_nginx_and_systemd(tmp_path: Path) -> None:
    accepted = Accepted()
    counter = iter(range(10**9))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=QUIET,
    )
    @given(DOCUMENTS)
    def fuzz(data: bytes) -> None:
        with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
            run_one(data, Path(scratch) / str(next(counter)), accepted)

    fuzz()
    assert accepted.examples >= 1000, accepted.examples
    valid = accepted.examples - accepted.rejected
    # Enough accepted configs for the real tools to judge, and enough rejected to have tried.
    assert valid >= 150 and accepted.rejected >= 500, (valid, accepted.rejected)

    sites = [*accepted.sites.values(), BROKEN_SITE]
    results = nginx_t(sites, tmp_path / "nginx")
    assert results[-1]["returncode"] != 0, results[-1]
    failed = [
        (site["app"], result["output"][-600:])
        for site, result in zip(sites[:-1], results[:-1], strict=True)
        if result["returncode"] != 0
    ]
    assert not failed, failed

    units = [(name, text) for name, text, _data in accepted.units.values()]
    problems = systemd_verify([*units, BROKEN_UNIT], tmp_path / "systemd")
    assert "zz-broken" in problems, problems
    del problems["zz-broken"]
    assert not problems, problems
    print(
        f"\n{accepted.examples} documents: {accepted.rejected} rejected, {valid} accepted; "
        f"{len(accepted.sites)} distinct sites passed nginx -t, {len(accepted.units)} distinct units "
        "passed systemd-analyze verify"
    )


@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=QUIET)
@given(mutated(hostile=True) | attacked())
def test_loader_rejects_clearly_or_accepts_and_renders(text: str) -> None:
    """The loader's own answer (no CLI): a Config that renders, or problems that each name the file
    and fit on one line, and the line of their key wherever the file has that key."""
    try:
        config = load_text(text, "deploy.yaml")
    except ConfigError as error:
        assert error.problems
        try:
            lines = parse_yaml(text, "deploy.yaml").lines
        except ConfigError:
            lines = {}  # not YAML: the problem is where the parser stopped
        for problem in error.problems:
            assert problem.file == "deploy.yaml" and problem.message.strip(), problem
            assert "\n" not in str(problem), problem
            if problem.path and problem.path in lines:
                assert str(problem).startswith(f"deploy.yaml:{lines[problem.path]}: "), (problem, text)
        return
    render(config)
