"""Landing pages: the doi.org redirect, and the PDF links a publisher's HTML page announces.

:func:`extract_links` is a pure parser (stdlib ``html.parser``, tolerant of broken markup) that
finds, in order of trust: ``<meta name="citation_pdf_url">``, ``<link rel="alternate"
type="application/pdf">``, a ``<meta http-equiv="refresh">`` target, and anchors that look like
PDF links. Relative URLs are resolved against the page URL (or its ``<base href>``).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, quote_path
from oafetch.tokens import Role
from oafetch.works import IdKind, Work

_REFRESH = re.compile(r"^\s*\d*\s*;?\s*url\s*=\s*['\"]?([^'\"]+)", re.I)
_PDFISH = re.compile(r"\.pdf(?:$|[?#])|/pdf(?:/|$|\?)|download.*pdf|pdf.*download|[?&]pdf=", re.I)
MAX_LINKS = 8


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.meta: list[str] = []
        self.alternate: list[str] = []
        self.refresh: list[str] = []
        self.anchors: list[str] = []
        self._anchor: str | None = None
        self._anchor_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        elif tag == "meta":
            name = a.get("name", "").lower()
            if name in ("citation_pdf_url", "eprints.document_url", "bepress_citation_pdf_url"):
                if a.get("content"):
                    self.meta.append(a["content"])
            elif a.get("http-equiv", "").lower() == "refresh":
                match = _REFRESH.match(a.get("content", ""))
                if match:
                    self.refresh.append(match[1].strip())
        elif tag == "link":
            rels = a.get("rel", "").lower().split()
            if "alternate" in rels and "pdf" in a.get("type", "").lower() and a.get("href"):
                self.alternate.append(a["href"])
        elif tag == "a" and a.get("href"):
            self._anchor = a["href"]
            self._anchor_text = []
            if _PDFISH.search(a["href"]) or "pdf" in a.get("type", "").lower():
                self.anchors.append(a["href"])
                self._anchor = None

    def handle_data(self, data: str) -> None:
        if self._anchor is not None:
            self._anchor_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._anchor is not None:
            label = " ".join(self._anchor_text).strip().lower()
            if re.search(r"\bpdf\b|full ?text", label):
                self.anchors.append(self._anchor)
            self._anchor = None


def extract_links(html: str, page_url: str) -> list[str]:
    """PDF links announced by an HTML page, most trusted first, absolute, de-duplicated.

    Never raises on malformed HTML; only http(s) links are returned.
    """
    parser = _LinkParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is tolerant, but never let a page crash a work
        pass
    base = (_absolute(page_url, parser.base) if parser.base else None) or page_url
    found: list[str] = []
    for href in (*parser.meta, *parser.alternate, *parser.refresh, *parser.anchors):
        href = href.strip()
        if not href or href.startswith(("javascript:", "mailto:", "#", "data:")):
            continue
        url = _absolute(base, href)
        if url is not None and url not in found and url != page_url:
            found.append(url)
        if len(found) >= MAX_LINKS:
            break
    return found


def _absolute(base: str, href: str) -> str | None:
    """``href`` resolved against ``base`` if that gives an http(s) URL with a host, else None.

    ``http:x.pdf`` (a scheme but no host) and malformed hosts (``http://[::1``) are dropped.
    """
    try:
        url = urljoin(base, href)
        parts = urlsplit(url)
        return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None
    except ValueError:
        return None


class LandingPageResolver(Resolver):
    """The DOI's landing page (via the doi.org redirect) or a plain URL given as input."""

    name: ClassVar[str] = "landing_page"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://doi.org"}

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return ids.doi is not None or work.kind is IdKind.URL

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        if work.kind is IdKind.URL:
            return [Candidate(work.value, "direct", Role.ARTIFACT)]
        assert ids.doi is not None
        return [Candidate(f"{self.base_url}/{quote_path(ids.doi)}", self.name, Role.LANDING)]
