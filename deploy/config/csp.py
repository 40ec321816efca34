"""Content-Security-Policy: the default policy, adding sources to it, and what a page would lose to it.

`blocked(html, policy)` reads one HTML (Jinja) template the way a browser would apply the policy to
the page it renders: inline scripts and styles, event-handler and style attributes, `javascript:`
URLs, and the scripts, styles, images, fonts, media, frames and form targets a page loads from
elsewhere. Only what the template shows is judged: a URL made by a template expression other than
`url_for(...)` is unknown and never reported. Nothing here imports or runs the app.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

#: What deploy's Nginx site sends unless deploy.yaml says otherwise: nothing may load unless listed,
#: and what a server-rendered Flask app loads from itself is listed (data: images for inline icons).
DEFAULT_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)

#: Directives a source can be added to (nginx.csp_sources), each with the ones it falls back to.
FALLBACK: dict[str, tuple[str, ...]] = {
    "default-src": (),
    "script-src": ("default-src",),
    "script-src-elem": ("script-src", "default-src"),
    "script-src-attr": ("script-src", "default-src"),
    "style-src": ("default-src",),
    "style-src-elem": ("style-src", "default-src"),
    "style-src-attr": ("style-src", "default-src"),
    "img-src": ("default-src",),
    "font-src": ("default-src",),
    "connect-src": ("default-src",),
    "media-src": ("default-src",),
    "object-src": ("default-src",),
    "child-src": ("default-src",),
    "frame-src": ("child-src", "default-src"),
    "worker-src": ("child-src", "script-src", "default-src"),
    "manifest-src": ("default-src",),
    "form-action": (),
    "frame-ancestors": (),
    "base-uri": (),
}

_KEYWORDS = {
    "'self'",
    "'none'",
    "'unsafe-inline'",
    "'unsafe-eval'",
    "'unsafe-hashes'",
    "'strict-dynamic'",
    "'wasm-unsafe-eval'",
    "'report-sample'",
}
_HASH = re.compile(r"'sha(256|384|512)-([A-Za-z0-9+/_-]+={0,2})'")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
_HOST_SOURCE = re.compile(
    r"(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://)?"
    r"(?P<host>\*|(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r"(?::(?P<port>\*|[0-9]{1,5}))?"
    r"(?P<path>/[A-Za-z0-9._~!&'()*+=:@%/-]*)?"
)


def source_problem(source: str) -> str | None:
    """Why `source` is not a source expression deploy accepts in a policy, or None if it is one."""
    if source in _KEYWORDS or _HASH.fullmatch(source):
        return None
    if source.startswith("'nonce-"):
        return (
            "a nonce written into deploy.yaml is the same on every response, so it protects nothing; "
            "list the inline script's hash ('sha256-...') instead (deploy check SEC021 prints it)"
        )
    if _SCHEME.fullmatch(source) or _HOST_SOURCE.fullmatch(source):
        return None
    return "a CSP source such as 'self', 'sha256-<base64>', https:, cdn.example.com or https://*.example.com"


def parse(policy: str) -> dict[str, list[str]]:
    """{directive: sources} of one policy; a repeated directive is ignored, as browsers do."""
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens and tokens[0].lower() not in out:
            out[tokens[0].lower()] = tokens[1:]
    return out


def effective(directives: Mapping[str, list[str]], directive: str) -> list[str] | None:
    """The sources that govern `directive` (its own or those it falls back to); None: no restriction."""
    for name in (directive, *FALLBACK.get(directive, ())):
        if name in directives:
            return directives[name]
    return None


def with_sources(policy: str, extra: Mapping[str, Sequence[str]]) -> str:
    """`policy` with `extra` sources added. A directive the policy lacks starts from the sources it
    fell back to (adding a hash to script-src keeps the scripts default-src allowed); 'none' goes."""
    if not any(extra.values()):
        return policy  # sent as written
    directives = parse(policy)
    for directive, sources in extra.items():
        if not sources:
            continue
        current = directives.get(directive)
        if current is None:
            current = list(effective(directives, directive) or [])
        merged = [s for s in current if s != "'none'"]
        merged += [s for s in sources if s not in merged]
        directives[directive] = merged
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


def digest(text: str, algorithm: str = "sha256") -> str:
    """The CSP hash source of an inline script, style or attribute value: 'sha256-<base64>'."""
    raw = hashlib.new(algorithm, text.encode("utf-8")).digest()
    return f"'{algorithm}-{base64.b64encode(raw).decode('ascii')}'"


# --- what a page would lose --------------------------------------------------------------------


@dataclass(frozen=True)
class Blocked:
    """One thing in a template the policy would block."""

    line: int
    message: str


#: Content of `<script type=...>` that browsers run; anything else is a data block (never run, no CSP).
_JS_TYPES = {
    "",
    "module",
    "importmap",
    "speculationrules",
    *(
        f"{prefix}/{name}"
        for prefix, name in [
            ("application", "ecmascript"),
            ("application", "javascript"),
            ("application", "x-ecmascript"),
            ("application", "x-javascript"),
            ("text", "ecmascript"),
            ("text", "javascript"),
            ("text", "javascript1.0"),
            ("text", "javascript1.1"),
            ("text", "javascript1.2"),
            ("text", "javascript1.3"),
            ("text", "javascript1.4"),
            ("text", "javascript1.5"),
            ("text", "jscript"),
            ("text", "livescript"),
            ("text", "x-ecmascript"),
            ("text", "x-javascript"),
        ]
    ),
}
#: Elements and attributes that fetch a URL, with the directive that governs the fetch.
_FETCHES: dict[tuple[str, str], str] = {
    ("script", "src"): "script-src-elem",
    ("img", "src"): "img-src",
    ("img", "srcset"): "img-src",
    ("source", "srcset"): "img-src",
    ("input", "src"): "img-src",
    ("video", "poster"): "img-src",
    ("audio", "src"): "media-src",
    ("video", "src"): "media-src",
    ("track", "src"): "media-src",
    ("iframe", "src"): "frame-src",
    ("frame", "src"): "frame-src",
    ("object", "data"): "object-src",
    ("embed", "src"): "object-src",
    ("form", "action"): "form-action",
    ("button", "formaction"): "form-action",
    ("input", "formaction"): "form-action",
    ("base", "href"): "base-uri",
}
_LINK_RELS = {
    "stylesheet": "style-src-elem",
    "icon": "img-src",
    "apple-touch-icon": "img-src",
    "manifest": "manifest-src",
}
_PRELOAD_AS = {
    "script": "script-src-elem",
    "style": "style-src-elem",
    "font": "font-src",
    "image": "img-src",
    "fetch": "connect-src",
}
_DEFAULT_PORT = {"http": 80, "ws": 80, "https": 443, "wss": 443}
#: (source scheme, URL scheme) pairs a source allows beyond its own scheme (CSP's secure upgrades).
_UPGRADES = {("http", "https"), ("ws", "wss"), ("http", "ws"), ("http", "wss"), ("https", "wss")}
_URL_ATTRS = {"href", "src", "action", "formaction", "data", "xlink:href"}

#: Jinja markup. Replaced before parsing by text of the same length (so offsets and lines stay
#: those of the file): statements and comments by blanks, expressions by a neutral copy of themselves.
_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.S)
_EXPR_MARK = "\x02"
_URL_FOR = re.compile(r"^\{\{-?\s*url_for\(")


def _neutral(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.startswith("{{"):
        # Quotes and angle brackets inside an expression would end the attribute or the tag.
        return re.sub(r"[\"'<>]", _EXPR_MARK, text)
    return re.sub(r"[^\n]", " ", text)


def _has_jinja(text: str) -> bool:
    return any(mark in text for mark in ("{{", "{%", "{#"))


class _Page(HTMLParser):
    def __init__(self, original: str) -> None:
        super().__init__(convert_charrefs=True)
        self.original = original
        self.starts = [0] + [m.end() for m in re.finditer("\n", original)]
        self.tags: list[tuple[str, dict[str, str | None], int, int, str]] = []
        self.bodies: list[tuple[str, int, int]] = []  # (tag, body start, body end) of script/style
        self._open: tuple[str, int] | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self._offset()
        text = self.get_starttag_text() or ""
        self.tags.append((tag, dict(attrs), start, self.getpos()[0], text))
        if tag in ("script", "style"):
            self._open = (tag, start + len(text))

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and self._open[0] == tag:
            self.bodies.append((tag, self._open[1], self._offset()))
            self._open = None


def _attr_line(tag_line: int, tag_text: str, name: str) -> int:
    match = re.search(rf"\s{re.escape(name)}\s*=", tag_text, re.I)
    return tag_line + (tag_text.count("\n", 0, match.start()) if match else 0)


def _is_expression(value: str) -> bool:
    return _EXPR_MARK in value or "{{" in value


def _url_allowed(url: str, sources: list[str], own_hosts: set[str]) -> bool | None:
    """Whether a fetch of `url` is allowed by `sources`; None when the URL is not known."""
    url = url.strip()
    if _URL_FOR.match(url):
        url = "/"  # url_for() makes a URL of this site
    if not url or _is_expression(url):
        return None
    lowered = url.lower()
    if lowered.startswith(("data:", "blob:")):
        scheme = lowered.split(":", 1)[0] + ":"
        return scheme in (s.lower() for s in sources)
    if lowered.startswith("javascript:"):
        return None  # judged as inline script
    parts = urlsplit(url if not url.startswith("//") else "https:" + url)
    if not parts.scheme and not parts.netloc:
        return "'self'" in sources or "*" in sources  # relative: this site
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        return None
    host, scheme = parts.hostname.lower(), parts.scheme
    if host in own_hosts and "'self'" in sources:
        return True
    port = parts.port or _DEFAULT_PORT[scheme]
    for source in (s.lower() for s in sources):
        if source == "*":
            return True
        if _SCHEME.fullmatch(source):
            if source[:-1] == scheme or (source[:-1], scheme) in _UPGRADES:
                return True
            continue
        match = _HOST_SOURCE.fullmatch(source)
        if not match or source.startswith("'"):
            continue
        want_scheme = match.group("scheme")
        if want_scheme and want_scheme != scheme and (want_scheme, scheme) not in _UPGRADES:
            continue
        pattern = match.group("host")
        if pattern.startswith("*."):
            if not host.endswith(pattern[1:]):
                continue
        elif pattern not in ("*", host):
            continue
        want_port = match.group("port")
        if want_port is None:
            if port != _DEFAULT_PORT[scheme]:
                continue
        elif want_port != "*" and int(want_port) != port:
            continue
        path = match.group("path")
        if path and not (parts.path.startswith(path) if path.endswith("/") else parts.path == path):
            continue
        return True
    return False


def _inline_allowed(sources: list[str] | None, body: str | None, nonce: bool) -> bool:
    """Whether an inline script or style element is allowed (body None: not hashable here)."""
    if sources is None:
        return True
    hashes = [s for s in sources if _HASH.fullmatch(s)]
    nonces = [s for s in sources if s.startswith("'nonce-")]
    if nonce and nonces:
        return True
    if body is not None and any(digest(body, f"sha{bits}") in hashes for bits in ("256", "384", "512")):
        return True
    return "'unsafe-inline'" in sources and not hashes and not nonces


def _attribute_allowed(sources: list[str] | None, value: str) -> bool:
    """Whether an inline attribute (onclick=, style=, a javascript: URL) is allowed."""
    if sources is None:
        return True
    hashed = [s for s in sources if _HASH.fullmatch(s) or s.startswith("'nonce-")]
    if "'unsafe-inline'" in sources and not hashed:
        return True
    return "'unsafe-hashes'" in sources and not _has_jinja(value) and digest(value) in sources


def blocked(html: str, policy: str, own_hosts: Sequence[str] = ()) -> Iterator[Blocked]:
    """What the policy would block in one HTML or Jinja template, in the order of the file."""
    directives = parse(policy)
    if not directives:
        return
    hosts = {h.lower() for h in own_hosts}
    page = _Page(html)
    page.feed(_JINJA.sub(_neutral, html))
    page.close()
    findings: list[Blocked] = []
    script_elem = effective(directives, "script-src-elem")
    style_elem = effective(directives, "style-src-elem")
    nonce_tags: set[int] = set()
    for tag, attrs, start, line, text in page.tags:
        if tag in ("script", "style") and attrs.get("nonce"):
            nonce_tags.add(start + len(text))
        findings.extend(_attribute_findings(tag, attrs, line, text, directives, hosts))
    for tag, body_start, body_end in page.bodies:
        original = html[body_start:body_end]
        open_tag = next(t for t in page.tags if t[2] + len(t[4]) == body_start)
        attrs, line = open_tag[1], open_tag[3]
        if tag == "script":
            if attrs.get("src") is not None or not _runs(attrs):
                continue
            sources, what, directive = script_elem, "inline <script>", "script-src"
        else:
            sources, what, directive = style_elem, "inline <style>", "style-src"
        if not original.strip():
            continue
        hashable = not _has_jinja(original)
        body = original.replace("\r\n", "\n").replace("\r", "\n") if hashable else None
        if _inline_allowed(sources, body, body_start in nonce_tags):
            continue
        if body is not None:
            advice = f"add {digest(body)} to nginx.csp_sources.{directive}"
        else:
            advice = (
                "it contains template expressions, so no fixed hash fits: move the code to a static "
                'file and pass data in a <script type="application/json"> block or data- attributes'
            )
        findings.append(Blocked(line, f"{what} is blocked by {directive}: {advice}"))
    findings.sort(key=lambda b: b.line)
    yield from findings


_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_CSS_IMPORT = re.compile(r"@import\s+(?:url\(\s*)?['\"]?([^'\")\s;]+)", re.I)
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")\s]+)", re.I)
_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}", re.I | re.S)


def blocked_css(css: str, policy: str, own_hosts: Sequence[str] = ()) -> Iterator[Blocked]:
    """Stylesheets (@import), fonts (@font-face) and images (url()) a CSS file loads from elsewhere
    that the policy would block; URLs relative to the file are this site's and never reported."""
    directives = parse(policy)
    if not directives:
        return
    hosts = {h.lower() for h in own_hosts}
    text = _CSS_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), css)
    fonts = [(m.start(), m.end()) for m in _FONT_FACE.finditer(text)]
    imports = {m.start(1) for m in _CSS_IMPORT.finditer(text)}
    uses = [(m.start(1), m.group(1)) for m in _CSS_IMPORT.finditer(text)]
    uses += [(m.start(1), m.group(1)) for m in _CSS_URL.finditer(text) if m.start(1) not in imports]
    for at, url in sorted(uses):
        if at in imports:
            directive, what = "style-src-elem", "@import"
        elif any(start <= at < end for start, end in fonts):
            directive, what = "font-src", "@font-face"
        else:
            directive, what = "img-src", "url()"
        sources = effective(directives, directive)
        if sources is not None and _url_allowed(url, sources, hosts) is False:
            yield Blocked(
                text.count("\n", 0, at) + 1,
                f"{what} loads {_origin(url)}, which {directive.removesuffix('-elem')} does not allow "
                f"({' '.join(sources)})",
            )


def _runs(attrs: Mapping[str, str | None]) -> bool:
    kind = attrs.get("type")
    if kind is None:
        language = attrs.get("language")
        kind = f"text/{language}" if language else ""
    if _is_expression(kind):
        return False  # unknown until rendered
    return kind.strip().lower() in _JS_TYPES


def _attribute_findings(
    tag: str,
    attrs: Mapping[str, str | None],
    line: int,
    text: str,
    directives: Mapping[str, list[str]],
    hosts: set[str],
) -> Iterator[Blocked]:
    for name, value in attrs.items():
        inline = _inline_attribute(tag, name, (value or "").strip())
        if inline is not None and not _attribute_allowed(effective(directives, inline[0]), inline[1]):
            yield Blocked(_attr_line(line, text, name), inline[2])
    for directive, urls in _fetches(tag, attrs):
        sources = effective(directives, directive)
        if sources is None:
            continue
        for url in urls:
            if _url_allowed(url, sources, hosts) is False:
                verb = {"form-action": "submits to", "base-uri": "sets its base URL to"}.get(
                    directive, "loads"
                )
                yield Blocked(
                    line,
                    f"<{tag}> {verb} {_origin(url)}, which {directive.removesuffix('-elem')} does not "
                    f"allow ({' '.join(sources)})",
                )


def _inline_attribute(tag: str, name: str, value: str) -> tuple[str, str, str] | None:
    """(directive, value, message) for an attribute that runs script or sets style inline."""
    if name.startswith("on") and len(name) > 2 and name.isalpha():
        return "script-src-attr", value, f"inline event handler {name}= on <{tag}> is blocked by script-src"
    if name == "style" and value:
        return "style-src-attr", value, f"style= attribute on <{tag}> is blocked by style-src"
    if name in _URL_ATTRS and value.lower().startswith("javascript:"):
        return "script-src-elem", value, f"javascript: URL in {name}= on <{tag}> is blocked by script-src"
    return None


def _fetches(tag: str, attrs: Mapping[str, str | None]) -> Iterator[tuple[str, list[str]]]:
    for (element, attr), directive in _FETCHES.items():
        value = attrs.get(attr)
        if tag == element and value:
            if attr == "srcset":
                yield directive, [c.split()[0] for c in value.split(",") if c.strip()]
            else:
                yield directive, [value]
    if tag == "link" and attrs.get("href"):
        rels = (attrs.get("rel") or "").lower().split()
        for rel in rels:
            if rel in _LINK_RELS:
                yield _LINK_RELS[rel], [attrs["href"] or ""]
            elif rel in ("preload", "modulepreload"):
                kind = "script" if rel == "modulepreload" else (attrs.get("as") or "").lower()
                if kind in _PRELOAD_AS:
                    yield _PRELOAD_AS[kind], [attrs["href"] or ""]


def _origin(url: str) -> str:
    url = url.strip()
    if url.lower().startswith(("data:", "blob:")):
        return url.split(":", 1)[0] + ": URLs"
    parts = urlsplit(url if not url.startswith("//") else "https:" + url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url
