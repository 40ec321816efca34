"""Content-Security-Policy: the strict default, sources added from deploy.yaml, and what a template loses."""

from __future__ import annotations

import base64
import hashlib
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.config import csp
from deploy.config.loader import ConfigError, load, load_text
from deploy.render.render import render

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
        ("{script-srcx: [\"'self'\"]}", "nginx.csp_sources.script-srcx: expected a CSP directive"),
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


# --- what a template would lose (csp.blocked, SEC021) -----------------------------------------------

DEFAULT = csp.DEFAULT_POLICY
SITE = ["shop.example.com"]


def lost(html: str, policy: str = DEFAULT) -> list[tuple[int, str]]:
    return [(b.line, b.message) for b in csp.blocked(textwrap.dedent(html), policy, SITE)]


def test_a_page_whose_scripts_and_styles_are_all_this_sites_files_loses_nothing() -> None:
    page = """\
        {% extends "base.html" %}
        {# <script>alert("a comment")</script> #}
        <!doctype html>
        <html><head>
          <link rel="stylesheet" href="{{ url_for('static', filename="css/app.css") }}">
          <link rel="icon" href="/static/favicon.ico">
          <link rel="preload" as="font" href="{{ url_for('static', filename='inter.woff2') }}" crossorigin>
          <script src="{{ url_for('static', filename='app.js') }}?v={{ version }}" defer></script>
          <script type="module" src="/static/main.js"></script>
          <script src="https://shop.example.com/static/legacy.js"></script>
          <script type="application/json" id="data">{"user": {{ user|tojson }}}</script>
          <script type="application/ld+json">{"@type": "Organization"}</script>
          <script type="text/x-template" id="row"><tr onclick="x()"></tr></script>
          <!-- <script>alert("commented out")</script> -->
        </head><body>
          <img src="data:image/svg+xml;base64,PHN2Zz4=" alt="">
          <img src="{{ user.avatar_url }}" srcset="/static/a.png 1x, /static/a@2x.png 2x">
          <form method="post" action="{{ url_for('cart.add') }}"><button>Add</button></form>
          <a href="{{ next_url }}">next</a> <a href="/help">help</a>
          <script></script>
        </body></html>
    """
    assert lost(page) == []


def test_inline_script_reports_its_hash_and_listing_the_hash_clears_it() -> None:
    page = "<p>x</p>\n<script>\n  document.body.classList.add('js');\n</script>\n"
    [(line, message)] = lost(page)
    body = "\n  document.body.classList.add('js');\n"
    assert line == 2
    assert message == (
        f"inline <script> is blocked by script-src: add {sha256(body)} to nginx.csp_sources.script-src"
    )
    assert lost(page, csp.with_sources(DEFAULT, {"script-src": [sha256(body)]})) == []
    # Jinja renders CRLF line ends as LF: the hash is of what the browser receives.
    assert lost(page.replace("\n", "\r\n"))[0][1] == message


@pytest.mark.parametrize(
    "kind", ['type="module"', 'type="text/javascript"', 'type="importmap"', 'language="javascript"']
)
def test_scripts_that_run_are_judged_whatever_their_type(kind: str) -> None:
    assert [line for line, _ in lost(f"<script {kind}>{{}}</script>")] == [1]


def test_an_inline_script_with_template_expressions_cannot_be_hashed() -> None:
    [(line, message)] = lost('<div>\n</div>\n<script>const user = {{ user|tojson }};</script>')
    assert line == 3
    assert "contains template expressions, so no fixed hash fits" in message
    assert "sha256" not in message


def test_a_nonce_attribute_needs_a_policy_with_a_nonce() -> None:
    page = '<script nonce="{{ csp_nonce() }}">go()</script>'
    assert len(lost(page)) == 1  # deploy's policy is the same on every response: it has no nonce
    assert lost(page, "default-src 'none'; script-src 'self' 'nonce-r4nd0m'") == []


def test_inline_attributes_and_javascript_urls_are_reported_on_their_own_line() -> None:
    page = """\
        <button type="button"
                class="big"
                onclick="buy()">Buy</button>
        <a href="javascript:void(0)">menu</a>
        <div style="display: none">hidden</div>
        <style>.x { color: red }</style>
    """
    found = lost(page)
    assert found == [
        (3, "inline event handler onclick= on <button> is blocked by script-src"),
        (4, "javascript: URL in href= on <a> is blocked by script-src"),
        (5, "style= attribute on <div> is blocked by style-src"),
        (
            6,
            f"inline <style> is blocked by style-src: add {sha256('.x { color: red }')} "
            "to nginx.csp_sources.style-src",
        ),
    ]
    lax = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'"
    assert lost(page, lax) == []
    # A hash in the list turns 'unsafe-inline' off (CSP level 2): then the inline code is blocked again.
    assert len(lost(page, lax.replace("'unsafe-inline'", "'unsafe-inline' 'sha256-AAAA'"))) == 4
    # 'unsafe-hashes' allows exactly the listed handlers.
    hashed = csp.with_sources(DEFAULT, {"script-src-attr": ["'unsafe-hashes'", sha256("buy()")]})
    assert [line for line, _ in lost(page, hashed)] == [4, 5, 6]


def test_other_hosts_must_be_listed_in_the_matching_directive() -> None:
    page = """\
        <link rel="stylesheet" href="https://fonts.googleapis.com/css2?family=Inter">
        <script src="https://cdn.jsdelivr.net/npm/htmx.org@2.0.4/dist/htmx.min.js"></script>
        <img src="https://images.example.com/logo.png">
        <iframe src="https://www.youtube-nocookie.com/embed/x"></iframe>
        <form action="https://payments.example.net/pay" method="post"></form>
    """
    assert lost(page) == [
        (1, "<link> loads https://fonts.googleapis.com, which style-src does not allow ('self')"),
        (2, "<script> loads https://cdn.jsdelivr.net, which script-src does not allow ('self')"),
        (3, "<img> loads https://images.example.com, which img-src does not allow ('self' data:)"),
        (4, "<iframe> loads https://www.youtube-nocookie.com, which frame-src does not allow ('none')"),
        (5, "<form> submits to https://payments.example.net, which form-action does not allow ('self')"),
    ]
    listed = csp.with_sources(
        DEFAULT,
        {
            "style-src": ["https://fonts.googleapis.com"],
            "script-src": ["https://cdn.jsdelivr.net/npm/"],
            "img-src": ["*.example.com"],
            "frame-src": ["www.youtube-nocookie.com"],
            "form-action": ["payments.example.net:443"],
        },
    )
    assert lost(page, listed) == []
    # A path source allows only what is under it; a wildcard host only subdomains; http: is not https:.
    narrow = csp.with_sources(DEFAULT, {"script-src": ["https://cdn.jsdelivr.net/gh/"]})
    assert len(lost(page, narrow)) == 5
    assert lost('<img src="https://example.com/a.png">', listed) != []
    https_only = csp.with_sources(DEFAULT, {"img-src": ["https:"]})
    assert lost('<img src="http://images.example.com/a.png">', https_only)


def test_css_files_loading_fonts_and_stylesheets_from_elsewhere() -> None:
    css = textwrap.dedent(
        """\
        /* @import url(https://commented.example/x.css); */
        @import url("https://fonts.googleapis.com/css2?family=Inter");
        @import "local.css";
        @font-face {
          font-family: Inter;
          src: url(https://fonts.gstatic.com/s/inter.woff2) format("woff2"), url(../fonts/inter.woff2);
        }
        .hero { background: url('https://images.example.com/hero.jpg') }
        .icon { background: url(data:image/svg+xml;base64,PHN2Zz4=) }
        """
    )
    found = [(b.line, b.message) for b in csp.blocked_css(css, DEFAULT, SITE)]
    assert found == [
        (2, "@import loads https://fonts.googleapis.com, which style-src does not allow ('self')"),
        (6, "@font-face loads https://fonts.gstatic.com, which font-src does not allow ('self')"),
        (8, "url() loads https://images.example.com, which img-src does not allow ('self' data:)"),
    ]
    fonts = csp.with_sources(
        DEFAULT,
        {
            "style-src": ["https://fonts.googleapis.com"],
            "font-src": ["https://fonts.gstatic.com"],
            "img-src": ["images.example.com"],
        },
    )
    assert list(csp.blocked_css(css, fonts, SITE)) == []


def test_the_check_reads_templates_and_css_but_not_email_templates(tmp_path: Path) -> None:
    from deploy.checker.context import Context
    from deploy.checker.registry import load_checks, select
    from deploy.checker.runner import run

    files = {
        "deploy.yaml": FLASKR,
        "flaskr/templates/base.html": "<h1>x</h1>\n<button onclick=\"go()\">go</button>\n",
        "flaskr/templates/email/welcome.html": '<p style="color: red">Welcome</p>\n',
        "flaskr/templates/ok.html": '<p>ok</p>\n<script src="/static/a.js"></script>\n',
        "flaskr/templates/ignored.html": '<a href="javascript:go()">go</a> {# deploy: ignore[SEC021] x #}\n',
        "flaskr/static/site.css": "@font-face { src: url(https://fonts.gstatic.com/a.woff2) }\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")

    context = Context(root=tmp_path, config=load(tmp_path / "deploy.yaml"))
    report = run(select(load_checks(plugins=False), ["SEC021"]), context)
    found = sorted(f"{r.finding.file}:{r.finding.line}" for r in report.active)
    assert found == ["flaskr/static/site.css:1", "flaskr/templates/base.html:2"]


def test_the_example_app_loses_nothing_under_the_default_policy(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3] / "playbooks" / "flaskr"
    pages = [p for p in root.rglob("*") if p.suffix in (".html", ".css")]
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        judge = csp.blocked_css if page.suffix == ".css" else csp.blocked
        assert list(judge(text, DEFAULT, ["flaskr.example.com"])) == [], page


_MARKUP = [
    "<script>", "</script>", "<style>", "</style>", "<script src=", "<img src=", "<a href=", "<link rel=",
    " onclick=", " style=", '"', "'", ">", "<", "{{", "}}", "{%", "%}", "{#", "#}", "<!--", "-->",
    "javascript:", "https://x.example/", "data:", "url(", "@import ", "@font-face {", "}", "\n", "\r\n",
    " ", "a", "é", "\x00", "/*", "*/", "<![CDATA[", "<script type=module>", "srcset=",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_MARKUP), max_size=60), st.sampled_from([DEFAULT, "", "default-src *"]))
def test_any_markup_is_judged_without_an_exception(parts: list[str], policy: str) -> None:
    text = "".join(parts)
    for found in (*csp.blocked(text, policy, SITE), *csp.blocked_css(text, policy, SITE)):
        assert found.line >= 1 and found.message
