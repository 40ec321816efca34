"""Content-Security-Policy: the strict default, sources added from deploy.yaml, and what a template loses."""

from __future__ import annotations

import base64
import hashlib
import textwrap

import pytest

from deploy.loader import ConfigError, load_text
from deploy.render import render

pytestmark = pytest.mark.unit

FLASKR = """\
app:
  name: flaskr
  wsgi: "flaskr:create_app()"
  secrets: [SECRET_KEY]
server:
  domains: [flaskr.example.com]
  user: flaskr
  tls: {email: ops@example.com}
"""


def sent_policy(extra: str = "") -> str:
    """The Content-Security-Policy value of the rendered Nginx site."""
    cfg = load_text(FLASKR + textwrap.dedent(extra), "deploy.yaml", None)
    snippet = render(cfg)["nginx/snippets/flaskr-security-headers.conf"]
    line = next(x for x in snippet.splitlines() if x.startswith("add_header Content-Security-Policy "))
    return line.split('"')[1]


def directives(policy: str) -> dict[str, list[str]]:
    return {p.split()[0]: p.split()[1:] for p in policy.split(";") if p.strip()}


def sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# --- the policy deploy sends ---------------------------------------------------------------------


def test_default_policy_starts_from_none_and_lists_what_a_flask_page_loads() -> None:
    policy = directives(sent_policy())
    assert policy["default-src"] == ["'none'"]  # the MDN Observatory's +10 form
    for fetch in ("script-src", "style-src", "font-src", "connect-src", "manifest-src"):
        assert policy[fetch] == ["'self'"], fetch
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    everything = {s for sources in policy.values() for s in sources}
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "https:", "http:"} & everything


def test_csp_sources_add_hashes_and_hosts_to_the_default_policy() -> None:
    policy = directives(
        sent_policy(
            """\
            nginx:
              csp_sources:
                script-src: ["'sha256-q1kS5pFPSPAgxq2JFkkFo6TdDLCt4ahWOn4dNXHzmBs='", https://cdn.example.com]
                font-src: [fonts.gstatic.com]
                frame-src: [https://www.youtube-nocookie.com]
            """
        )
    )
    assert policy["script-src"] == [
        "'self'",
        "'sha256-q1kS5pFPSPAgxq2JFkkFo6TdDLCt4ahWOn4dNXHzmBs='",
        "https://cdn.example.com",
    ]
    assert policy["font-src"] == ["'self'", "fonts.gstatic.com"]
    # frame-src was not in the policy: it starts from what it fell back to (default-src 'none'),
    # and 'none' goes once a source is listed.
    assert policy["frame-src"] == ["https://www.youtube-nocookie.com"]
    assert policy["default-src"] == ["'none'"]


def test_csp_sources_added_to_an_own_policy_keep_what_it_allowed() -> None:
    policy = directives(
        sent_policy(
            """\
            nginx:
              content_security_policy: "default-src 'self'; object-src 'none'"
              csp_sources: {script-src: ["'sha256-q1kS5pFPSPAgxq2JFkkFo6TdDLCt4ahWOn4dNXHzmBs='"]}
            """
        )
    )
    assert policy["script-src"] == ["'self'", "'sha256-q1kS5pFPSPAgxq2JFkkFo6TdDLCt4ahWOn4dNXHzmBs='"]
    assert policy["default-src"] == ["'self'"]


@pytest.mark.parametrize(
    ("sources", "says"),
    [
        ("{script-srcx: [\"'self'\"]}", "nginx.csp_sources.script-srcx.[key]: expected a CSP directive"),
        ("{script-src: [\"'nonce-abc'\"]}", "the same on every response"),
        ('{script-src: ["cdn.example.com; script-src *"]}', "expected a CSP source"),
        ('{script-src: ["cdn.example.com\\n"]}', "expected a CSP source"),
        ('{img-src: ["https://a.example/$host"]}', "expected a CSP source"),
        ("{style-src: [\"'unsafe-inline\"]}", "expected a CSP source"),
    ],
)
def test_csp_sources_that_would_break_the_header_are_rejected(sources: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        sent_policy(f"nginx: {{csp_sources: {sources}}}\n")
    assert says in str(error.value)
    assert str(error.value).startswith("deploy.yaml:9:")
