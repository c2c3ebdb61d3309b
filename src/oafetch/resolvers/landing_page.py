"""Landing pages: the doi.org redirect, and the PDF links a publisher's HTML page announces.

:func:`extract_links` is a pure parser (selectolax's lexbor HTML parser: tolerant of broken
markup and 4 to 6 times faster than the ``html.parser`` one it replaced on saved article pages,
see docs/BENCHMARKS.md). It ranks the links by how surely they are *the article's own PDF*,
not by page order, because article pages list other PDFs first: supplementary files (a
CONSORT checklist, appendices, figure PDFs), and PDFs the references cite. In order:

1. ``<meta name="citation_pdf_url">`` (and the eprints/bepress equivalents);
2. ``<link rel="alternate" type="application/pdf">``;
3. a ``<meta http-equiv="refresh">`` target;
4. anchors whose text says PDF / Download / Full text, on the page's own site;
5. other PDF-looking anchors (off-site, or only the URL says PDF);
6. anchors inside a reference list or styled as citations;
7. anchors that name a supplement (supplement, appendix, checklist, SI, figure, supporting,
   additional file, dataset …).

Anchors to files that are plainly not PDFs (``.docx``, ``.png``, ``.zip`` …) are dropped.
Relative URLs are resolved against the page URL (or its ``<base href>``).
:func:`followable_links` is what the fallback follows: the links that may be the article (ranks
1 to 5), minus legacy PMC ``/articles/PMC…/pdf/`` pages, which every source drops (their PMCID is
learnt instead). Cited PDFs and supplements are other documents: they are ranked, for whoever
inspects a page, but never followed, so a page whose own PDF fails for a while (a 503, a
timeout) can never put its CONSORT checklist in the article's place.
"""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, quote_path
from oafetch.resolvers.common import legacy_pmc_pdf
from oafetch.tokens import Role
from oafetch.works import IdKind, Work

_REFRESH = re.compile(r"^\s*\d*\s*;?\s*url\s*=\s*['\"]?([^'\"]+)", re.I)
_PDFISH = re.compile(r"\.pdf(?:$|[?#])|/pdf(?:/|$|\?)|download.*pdf|pdf.*download|[?&]pdf=", re.I)
_SAYS_ARTICLE = re.compile(r"\bpdf\b|full[\s-]?text|\bdownload\b|\barticle\b", re.I)
# What names a supplement in an anchor's text/title/class, and (narrower) in its URL.
_SUPPLEMENT = re.compile(
    r"supplement|\bsupp?l?\b|appendi(?:x|ces)|checklist|\bsi\b|supporting|\bfig(?:ure)?s?\b"
    r"|additional[\s_-]?file|\bdata[\s_-]?(?:set|sheet)\b|\bs\d+\s|reporting\s(?:form|summary)",
    re.I,
)
_SUPPLEMENT_URL = re.compile(
    r"supplement|suppl|appendi(?:x|ces)|checklist|supporting|moesm|/esm/|[-._]s\d{3}\.|figures?[-_.]",
    re.I,
)
_CITATION_CLASSES = {"xref", "xref-bibr", "ext-link", "ref", "reference", "citation"}
_REFERENCE_SECTION = re.compile(r"\b(?:ref-list|references?|bibliography|citations?)\b", re.I)
_NOT_PDF = {
    "jpg", "jpeg", "png", "gif", "tif", "tiff", "svg", "webp", "bmp", "mp4", "webm", "ogv", "ogg",
    "mov", "avi", "mp3", "wav", "zip", "gz", "tgz", "tar", "7z", "rar", "csv", "tsv", "xls", "xlsx",
    "doc", "docx", "ppt", "pptx", "odt", "rtf", "txt", "xml", "json", "bib", "ris", "enw", "nbib",
}  # fmt: skip
_META_NAMES = ("citation_pdf_url", "eprints.document_url", "bepress_citation_pdf_url")
MAX_LINKS = 8

# Ranks (lower is tried first); see the module docstring.
META, ALTERNATE, REFRESH, OWN_PDF, OTHER_PDF, CITED, SUPPLEMENT = range(7)


def extract_links(html: str, page_url: str) -> list[str]:
    """PDF links announced by an HTML page, the article's own first, absolute, de-duplicated.

    Never raises on malformed HTML; only http(s) links are returned, at most ``MAX_LINKS``.
    """
    return [url for url, _ in ranked_links(html, page_url)]


def ranked_links(html: str, page_url: str) -> list[tuple[str, int]]:
    """:func:`extract_links` with each link's rank (``META`` … ``SUPPLEMENT``)."""
    try:
        tree = LexborHTMLParser(html)
    except Exception:  # the parser is tolerant, but never let a page crash a work
        return []
    base_node = tree.css_first("base[href]")
    base_href = (base_node.attributes.get("href") or "") if base_node is not None else ""
    base = (_absolute(page_url, base_href) if base_href else None) or page_url
    site = _site(page_url)
    ranked: dict[str, tuple[int, int]] = {}  # url -> (rank, page position)

    def offer(href: str | None, rank: int) -> None:
        href = (href or "").strip()
        if not href or href.startswith(("javascript:", "mailto:", "#", "data:")):
            return
        url = _absolute(base, href)
        if url is None or url == page_url:
            return
        old = ranked.get(url)
        if old is None or rank < old[0]:
            ranked[url] = (rank, old[1] if old else len(ranked))

    for node in tree.css("meta"):
        attrs = node.attributes
        name = (attrs.get("name") or "").lower()
        if name in _META_NAMES:
            offer(attrs.get("content"), META)
        elif (attrs.get("http-equiv") or "").lower() == "refresh":
            match = _REFRESH.match(attrs.get("content") or "")
            if match:
                offer(match[1], REFRESH)
    for node in tree.css("link[href]"):
        attrs = node.attributes
        rels = (attrs.get("rel") or "").lower().split()
        if "alternate" in rels and "pdf" in (attrs.get("type") or "").lower():
            offer(attrs.get("href"), ALTERNATE)
    for node in tree.css("a[href]"):
        href = node.attributes.get("href") or ""
        rank = _anchor_rank(node, href, base, site)
        if rank is not None:
            offer(href, rank)
    ordered = sorted(ranked, key=lambda url: ranked[url])
    return [(url, ranked[url][0]) for url in ordered[:MAX_LINKS]]


def followable_links(html: str, page_url: str, ids: WorkIds | None = None) -> list[str]:
    """The links of a landing page that may be the article, most trusted first.

    Cited PDFs and supplements are dropped (another work, another file); so are legacy PMC
    article-PDF pages, as from every source (bot walls): the PMCID they name is learnt into
    ``ids``, and so are the page's ``citation_title``/``citation_author`` when no source has
    told the work's title yet (for the identity check of the file the page leads to).
    """
    if ids is not None and ids.title is None:
        learn_citation(html, ids)
    links = []
    for link, rank in ranked_links(html, page_url):
        if rank >= CITED:
            continue
        pmcid = legacy_pmc_pdf(link)
        if pmcid is not None:
            if ids is not None:
                ids.learn(pmcid=pmcid)
            continue
        links.append(link)
    return links


def learn_citation(html: str, ids: WorkIds) -> None:
    """Learn the work's title and first author's family name from a page's Highwire tags
    (``citation_title``, the first ``citation_author``: "Family, Given" or "Given Family")."""
    try:
        tree = LexborHTMLParser(html)
    except Exception:  # never let a page crash a work
        return
    title = author = None
    for node in tree.css("meta[name]"):
        name = (node.attributes.get("name") or "").lower()
        content = node.attributes.get("content") or ""
        if name == "citation_title" and title is None:
            title = content
        elif name == "citation_author" and author is None and content.strip():
            family, _, _ = content.partition(",")
            author = family if "," in content else content.split()[-1]
    ids.learn_about(title=title, author=author)


def _anchor_rank(node: LexborNode, href: str, base: str, site: str) -> int | None:
    """The rank of an ``<a href>`` (``None``: not a PDF link at all)."""
    attrs = node.attributes
    href = href.strip()
    if not href or href.startswith(("#", "javascript:", "mailto:", "data:")):
        return None
    # Cheap tests on the raw href first: a page holds hundreds of anchors.
    last = href.split("#", 1)[0].split("?", 1)[0].rsplit("/", 1)[-1].lower()
    if "." in last and last.rsplit(".", 1)[-1] in _NOT_PDF:
        return None
    label = " ".join(
        part
        for part in (
            node.text(deep=True, separator=" ", strip=True),
            attrs.get("title"),
            attrs.get("aria-label"),
            attrs.get("data-track-label"),
        )
        if part
    )
    typed_pdf = "pdf" in (attrs.get("type") or "").lower() or (
        (attrs.get("data-format") or "").lower() == "pdf"
    )
    pdf_url = bool(_PDFISH.search(href))
    says = bool(_SAYS_ARTICLE.search(label))
    if not (pdf_url or typed_pdf or (says and re.search(r"\bpdf\b|full[\s-]?text", label, re.I))):
        return None
    url = _absolute(base, href)
    if url is None:
        return None
    classes = set((attrs.get("class") or "").lower().split())
    if _SUPPLEMENT.search(f"{label} {' '.join(classes)}") or _SUPPLEMENT_URL.search(href):
        return SUPPLEMENT
    if classes & _CITATION_CLASSES or _in_reference_list(node):
        return CITED
    if (says or typed_pdf) and _site(url) == site:
        return OWN_PDF
    return OTHER_PDF


def _in_reference_list(node: LexborNode) -> bool:
    """Whether the anchor sits in a reference list (``<ol class="references">`` …)."""
    parent = node.parent
    for _ in range(8):
        if parent is None:
            return False
        marker = f"{parent.attributes.get('id') or ''} {parent.attributes.get('class') or ''}"
        if parent.tag in ("ol", "ul", "section", "div") and _REFERENCE_SECTION.search(marker):
            return True
        parent = parent.parent
    return False


def _site(url: str) -> str:
    """The last two labels of the URL's host (``www.peerj.com`` → ``peerj.com``)."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # a malformed host (``http://[::1``)
        return ""
    return ".".join(host.split(".")[-2:])


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
