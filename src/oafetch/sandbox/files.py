"""Serving a work's file according to a copy's mode, with conditional and range requests.

`FileServer.serve` is where the behaviours become bytes on the wire: a 429 on the first request
for a rate-limited URL, 503s before a flapping URL recovers, a dripped body, a Content-Length
that lies, a Cloudflare challenge, HTML dressed as a PDF. Good files honour ``If-None-Match`` /
``If-Modified-Since`` (304) and single ``Range`` requests (206/416).
"""

from __future__ import annotations

import calendar
import threading
from email.utils import formatdate, parsedate_to_datetime

from . import pages
from .corpus import Corpus
from .model import Copy, Mode, SandboxWork
from .wire import Headers, Request, Response, html_response, text_response

SLOW_CHUNKS = 10
TRUNCATE_AT = 0.6
#: Content-Type a good file is served with, per host (others: application/pdf).
HOST_CONTENT_TYPES = {
    "figshare_files": "binary/octet-stream",
    "osf_site": "application/octet-stream",
}


class ServeState:
    """Per-run counters for stateful URLs (rate-limited once, flapping a few times).

    Thread-safe.
    """

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: tuple[str, str]) -> int:
        """Count a request for `key`; return how many came before it."""
        with self._lock:
            before = self._hits.get(key, 0)
            self._hits[key] = before + 1
            return before

    def reset(self) -> None:
        """Forget all counts (rate-limited and flapping URLs misbehave again)."""
        with self._lock:
            self._hits.clear()


def last_modified(work: SandboxWork) -> str:
    """The work's file Last-Modified date (15 January of its year)."""
    return formatdate(calendar.timegm((work.year, 1, 15, 12, 0, 0)), usegmt=True)


def etag(corpus: Corpus, work: SandboxWork) -> str:
    """The strong ETag of the work's file."""
    return f'"sbx{corpus.seed:x}-{work.index}-{work.size}"'


def _not_modified(req: Request, tag: str, modified: str) -> bool:
    inm = req.header("If-None-Match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return tag in tags or "*" in tags
    ims = req.header("If-Modified-Since")
    if ims is None:
        return False
    try:
        return parsedate_to_datetime(ims) >= parsedate_to_datetime(modified)
    except (TypeError, ValueError):
        return False


def _byte_range(spec: str, size: int) -> tuple[int, int] | str | None:
    """(first, last) for a single satisfiable range, None to ignore, "bad" if unsatisfiable."""
    if not spec.startswith("bytes=") or "," in spec:
        return None
    first_text, _, last_text = spec[6:].strip().partition("-")
    try:
        if first_text == "":
            length = int(last_text)
            if length <= 0:
                return "bad"
            return max(0, size - length), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size or last < first:
        return "bad"
    return first, min(last, size - 1)


class FileServer:
    """Turns (work, copy) into a response according to the copy's mode."""

    def __init__(self, corpus: Corpus, state: ServeState, slow_seconds: float) -> None:
        self.corpus = corpus
        self.state = state
        self.slow_seconds = slow_seconds

    def serve_bytes(
        self, req: Request, work: SandboxWork, data: bytes, content_type: str, filename: str
    ) -> Response:
        """A good file: 200, or 304 / 206 / 416 as the request's conditions and range ask."""
        tag, modified = etag(self.corpus, work), last_modified(work)
        headers: Headers = [("ETag", tag), ("Last-Modified", modified), ("Accept-Ranges", "bytes")]
        if _not_modified(req, tag, modified):
            return Response(304, headers)
        headers = [
            ("Content-Type", content_type),
            ("Content-Disposition", f'inline; filename="{filename}"'),
            *headers,
        ]
        spec = req.header("Range")
        wanted = _byte_range(spec, len(data)) if spec else None
        if wanted == "bad":
            return Response(416, [*headers, ("Content-Range", f"bytes */{len(data)}")])
        if isinstance(wanted, tuple):
            first, last = wanted
            headers.append(("Content-Range", f"bytes {first}-{last}/{len(data)}"))
            return Response(206, headers, data[first : last + 1])
        return Response(200, headers, data)

    def serve(self, req: Request, work: SandboxWork, copy: Copy) -> Response:
        """Serve `copy` of `work` as its mode dictates."""
        mode = copy.mode
        key = (copy.host, copy.path)
        content_type = HOST_CONTENT_TYPES.get(copy.host, "application/pdf")
        filename = f"sbx-{work.index:05d}.pdf"
        if mode is Mode.RATE_LIMITED and self.state.hit(key) == 0:
            return text_response("Too Many Requests\n", 429, [("Retry-After", "1")])
        if mode is Mode.FLAPPING and self.state.hit(key) < copy.flaps:
            extra = [] if copy.flaps == 2 else [("Retry-After", "1")]
            return html_response(pages.simple("503 Service Unavailable", "Try later."), 503, extra)
        if mode in (Mode.OK, Mode.RATE_LIMITED, Mode.FLAPPING):
            return self.serve_bytes(req, work, self.corpus.pdf_bytes(work), content_type, filename)
        if mode in (Mode.WRONG_WORK, Mode.SUPPLEMENT_PDF, Mode.NOTICE_PDF):
            data = self.corpus.wrong_bytes(work, mode)
            return Response(200, [("Content-Type", "application/pdf")], data)
        headers: Headers = [("Content-Type", content_type)]
        if mode is Mode.SLOW:
            data = self.corpus.pdf_bytes(work)
            step = -(-len(data) // SLOW_CHUNKS)
            chunks = [data[i : i + step] for i in range(0, len(data), step)]
            pace = self.slow_seconds / max(1, len(chunks))
            return Response(200, headers, chunks=chunks, length=len(data), pace=pace)
        if mode is Mode.TRUNCATED:
            data = self.corpus.pdf_bytes(work)
            cut = int(len(data) * TRUNCATE_AT)
            return Response(200, headers, data[:cut], length=len(data), close=True)
        if mode is Mode.OVERSIZED:
            headers += [("ETag", etag(self.corpus, work)), ("Last-Modified", last_modified(work))]
            stream = self.corpus.oversized_chunks(work)
            return Response(200, headers, chunks=stream, length=work.size)
        return self.refusal(mode, work, copy.host)

    def refusal(self, mode: Mode, work: SandboxWork, host: str) -> Response:
        """The response of a URL that will not give the file (challenge, wall, 404 ...)."""
        if mode is Mode.CHALLENGE:
            ray = f"{work.index:08x}{work.year:04x}"
            return html_response(
                pages.cloudflare_challenge(ray),
                403,
                [
                    ("cf-mitigated", "challenge"),
                    ("Server", "cloudflare"),
                    ("cf-ray", f"{ray}-SBX"),
                    ("Cache-Control", "private, max-age=0, no-store, no-cache, must-revalidate"),
                ],
            )
        if mode is Mode.CAPTCHA_PDF:
            body = pages.captcha(host).encode()
            return Response(200, [("Content-Type", "application/pdf")], body)
        if mode is Mode.HTML_AS_PDF:
            body = pages.article_html(work.title, work.doi).encode()
            return Response(200, [("Content-Type", "application/pdf")], body)
        if mode is Mode.BOT_WALL:
            return html_response(pages.pmc_bot_wall(work.pmcid or ""))
        if mode is Mode.WAF:
            return html_response(pages.aws_waf(), 202, [("x-amzn-waf-action", "challenge")])
        if mode is Mode.FORBIDDEN:
            return html_response(pages.simple("Access denied", "Your IP is not entitled."), 403)
        return html_response(pages.simple("Page not found", "The page has moved or gone."), 404)
