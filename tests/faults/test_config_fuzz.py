"""Configuration fuzzing: every generated deploy.yaml is rejected with clear problems, or renders configs
that pass `nginx -t` and `systemd-analyze verify`; never a traceback.

Documents start from the example app's deploy.yaml and replace values with valid ones, hostile ones
(`;`, braces, newlines, NUL, unicode, shell and Jinja syntax, huge numbers, wrong types) or nested
garbage, and add unknown keys. Derandomized and without an example database, so CI sees the same
examples every run.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.config import Config
from deploy.facts import HostFacts
from deploy.loader import ConfigError, load_text
from deploy.render import render
from tests.hosts.pushkit import REPO
from tests.tools.test_nginx import jail
from tests.tools.test_systemd import analyze

pytestmark = pytest.mark.faults

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

HOSTILE = st.sampled_from(
    [
        "a;b",
        "example.com; return 301 http://evil",
        "x}\nserver { listen 81; }",
        "line\nbreak",
        "nul\x00byte",
        "ünïcödé.example",
        "例え.テスト",
        "",
        " ",
        "../../etc/passwd",
        "$(id)",
        "`id`",
        "{{ 7 * 7 }}",
        "%i%n%h",
        "'\"\\",
        "a" * 300,
        "-rf",
        "#comment",
        "*",
    ]
) | st.text(max_size=12)
NUMBERS = st.sampled_from([0, -1, 10**30, 2**63, 1e308, float("inf"), 3.5, True])
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


QUIET = list(HealthCheck)


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


@st.composite
def documents(draw: st.DrawFn, hostile: bool) -> str:
    doc = copy.deepcopy(BASE)
    for path, valid in VALID.items():
        if draw(st.booleans()):
            choices = st.one_of(valid, HOSTILE, JUNK) if hostile else valid
            _set(doc, path, draw(choices))
    if hostile and draw(st.booleans()):
        where = draw(st.sampled_from([(), ("app",), ("server",), ("nginx",)]))
        _set(doc, (*where, draw(st.text(min_size=1, max_size=8))), draw(JUNK))
    if hostile and draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=60))  # not even YAML of the right shape
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def check(text: str) -> Config | None:
    """The loader's answer: a Config, or None after checking that every problem is clear."""
    try:
        config = load_text(text, "deploy.yaml")
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.file == "deploy.yaml" and problem.message.strip(), problem
        return None
    render(config)  # rendering a valid config never raises
    return config


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(documents(hostile=True))
def test_loader_rejects_clearly_or_accepts_and_renders(text: str) -> None:
    check(text)


@settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=QUIET)
@given(documents(hostile=False))
def test_accepted_configs_pass_nginx_t_and_systemd_analyze_verify(text: str) -> None:
    config = check(text)
    if config is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        site_dir = Path(tmp) / "n"
        site_dir.mkdir()
        nginx = jail(site_dir, config, HostFacts())
        assert nginx["nginx_t"]["returncode"] == 0, text + nginx["nginx_t"]["output"]
        unit_dir = Path(tmp) / "u"
        unit_dir.mkdir()
        done = analyze(unit_dir, config, "verify")
        assert done.returncode == 0 and done.stderr == "", text + done.stderr


@settings(max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=QUIET)
@given(documents(hostile=True))
def test_cli_exits_2_without_a_traceback(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deploy.yaml"
        path.write_text(text, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "deploy", "config", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode in (0, 2), done.stdout + done.stderr
    if done.returncode == 2:
        assert "deploy.yaml" in done.stderr, done.stderr
