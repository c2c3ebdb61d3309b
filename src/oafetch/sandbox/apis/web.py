"""The open web: doi.org, the Wayback Machine and the publisher hosts.

- ``doi``: ``GET /{doi}`` -> 302 to the work's landing page (a publisher page, or a repository
  page for DataCite/OSF DOIs); unknown -> 404 HTML.
- ``wayback``: ``/wayback/available?url=``, ``/cdx/search/cdx?url=&output=json&filter=``,
  ``/web/{ts}id_/{original}`` (raw bytes; a wrong timestamp redirects to the capture's) and
  ``/web/{ts}/{original}`` (the toolbar page wrapping the capture). URLs are matched on sandbox
  host + path, whatever the scheme; ``https://doi.org/...`` URLs are understood too.
- ``publisherN``: landing pages, PDFs (in every mode), ``/purchase/...`` checkout pages and
  robots.txt according to the host's role (see `publishers`).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import re
from datetime import datetime
from email.utils import formatdate

from .. import pages
from ..behaviours import LANDING, TDM_POLICY_PATH
from ..model import Behaviour, Mode, Page, SandboxWork, Snapshot
from ..wire import Request, Response, html_response, json_response, redirect, text_response
from .base import App, SiteApp, landing_html

_CDX_FIELDS = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length")
_PLAYBACK = re.compile(r"^/web/(?P<ts>\d{1,14})(?P<flag>[a-z]{2}_)?/(?P<orig>.+)$")


class DoiApp(App):
    """doi.org."""

    robots = (200, "User-agent: *\nAllow: /\n")

    def setup(self) -> None:
        self.route(r"/(?P<doi>10\.\d{4,9}/.+)", self.resolve)

    def resolve(self, req: Request, match: re.Match[str]) -> Response:
        work = self.corpus.by_doi(match["doi"])
        page = None
        if work is not None:
            page = next((p for p in work.pages if LANDING in p.listed_by), None)
        if work is None or page is None:
            body = pages.simple("DOI Not Found", f"{match['doi']} is not a registered DOI.")
            return html_response(body, 404)
        return redirect(self.page_url(page), 302, [("Expires", "Mon, 01 Jan 2024 00:00:00 GMT")])


def _surt(original: str) -> str:
    rest = original.split("://", 1)[-1]
    host, _, path = rest.partition("/")
    name, _, port = host.partition(":")
    if not re.fullmatch(r"[\d.]+", name):
        name = ",".join(reversed(name.split(".")))
    return f"{name}{':' + port if port else ''})/{path}".lower()


class WaybackApp(App):
    """archive.org's availability API, CDX server and playback."""

    robots = (200, "User-agent: *\nAllow: /\n")

    def setup(self) -> None:
        self.route(r"/wayback/available/?", self.available)
        self.route(r"/cdx/search/cdx", self.cdx)
        self.route(r"/web/.+", self.playback)

    def _find(self, url: str) -> tuple[SandboxWork, Snapshot] | None:
        located = self.urls.locate(url)
        return self.corpus.snapshot_of(*located) if located is not None else None

    def original(self, snap: Snapshot) -> str:
        """The URL that was captured."""
        return self.urls.url(snap.host, snap.path)

    def content(self, work: SandboxWork, snap: Snapshot) -> bytes:
        """The captured bytes: the work's PDF, or its landing page as it was."""
        if snap.kind == "pdf":
            return self.corpus.pdf_bytes(work)
        return self.memo(("html", snap.host, snap.path), lambda: self._page_html(work, snap))

    def _page_html(self, work: SandboxWork, snap: Snapshot) -> bytes:
        page = self.corpus.page_at(snap.host, snap.path)
        captured = page[1] if page else next(p for p in work.pages if LANDING in p.listed_by)
        as_it_was = Page(
            captured.host,
            captured.path,
            Mode.OK,
            captured.style,
            captured.links,
            captured.listed_by,
        )
        site = "Sandbox Publisher " + captured.host.removeprefix("publisher")
        return landing_html(self.urls, work, as_it_was, site)

    def available(self, req: Request, match: re.Match[str]) -> Response:
        url = req.arg("url") or ""
        found = self._find(url) if url else None
        if found is None:
            return json_response({"url": url, "archived_snapshots": {}})
        snap = found[1]
        playback = self.urls.url(self.service, f"/web/{snap.timestamp}/") + self.original(snap)
        closest = {"status": "200", "available": True, "url": playback, "timestamp": snap.timestamp}
        return json_response({"url": url, "archived_snapshots": {"closest": closest}})

    def _row(self, work: SandboxWork, snap: Snapshot) -> dict[str, str]:
        data = self.content(work, snap)
        digest = base64.b32encode(hashlib.sha1(data).digest()).decode()
        original = self.original(snap)
        mimetype = "application/pdf" if snap.kind == "pdf" else "text/html"
        return {
            "urlkey": _surt(original),
            "timestamp": snap.timestamp,
            "original": original,
            "mimetype": mimetype,
            "statuscode": "200",
            "digest": digest,
            "length": str(len(data)),
        }

    def cdx(self, req: Request, match: re.Match[str]) -> Response:
        url = req.arg("url") or ""
        if not url:
            return text_response("Missing url parameter\n", 400)
        found = self._find(url)
        rows = [self._row(*found)] if found is not None else []
        for spec in req.args("filter"):
            negate = spec.startswith("!")
            field, _, pattern = spec.lstrip("!").partition(":")
            if field not in _CDX_FIELDS:
                return text_response(f"Invalid filter field: {field}\n", 400)
            rows = [r for r in rows if bool(re.fullmatch(pattern, r[field])) != negate]
        if (req.arg("output") or "").lower() == "json":
            table = (
                [list(_CDX_FIELDS)] + [[r[f] for f in _CDX_FIELDS] for r in rows] if rows else []
            )
            return json_response(table)
        lines = "".join(" ".join(r[f] for f in _CDX_FIELDS) + "\n" for r in rows)
        return text_response(lines)

    def playback(self, req: Request, match: re.Match[str]) -> Response:
        parts = _PLAYBACK.match(req.target)
        found = self._find(parts["orig"]) if parts else None
        if parts is None or found is None:
            body = pages.simple("Wayback Machine", "The Wayback Machine has not archived that URL.")
            return html_response(body, 404)
        work, snap = found
        flag = parts["flag"] or ""
        original = self.original(snap)
        if parts["ts"] != snap.timestamp:
            return redirect(self.urls.url(self.service, f"/web/{snap.timestamp}{flag}/") + original)
        stamp = calendar.timegm(datetime.strptime(snap.timestamp, "%Y%m%d%H%M%S").timetuple())
        memento = [
            ("Memento-Datetime", formatdate(stamp, usegmt=True)),
            ("x-archive-src", f"sandbox-{snap.timestamp[:8]}.warc.gz"),
        ]
        if not flag:
            raw = self.urls.url(self.service, f"/web/{snap.timestamp}id_/") + original
            frame = pages.wayback_frame(original, raw, snap.timestamp)
            return html_response(frame, 200, memento)
        data = self.content(work, snap)
        if snap.kind == "pdf":
            filename = f"sbx-{work.index:05d}.pdf"
            response = self.ctx.files.serve_bytes(req, work, data, "application/pdf", filename)
            response.headers.extend(memento)
            return response
        return Response(200, [("Content-Type", "text/html; charset=utf-8"), *memento], data)


class PublisherApp(SiteApp):
    """A publisher host."""

    def setup(self) -> None:
        publisher = self.corpus.publisher(self.service)
        if publisher is None:
            raise ValueError(f"service {self.service!r} is not a publisher of the corpus")
        self.robots = publisher.robots_txt()
        self.site_name = "Sandbox Publisher " + str(publisher.number)
        self.route(r"/", self.home)
        self.route(r"/purchase/(?P<slug>[\w.-]+)", self.purchase)
        self.route(r"/suppl/sbx-(?P<index>\d{5})-s001\.pdf", self.supplement)
        self.route(r"/\.well-known/tdmrep\.json", self.tdmrep)
        self.route(re.escape(TDM_POLICY_PATH), self.tdm_policy)

    def _reserved(self, variant: str) -> list[SandboxWork]:
        return [
            w
            for w in self.corpus.works
            if w.publisher == self.service
            and w.behaviour is Behaviour.TDM_RESERVED
            and w.variant == variant
        ]

    def tdmrep(self, req: Request, match: re.Match[str]) -> Response:
        """TDMRep rules: one per PDF of the works reserved this way; 404 when there are none,
        as on most sites."""
        policy = self.urls.url(self.service, TDM_POLICY_PATH)
        rules = [
            {"location": c.path + "$", "tdm-reservation": 1, "tdm-policy": policy}
            for w in self._reserved("well_known")
            for c in w.copies
            if c.host == self.service
        ]
        if not rules:
            return self.missing(req)
        return json_response(rules)

    def tdm_policy(self, req: Request, match: re.Match[str]) -> Response:
        """A machine-readable TDM policy (an ODRL offer): how to ask for a licence."""
        return json_response(
            {
                "@context": [
                    "http://www.w3.org/ns/odrl.jsonld",
                    {"tdm": "http://www.w3.org/ns/tdmrep#"},
                ],
                "@type": "Offer",
                "profile": "http://www.w3.org/ns/tdmrep",
                "uid": self.urls.url(self.service, TDM_POLICY_PATH),
                "assigner": {"uid": f"mailto:licensing@{self.service}.example"},
                "permission": [{"target": self.urls.url(self.service, "/"), "action": "tdm:mine"}],
            }
        )

    def fallback(self, req: Request) -> Response:
        """A copy or page; the PDF of a work reserved by header carries TDMRep headers."""
        response = super().fallback(req)
        found = self.corpus.copy_at(self.service, req.path)
        if found is not None and response.status == 200:
            work, _ = found
            if work.behaviour is Behaviour.TDM_RESERVED and work.variant == "header":
                policy = self.urls.url(self.service, TDM_POLICY_PATH)
                response.headers.extend([("tdm-reservation", "1"), ("tdm-policy", policy)])
        return response

    def purchase_path(self, work: SandboxWork) -> str | None:
        return f"/purchase/sbx-{work.index:05d}"

    def supplement(self, req: Request, match: re.Match[str]) -> Response:
        """A work's supplementary PDF: a valid PDF, but not the article."""
        index = int(match["index"])
        work = self.corpus.works[index] if index < len(self.corpus.works) else None
        if work is None or work.index != index or work.publisher != self.service:
            return self.missing(req)
        data = self.corpus.supplement_bytes(work)
        return self.ctx.files.serve_bytes(
            req, work, data, "application/pdf", f"sbx-{index:05d}-s001.pdf"
        )

    def home(self, req: Request, match: re.Match[str]) -> Response:
        return html_response(pages.simple(self.site_name, "Journals and books."))

    def purchase(self, req: Request, match: re.Match[str]) -> Response:
        body = pages.simple("Checkout", f"Add {match['slug']} to your basket (USD 39.95).")
        return html_response(body)
