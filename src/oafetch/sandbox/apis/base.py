"""The base of every service imitation: routing, robots.txt, landing pages and a body cache.

An `App` owns the routes of one sandbox service. `SiteApp` adds what every web host does
(serve the corpus's copies and landing pages found at the requested path). Handlers receive the
parsed request and the route's regex match and return a `Response`; they must be cheap and
thread-safe (the body cache is locked, everything else is read-only).
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from .. import pages
from ..behaviours import TDM_POLICY_PATH
from ..corpus import Corpus
from ..files import FileServer, last_modified
from ..model import PAGE_GOOD_MODES, Behaviour, Copy, Mode, Page, SandboxWork
from ..ratecheck import RateSpec
from ..urls import PATH_SAFE, Urls
from ..wire import Request, Response, html_response, text_response

RouteHandler = Callable[[Request, re.Match[str]], Response]
_MEMO_ENTRIES = 4096


@dataclass(frozen=True)
class Context:
    """What every service imitation shares: the corpus, live URLs, file serving, settings."""

    corpus: Corpus
    urls: Urls
    files: FileServer
    rates: Mapping[str, RateSpec]
    arxiv_crawl_delay: float


class App:
    """One service: a route table tried in order, plus robots.txt."""

    #: (status, body) of /robots.txt; API hosts have none (404: allow all).
    robots: tuple[int, str] = (404, "Not Found\n")

    def __init__(self, service: str, ctx: Context) -> None:
        self.service = service
        self.ctx = ctx
        self.corpus: Corpus = ctx.corpus
        self.urls: Urls = ctx.urls
        self._routes: list[tuple[frozenset[str], re.Pattern[str], RouteHandler]] = []
        self._memo: OrderedDict[object, bytes] = OrderedDict()
        self._memo_lock = threading.Lock()
        self.setup()

    def setup(self) -> None:
        """Register routes (subclasses)."""

    def route(
        self, pattern: str, handler: RouteHandler, methods: tuple[str, ...] = ("GET",)
    ) -> None:
        """Serve paths fully matching `pattern` with `handler` (GET implies HEAD)."""
        allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())
        self._routes.append((frozenset(allowed), re.compile(pattern), handler))

    def handle(self, req: Request) -> Response:
        """Dispatch one request."""
        if req.path == "/robots.txt":
            status, body = self.robots
            return text_response(body, status)
        for methods, pattern, handler in self._routes:
            match = pattern.fullmatch(req.path)
            if match is None:
                continue
            if req.method not in methods:
                allow = ", ".join(sorted(methods))
                return text_response("Method Not Allowed\n", 405, [("Allow", allow)])
            return handler(req, match)
        return self.fallback(req)

    def fallback(self, req: Request) -> Response:
        """Answer a path no route matched (default: 404 HTML)."""
        return html_response(pages.simple("Not Found", f"No such page: {req.path}"), 404)

    def memo(self, key: object, build: Callable[[], bytes]) -> bytes:
        """A cached body: built once per key (bounded LRU)."""
        with self._memo_lock:
            body = self._memo.get(key)
            if body is not None:
                self._memo.move_to_end(key)
                return body
        body = build()
        with self._memo_lock:
            self._memo[key] = body
            if len(self._memo) > _MEMO_ENTRIES:
                self._memo.popitem(last=False)
        return body

    def copy_url(self, copy: Copy) -> str:
        """The absolute URL of a copy."""
        return self.urls.url(copy.host, copy.path)

    def page_url(self, page: Page) -> str:
        """The absolute URL of a landing page."""
        return self.urls.url(page.host, page.path)


def relative_ref(from_path: str, to_path: str) -> str:
    """A relative reference from page `from_path` to `to_path` on the same host (quoted)."""
    base_dir = posixpath.dirname(from_path) or "/"
    ref = posixpath.relpath(to_path, base_dir)
    if ":" in ref.split("/", 1)[0]:
        ref = "./" + ref  # a colon in the first segment would read as a scheme
    return quote(ref, safe=PATH_SAFE)


class SiteApp(App):
    """A web host: serves the corpus's copies and landing pages at their paths."""

    robots = (200, "User-agent: *\nAllow: /\n")
    site_name = "Sandbox site"

    def fallback(self, req: Request) -> Response:
        found = self.corpus.copy_at(self.service, req.path)
        if found is not None:
            return self.ctx.files.serve(req, *found)
        page = self.corpus.page_at(self.service, req.path)
        if page is not None:
            return self.serve_page(*page)
        return self.missing(req)

    def missing(self, req: Request) -> Response:
        """A path that holds nothing."""
        return super().fallback(req)

    def purchase_path(self, work: SandboxWork) -> str | None:
        """Where a paywalled page's "Buy PDF" link leads (None: no such link)."""
        return None

    def serve_page(self, work: SandboxWork, page: Page) -> Response:
        """A landing page, or what stands in its way (404, challenge, WAF).

        A page fronted by Cloudflare (``CF_SCRIPT``) is the same page with the bot-detection
        script Cloudflare injects, and Cloudflare's response headers.
        """
        if page.mode not in PAGE_GOOD_MODES:
            return self.ctx.files.refusal(page.mode, work, self.service)
        body = self.memo(("page", work.index, page.path), lambda: self.render_page(work, page))
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Last-Modified", last_modified(work)),
        ]
        if page.mode is Mode.CF_SCRIPT:
            ray = f"{work.index:08x}{work.year:04x}"
            body = pages.with_cloudflare_script(body.decode(), ray, f"{work.year}").encode()
            headers += [("Server", "cloudflare"), ("cf-ray", f"{ray}-SBX")]
        return Response(200, headers, body)

    def render_page(self, work: SandboxWork, page: Page) -> bytes:
        """The HTML of a landing page linking its copy in the page's style."""
        return landing_html(self.urls, work, page, self.site_name, self.purchase_path(work))


def landing_html(
    urls: Urls, work: SandboxWork, page: Page, site: str, purchase_path: str | None = None
) -> bytes:
    """A landing page's HTML: links the page's copy (absolute, or relative on the same host)."""
    copy = work.copies[page.links] if page.links is not None else None
    pdf_url = urls.url(copy.host, copy.path) if copy is not None else None
    pdf_rel = pdf_url
    if copy is not None and copy.host == page.host:
        pdf_rel = relative_ref(page.path, copy.path)
    return pages.landing(
        site=site,
        title=work.title,
        doi=work.doi,
        year=work.year,
        style=page.style,
        pdf_url=pdf_url,
        pdf_relative=pdf_rel,
        purchase_path=purchase_path,
        supplement_path=supplement_path(work) if page.host == work.publisher else None,
        tdm_policy=urls.url(page.host, TDM_POLICY_PATH) if reserves_by_meta(work, page) else None,
    ).encode()


def reserves_by_meta(work: SandboxWork, page: Page) -> bool:
    """Whether ``page`` is the publisher page of a work reserved by TDMRep meta elements."""
    return (
        work.behaviour is Behaviour.TDM_RESERVED
        and work.variant == "meta"
        and page.host == work.publisher
    )


def supplement_path(work: SandboxWork) -> str:
    """Where a publisher serves the work's supplementary PDF (listed by anchor-style pages)."""
    return f"/suppl/sbx-{work.index:05d}-s001.pdf"
