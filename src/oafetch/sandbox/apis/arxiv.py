"""arXiv imitations: the export API's Atom feed and arxiv.org's PDF/abstract pages.

``arxiv_api``: ``GET /api/query?id_list=a,b`` -> an Atom feed (namespaces as the real one);
a malformed id -> HTTP 400 with the error feed (one entry titled "Error"); a well-formed
unknown id -> an empty feed. ``arxiv``: ``/pdf/{id}[vN][.pdf]`` (new and old-style ids; the
unversioned and latest-version URLs give the expected file, older versions give other bytes),
``/abs/{id}[vN]`` with a ``citation_pdf_url`` meta tag, and robots.txt with Crawl-delay.
"""

from __future__ import annotations

import functools
import re
from xml.sax.saxutils import escape, quoteattr

from ..ids import arxiv_version, norm_arxiv
from ..model import SandboxWork
from ..publishers import ARXIV_DISALLOWED
from ..wire import Request, Response, html_response, text_response, xml_response
from .base import App, SiteApp

_FEED_OPEN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<feed xmlns="http://www.w3.org/2005/Atom" '
    'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
    'xmlns:arxiv="http://arxiv.org/schemas/atom">\n'
)
_ATOM = "application/atom+xml"


class ArxivApiApp(App):
    """export.arxiv.org: ``/api/query``."""

    def setup(self) -> None:
        self.route(r"/api/query", self.query)

    def _feed(self, req: Request, entries: list[str], title: str) -> str:
        self_link = quoteattr(self.urls.bases[self.service] + req.target)
        return (
            _FEED_OPEN
            + f'  <link href={self_link} rel="self" type="application/atom+xml"/>\n'
            + f'  <title type="html">ArXiv Query: {escape(title)}</title>\n'
            + f"  <id>{escape(self.urls.url(self.service, '/api/' + title))}</id>\n"
            + "  <updated>2025-06-01T00:00:00-04:00</updated>\n"
            + f"  <opensearch:totalResults>{len(entries)}</opensearch:totalResults>\n"
            + "  <opensearch:startIndex>0</opensearch:startIndex>\n"
            + f"  <opensearch:itemsPerPage>{len(entries)}</opensearch:itemsPerPage>\n"
            + "".join(entries)
            + "</feed>\n"
        )

    def _error_entry(self, bad: str) -> str:
        anchor = escape(self.urls.url(self.service, f"/api/errors#incorrect_id_format_for_{bad}"))
        return (
            "  <entry>\n"
            f"    <id>{anchor}</id>\n"
            "    <title>Error</title>\n"
            f"    <summary>incorrect id format for {escape(bad)}</summary>\n"
            "    <updated>2025-06-01T00:00:00-04:00</updated>\n"
            f'    <link href="{anchor}" rel="alternate" type="text/html"/>\n'
            "    <author><name>arXiv api core</name></author>\n"
            "  </entry>\n"
        )

    def entry_bytes(self, work: SandboxWork) -> bytes:
        """`entry` encoded (the cached form)."""
        return self.entry(work).encode()

    def entry(self, work: SandboxWork) -> str:
        """One ``<entry>`` for `work` (latest version)."""
        assert work.arxiv_id is not None
        versioned = f"{work.arxiv_id}v{work.arxiv_version}"
        abs_url = escape(self.urls.url("arxiv", f"/abs/{versioned}"))
        pdf_url = escape(self.urls.url("arxiv", f"/pdf/{versioned}"))
        category = work.arxiv_id.split("/")[0] if "/" in work.arxiv_id else "cs.LG"
        doi_lines = ""
        if not work.doi.lower().startswith("10.48550/"):
            doi_url = escape(self.urls.doi_url(work.doi))
            doi_lines = (
                f'    <link title="doi" href="{doi_url}" rel="related"/>\n'
                f"    <arxiv:doi>{escape(work.doi)}</arxiv:doi>\n"
            )
        return (
            "  <entry>\n"
            f"    <id>{abs_url}</id>\n"
            f"    <updated>{work.year}-03-01T00:00:00Z</updated>\n"
            f"    <published>{work.year}-01-15T00:00:00Z</published>\n"
            f"    <title>{escape(work.title)}</title>\n"
            f"    <summary>We study {escape(work.title.lower())}.</summary>\n"
            f"    <author><name>Ada Sandbox{work.index}</name></author>\n"
            f"{doi_lines}"
            f'    <link href="{abs_url}" rel="alternate" type="text/html"/>\n'
            f'    <link title="pdf" href="{pdf_url}" rel="related" type="application/pdf"/>\n'
            f'    <arxiv:primary_category term="{escape(category)}" '
            'scheme="http://arxiv.org/schemas/atom"/>\n'
            f'    <category term="{escape(category)}" scheme="http://arxiv.org/schemas/atom"/>\n'
            "  </entry>\n"
        )

    def query(self, req: Request, match: re.Match[str]) -> Response:
        raw = req.arg("id_list") or ""
        wanted = [part.strip() for part in raw.split(",") if part.strip()]
        for item in wanted:
            if norm_arxiv(item) is None:
                feed = self._feed(req, [self._error_entry(item)], f"id_list={raw}")
                return xml_response(feed, 400, _ATOM)
        entries = []
        for item in wanted:
            work = self.corpus.by_arxiv(item)
            if work is not None:
                entries.append(
                    self.memo(work.index, functools.partial(self.entry_bytes, work)).decode()
                )
        title = f"id_list={raw}" if raw else (req.arg("search_query") or "")
        return xml_response(self._feed(req, entries, title), 200, _ATOM)


class ArxivSiteApp(SiteApp):
    """arxiv.org: PDFs, abstract pages, robots.txt."""

    site_name = "arXiv.org"

    def setup(self) -> None:
        delay = self.ctx.arxiv_crawl_delay
        disallow = "".join(f"Disallow: {p}\n" for p in ARXIV_DISALLOWED)
        self.robots = (
            200,
            f"User-agent: *\nCrawl-delay: {delay:g}\nAllow: /pdf\nAllow: /abs\n"
            f"Allow: /html\n{disallow}",
        )
        self.route(r"/pdf/(?P<id>.+)", self.pdf)
        self.route(r"/abs/(?P<id>.+)", self.abstract)
        self.route(r"/(?:e-print|api|search)(?:/.*)?", self.forbidden)

    def _lookup(self, raw: str) -> tuple[SandboxWork, int | None] | None:
        work = self.corpus.by_arxiv(raw)
        if work is None:
            return None
        version = arxiv_version(raw)
        if version is not None and not 1 <= version <= work.arxiv_version:
            return None
        return work, version

    def pdf(self, req: Request, match: re.Match[str]) -> Response:
        found = self._lookup(match["id"])
        if found is None:
            return html_response("<h1>Article identifier not recognized</h1>", 404)
        work, version = found
        copy = next((c for c in work.copies if c.host == "arxiv"), None)
        if copy is None:
            return html_response("<h1>PDF unavailable</h1>", 404)
        name = f"{work.arxiv_id}v{version or work.arxiv_version}".replace("/", "")
        if version is not None and version < work.arxiv_version:
            data = self.corpus.pdf_bytes(work, version)
            return self.ctx.files.serve_bytes(req, work, data, "application/pdf", f"{name}.pdf")
        return self.ctx.files.serve(req, work, copy)

    def abstract(self, req: Request, match: re.Match[str]) -> Response:
        found = self._lookup(match["id"])
        page = None
        if found is not None:
            page = next((p for p in found[0].pages if p.host == "arxiv"), None)
        if found is None or page is None:
            return html_response("<h1>Article identifier not recognized</h1>", 404)
        return self.serve_page(found[0], page)

    def forbidden(self, req: Request, match: re.Match[str]) -> Response:
        return text_response("Access denied\n", 403)
