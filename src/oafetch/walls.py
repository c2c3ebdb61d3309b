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

from selectolax.lexbor import LexborHTMLParser

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
    """The facts of one page, from one lexbor parse (tolerant of any markup)."""
    text = page if isinstance(page, str) else page[:PAGE_BYTES].decode("utf-8", "replace")
    try:
        tree = LexborHTMLParser(text[:PAGE_BYTES])
    except Exception:  # the parser is tolerant, but never let a page crash a verdict
        tree = LexborHTMLParser("")
    title_node = tree.css_first("title")
    meta: dict[str, str] = {}
    for node in tree.css("meta"):
        a = node.attributes
        key = (a.get("name") or a.get("property") or a.get("http-equiv") or "").lower()
        if key and key not in meta:
            meta[key] = a.get("content") or ""
    marks: set[str] = set()
    for node in tree.css("[id], [class]"):
        a = node.attributes
        if a.get("id"):
            marks.add("#" + (a.get("id") or "").lower())
        marks.update("." + cls for cls in (a.get("class") or "").lower().split())
    srcs, iframes, js = [], [], []
    js_len = 0
    for node in tree.css("script, iframe, frame"):
        src = (node.attributes.get("src") or "").lower()
        if src:
            srcs.append(src)
            if node.tag != "script":
                iframes.append(src)
        if node.tag == "script" and js_len < _JS_KEEP:
            code = node.text(deep=True)
            js.append(code.lower())
            js_len += len(code)
    pdf_link = any(
        "alternate" in (node.attributes.get("rel") or "").lower().split()
        and "pdf" in (node.attributes.get("type") or "").lower()
        for node in tree.css("link")
    )
    links = len(tree.css("a[href]"))
    noscript = " ".join(
        " ".join(n.text(deep=True, separator=" ").split()) for n in tree.css("noscript")
    )
    tree.strip_tags(["script", "style", "title", "noscript", "template"])
    visible = " ".join((tree.root.text(deep=True, separator=" ") if tree.root else "").split())
    kept = f"{visible[:_TEXT_KEEP]} {noscript[:_TEXT_KEEP]}".strip()
    return _Page(
        title=" ".join((title_node.text(deep=True) if title_node else "").lower().split()),
        meta=meta,
        marks=frozenset(marks),
        srcs=" ".join(srcs),
        iframes=" ".join(iframes),
        js=" ".join(js),
        text=kept.lower(),
        text_len=len(visible),
        links=links,
        pdf_link=pdf_link,
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
