"""Whether an HTML page is a bot wall — a challenge, captcha or block page — judged by what it is.

Pure: :func:`wall` reads a page and names the wall it is (``"cloudflare"``, ``"imperva"`` …), or
returns ``None`` for a page of its own. A page is judged by its structure, never by one marker
found somewhere in it:

1. A page that announces an article (``citation_*``, ``DC.*``, ``prism.*`` or ``eprints.*``
   metadata, ``og:type`` article, a ``ScholarlyArticle`` JSON-LD, a PDF alternate link) is a
   landing page, whatever scripts it loads: its links are worth following.
2. A vendor's interstitial or block page is recognised by what only that page holds: Cloudflare's
   ``_cf_chl_opt`` and challenge form, Imperva's incident iframe, Sucuri's ``sucuri_cloudproxy_js``,
   DataDome's ``dd`` object, PerimeterX's ``px-captcha``, Akamai's and CloudFront's error pages.
3. Any other page is a wall only when it is *thin* (next to no text, hardly a link) and what it
   holds is a challenge: a captcha widget (reCAPTCHA, hCaptcha, Turnstile, FunCaptcha), a bot
   vendor's script, or an "are you human" message.

Scripts the vendors inject into every page they front — Cloudflare's
``/cdn-cgi/challenge-platform/scripts/jsd/main.js`` and Bot Fight Mode's ``/cdn-cgi/bm/cv/``,
Imperva's ``/_Incapsula_Resource``, PerimeterX's sensor, DataDome's tag — are traces, not
verdicts: an article page that loads one stays an article page (rule 1), and only a page that
holds nothing else is a wall (rule 3).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

#: How much of a page is read to judge it (larger pages: their first and last bytes).
PAGE_BYTES = 2 * 1024 * 1024
_JS_KEEP = 256 * 1024  # inline script text kept for the vendor checks
_TEXT_KEEP = 4096  # visible text kept for the phrase checks
THIN_TEXT = 1500  # a wall says little: fewer visible characters than this …
THIN_LINKS = 10  # … and fewer links
EMPTY_TEXT = 200  # a page that holds only a vendor script says (almost) nothing
EMPTY_LINKS = 2

_ARTICLE_META = re.compile(
    r"^(?:citation_|bepress_citation_|eprints\.|prism\.|dc\.(?:title|identifier|creator)$"
    r"|dcterms\.(?:title|identifier|creator)$)"
)
_ARTICLE_TYPES = frozenset({"article", "scholarlyarticle", "paper"})
_CF_ERROR_TITLE = re.compile(r"attention required|access denied|you have been blocked")
_AKAMAI_REFERENCE = re.compile(r"reference #\d+\.[0-9a-f]+\.\d+\.[0-9a-f]+|errors\.edgesuite\.net")
_DATADOME_OBJECT = re.compile(r"\bvar\s+dd\s*=\s*\{")
_PHRASES = re.compile(
    r"just a moment|checking (?:your browser|if the site connection is secure)"
    r"|verify(?:ing)? (?:that )?you are (?:a )?human|are you a (?:human|robot)|not a robot"
    r"|human verification|security check|please wait while we verify|preparing to download"
    r"|ddos protection by|enable javascript and cookies to continue|access denied"
    r"|request blocked|attention required|pardon our interruption|you have been blocked"
    r"|proof[- ]of[- ]work|unusual traffic"
)
#: Vendor scripts and markers that ordinary pages carry too (a wall only on a near-empty page).
_TRACES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cloudflare", ("/cdn-cgi/challenge-platform/", "/cdn-cgi/bm/cv/", "__cf$cv$params")),
    ("imperva", ("_incapsula_resource", "incap_ses")),
    ("perimeterx", ("_pxappid", "px-cdn.net", "perimeterx.net", "/px/client/")),
    ("datadome", ("captcha-delivery.com", "datadome.co")),
    ("aws-waf", ("awswaf.com", "awswafintegration")),
)
#: Captcha widgets: a wall when a thin page holds one (a sign-up form elsewhere is not).
_WIDGETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("recaptcha", (".g-recaptcha", "google.com/recaptcha", "recaptcha/api.js", "g-recaptcha")),
    ("hcaptcha", (".h-captcha", "hcaptcha.com")),
    ("turnstile", (".cf-turnstile", "challenges.cloudflare.com/turnstile")),
    ("funcaptcha", ("funcaptcha.com", "arkoselabs.com")),
)


class _Facts(HTMLParser):
    """What one pass over a page finds: title, meta, marks, sources, scripts and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.meta: dict[str, str] = {}
        self.marks: set[str] = set()  # "#id" and ".class" of every element
        self.srcs: list[str] = []  # script and frame sources, lower case
        self.iframes: list[str] = []
        self.js: list[str] = []  # inline script text, lower case (bounded)
        self.text: list[str] = []  # visible and noscript text, lower case (bounded)
        self.text_len = 0  # visible characters (noscript text not counted)
        self.links = 0
        self.pdf_link = False
        self._js_len = 0
        self._in = ""  # "script", "style" or "title" while inside one
        self._noscript = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if a.get("id"):
            self.marks.add("#" + a["id"].lower())
        for cls in a.get("class", "").lower().split():
            self.marks.add("." + cls)
        if tag == "meta":
            key = (a.get("name") or a.get("property") or a.get("http-equiv") or "").lower()
            if key and key not in self.meta:
                self.meta[key] = a.get("content", "")
        elif tag in ("script", "iframe", "frame"):
            if a.get("src"):
                self.srcs.append(a["src"].lower())
                if tag != "script":
                    self.iframes.append(a["src"].lower())
            if tag == "script":
                self._in = "script"
        elif tag in ("style", "title"):
            self._in = tag
        elif tag == "noscript":
            self._noscript += 1
        elif tag == "a" and a.get("href"):
            self.links += 1
        elif tag == "link" and "alternate" in a.get("rel", "").lower().split():
            self.pdf_link = self.pdf_link or "pdf" in a.get("type", "").lower()

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = ""
        elif tag == "noscript" and self._noscript:
            self._noscript -= 1

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            if self._js_len < _JS_KEEP:
                self.js.append(data.lower())
                self._js_len += len(data)
        elif self._in == "title":
            self.title += data.lower()
        elif self._in != "style":
            words = " ".join(data.split())
            if words:
                if not self._noscript:
                    self.text_len += len(words)
                if sum(map(len, self.text)) < _TEXT_KEEP:
                    self.text.append(words.lower())


@dataclass(frozen=True)
class _Page:
    """The facts a verdict needs, joined once."""

    title: str
    meta: dict[str, str]
    marks: frozenset[str]
    srcs: str
    iframes: str
    js: str
    text: str
    text_len: int
    links: int
    pdf_link: bool

    def has(self, *needles: str) -> bool:
        """Whether any needle is an element mark or occurs in a source or an inline script."""
        return any(n in self.marks or n in self.srcs or n in self.js for n in needles)


def _read(page: bytes | str) -> _Page:
    text = page if isinstance(page, str) else page[:PAGE_BYTES].decode("utf-8", "replace")
    facts = _Facts()
    try:
        facts.feed(text[:PAGE_BYTES])
        facts.close()
    except Exception:  # html.parser is tolerant; a page it chokes on is judged on what it read
        pass
    return _Page(
        title=" ".join(facts.title.split()),
        meta=facts.meta,
        marks=frozenset(facts.marks),
        srcs=" ".join(facts.srcs),
        iframes=" ".join(facts.iframes),
        js=" ".join(facts.js),
        text=" ".join(facts.text),
        text_len=facts.text_len,
        links=facts.links,
        pdf_link=facts.pdf_link,
    )


def _is_article(p: _Page) -> bool:
    if p.pdf_link or p.meta.get("og:type", "").strip().lower() in _ARTICLE_TYPES:
        return True
    if any(_ARTICLE_META.match(name) for name in p.meta):
        return True
    return '"scholarlyarticle"' in p.js


# Rule 2: each vendor's own interstitial or block page, by what only that page holds.
_STRUCTURES: tuple[tuple[str, Callable[[_Page], bool]], ...] = (
    (
        "cloudflare",
        lambda p: (
            "_cf_chl_opt" in p.js
            or p.has("#challenge-form", ".cf-browser-verification", "#challenge-running")
            or (
                "/orchestrate/" in p.srcs + p.js and "/cdn-cgi/challenge-platform/" in p.srcs + p.js
            )
            or ("#cf-error-details" in p.marks and bool(_CF_ERROR_TITLE.search(p.title)))
        ),
    ),
    (
        "imperva",
        lambda p: "incapsula incident id" in p.text or "_incapsula_resource?cwudnsai" in p.iframes,
    ),
    (
        "sucuri",
        lambda p: (
            "sucuri_cloudproxy_js" in p.js
            or "sucuri website firewall" in p.title
            or "cloudproxy@sucuri.net" in p.text
        ),
    ),
    (
        "datadome",
        lambda p: (
            "captcha-delivery.com" in p.iframes
            or (bool(_DATADOME_OBJECT.search(p.js)) and "captcha-delivery.com" in p.js + p.srcs)
        ),
    ),
    (
        "perimeterx",
        lambda p: (
            "#px-captcha" in p.marks
            or (
                "access to this page has been denied" in p.title
                and p.has("_pxappid", "px-cdn.net", "perimeterx.net", "/px/client/")
            )
        ),
    ),
    (
        "akamai",
        lambda p: p.title == "access denied" and bool(_AKAMAI_REFERENCE.search(p.text)),
    ),
    (
        "cloudfront",
        lambda p: (
            "the request could not be satisfied" in p.title
            and "generated by cloudfront" in p.text
            and "request blocked" in p.text
        ),
    ),
)


def wall(page: bytes | str) -> str | None:
    """The bot wall ``page`` is, by name (``"cloudflare"``, ``"recaptcha"`` …), or ``None``.

    Args:
        page: the page's bytes (or text); only the first :data:`PAGE_BYTES` are read.

    Returns:
        The vendor or widget that walls the page off (``"interstitial"`` when only its message
        says so), or ``None`` for a page of its own — an article landing page among them.
        Never raises.
    """
    p = _read(page)
    if _is_article(p):
        return None
    for name, holds in _STRUCTURES:
        if holds(p):
            return name
    if p.text_len >= THIN_TEXT or p.links >= THIN_LINKS:
        return None
    for name, needles in _WIDGETS:
        if p.has(*needles):
            return name
    said = _PHRASES.search(f"{p.title} {p.text}")
    for name, needles in _TRACES:
        if p.has(*needles) and (said or (p.text_len < EMPTY_TEXT and p.links <= EMPTY_LINKS)):
            return name
    return "interstitial" if said else None
