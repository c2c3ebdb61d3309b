"""Aggregators and archives: CORE, HAL, DOAJ and OpenAIRE (scholarly-apis.md 8, 9, 12, 14).

- ``core``: ``POST /v3/discover`` and ``GET /v3/search/works/?q=doi:"..."`` need
  ``Authorization: Bearer ...`` (else 401); ``/v3/search/works`` without the slash answers 301;
  ``/v3/works/{id}/download`` answers 302 to ``core_site`` (a different host: a client must not
  forward the token). Files on ``core_site``: ``/download/pdf/{id}.pdf``, ``/download/{id}.pdf``.
- ``hal``: ``/search/?q=doiId_s:"..."&fl=...&wt=json``; ``files_s`` is an array for some works
  and a scalar for others; notice-only records have no ``fileMain_s``. Files on ``hal_site``.
- ``doaj``: ``/api/search/articles/doi:{doi}`` (also ``/api/v4/...``); links are landing pages;
  paths outside ``/api`` answer 403 HTML.
- ``openaire``: ``/graph/v1/researchProducts?pid={doi}``; instance URLs are landing pages.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import unquote

from .. import pages
from ..behaviours import DOAJ, OPENAIRE
from ..ids import norm_doi
from ..model import Behaviour, Copy, SandboxWork
from ..wire import Request, Response, html_response, json_response, redirect
from .base import App, SiteApp

_FIELD_QUERY = re.compile(r'(\w+):\s*(?:"([^"]*)"|(\S+))')
_HAL_DEFAULT_FL = "docid,label_s,uri_s"


def _core_copies(work: SandboxWork) -> list[Copy]:
    return [c for c in work.copies if c.host == "core_site"]


class CoreApp(App):
    """api.core.ac.uk v3."""

    def setup(self) -> None:
        self.route(r"/v3/discover/?", self.discover, ("POST",))
        self.route(r"/v3/search/works/", self.search)
        self.route(r"/v3/search/works", self.append_slash)
        self.route(r"/v3/works/(?P<id>\d+)/download", self.download)
        self.route(r"/v3/works/(?P<id>\d+)", self.work)

    @staticmethod
    def _headers() -> list[tuple[str, str]]:
        return [("X-RateLimit-Limit", "10000"), ("X-RateLimitRemaining", "9999")]

    def _denied(self, req: Request) -> Response | None:
        auth = req.header("Authorization") or ""
        if (auth.lower().startswith("bearer ") and auth[7:].strip()) or req.arg("apiKey"):
            return None
        return json_response(
            {"message": "Unauthorized: an API key is required"}, 401, self._headers()
        )

    def append_slash(self, req: Request, match: re.Match[str]) -> Response:
        query = req.target.partition("?")[2]
        return redirect(self.urls.url(self.service, req.path + "/") + f"?{query}", 301)

    def render(self, work: SandboxWork) -> dict[str, Any]:
        """A CORE work object."""
        core = work.repo_ids["core"]
        download = self.urls.url("core_site", f"/download/{core}.pdf")
        return {
            "id": int(core),
            "doi": work.doi,
            "title": work.title,
            "yearPublished": work.year,
            "downloadUrl": download,
            "sourceFulltextUrls": [],
            "links": [
                {"type": "download", "url": download},
                {"type": "display", "url": self.urls.url("core_site", f"/works/{core}")},
            ],
        }

    def discover(self, req: Request, match: re.Match[str]) -> Response:
        denied = self._denied(req)
        if denied is not None:
            return denied
        payload = req.json()
        doi = payload.get("doi") if isinstance(payload, dict) else None
        if not isinstance(doi, str) or not doi:
            return json_response({"message": "doi is required"}, 400, self._headers())
        work = self.corpus.by_doi(doi)
        copies = _core_copies(work) if work is not None else []
        if not copies:
            return json_response({"fullTextLink": None, "source": None}, headers=self._headers())
        return json_response(
            {"fullTextLink": self.copy_url(copies[0]), "source": "CORE"}, headers=self._headers()
        )

    def search(self, req: Request, match: re.Match[str]) -> Response:
        denied = self._denied(req)
        if denied is not None:
            return denied
        limit_text = req.arg("limit") or "10"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            return json_response({"message": "limit must be between 1 and 100"}, 400)
        found = _FIELD_QUERY.search(req.arg("q") or "")
        work = None
        if found is not None and found.group(1).lower() == "doi":
            work = self.corpus.by_doi(found.group(2) or found.group(3))
        results = [self.render(work)] if work is not None and _core_copies(work) else []
        return json_response(
            {"totalHits": len(results), "limit": int(limit_text), "offset": 0, "results": results},
            headers=self._headers(),
        )

    def _work(self, core_id: str) -> SandboxWork | None:
        work = self.corpus.by_repo("core", core_id)
        return work if work is not None and _core_copies(work) else None

    def work(self, req: Request, match: re.Match[str]) -> Response:
        denied = self._denied(req)
        if denied is not None:
            return denied
        work = self._work(match["id"])
        if work is None:
            return json_response({"message": "Not found"}, 404)
        return json_response(self.render(work), headers=self._headers())

    def download(self, req: Request, match: re.Match[str]) -> Response:
        if self._work(match["id"]) is None:
            return json_response({"message": "Not found"}, 404)
        return redirect(self.urls.url("core_site", f"/download/{match['id']}.pdf"))


class CoreSiteApp(SiteApp):
    """core.ac.uk: the downloads."""

    site_name = "CORE"

    def setup(self) -> None:
        self.route(r"/works/(?P<id>\d+)", self.display)

    def display(self, req: Request, match: re.Match[str]) -> Response:
        if self.corpus.by_repo("core", match["id"]) is None:
            return self.missing(req)
        return html_response(pages.simple(f"CORE work {match['id']}", "Full text available."))


class HalApp(App):
    """api.archives-ouvertes.fr search."""

    def setup(self) -> None:
        self.route(r"/search/?", self.search)

    def doc(self, work: SandboxWork) -> dict[str, Any]:
        """Every field of the HAL document; the caller applies ``fl``."""
        hal = work.repo_ids["hal"]
        files = [c for c in work.copies if c.host == "hal_site"]
        doc: dict[str, Any] = {
            "docid": int(hal.removeprefix("hal-")),
            "halId_s": hal,
            "doiId_s": work.doi,
            "uri_s": self.urls.url("hal_site", f"/{hal}"),
            "label_s": work.title,
            "title_s": [work.title],
            "openAccess_bool": bool(files),
            "submitType_s": "file" if files else "notice",
            "linkExtUrl_s": self.urls.doi_url(work.doi),
        }
        if files:
            doc["fileMain_s"] = self.copy_url(files[0])
            listed = [self.copy_url(c) for c in files[1:]]
            doc["files_s"] = listed[0] if "hal_files_scalar" in work.flags else listed
        return doc

    def search(self, req: Request, match: re.Match[str]) -> Response:
        query = req.arg("q") or "*:*"
        found = _FIELD_QUERY.search(query)
        work = None
        if found is not None:
            field, value = found.group(1), found.group(2) or found.group(3)
            if field == "doiId_s":
                work = self.corpus.by_doi(value)
            elif field == "halId_s":
                work = self.corpus.by_repo("hal", value)
        docs = []
        if work is not None and "hal" in work.repo_ids:
            fields = [f.strip() for f in (req.arg("fl") or _HAL_DEFAULT_FL).split(",")]
            full = self.doc(work)
            docs = [full if "*" in fields else {k: full[k] for k in fields if k in full}]
        return json_response(
            {"response": {"numFound": len(docs), "start": 0, "numFoundExact": True, "docs": docs}}
        )


class HalSiteApp(SiteApp):
    """hal.science: documents and landing pages."""

    site_name = "HAL"


class DoajApp(App):
    """doaj.org: the article search API."""

    robots = (200, "User-agent: *\nDisallow: /account/\n")

    def setup(self) -> None:
        self.route(r"/api/(?:v\d/)?search/articles/(?P<q>.+)", self.search)

    def fallback(self, req: Request) -> Response:
        if req.path.startswith("/api"):
            return json_response({"error": "Not found"}, 404)
        return html_response(pages.simple("Forbidden", "Access to this path is forbidden."), 403)

    def search(self, req: Request, match: re.Match[str]) -> Response:
        query = unquote(match["q"]).strip()
        if not query:
            return json_response({"error": "Query must not be empty"}, 400)
        work = None
        if query.lower().startswith("doi:"):
            work = self.corpus.by_doi(norm_doi(query[4:].strip().strip('"')))
        listed = work.pages_listed_by(DOAJ) if work is not None else []
        results = []
        if work is not None and listed:
            links = [
                {"type": "fulltext", "url": self.page_url(p), "content_type": "HTML"}
                for p in listed
            ]
            results.append(
                {
                    "id": hashlib.md5(work.doi.encode()).hexdigest(),
                    "created_date": f"{work.year}-02-01T00:00:00Z",
                    "last_updated": "2025-06-01T00:00:00Z",
                    "bibjson": {
                        "title": work.title,
                        "year": str(work.year),
                        "identifier": [
                            {"type": "doi", "id": work.doi},
                            {"type": "eissn", "id": "2049-3630"},
                        ],
                        "link": links,
                        "journal": {"title": "Sandbox J", "publisher": "Sandbox"},
                    },
                }
            )
        return json_response(
            {
                "total": len(results),
                "page": 1,
                "pageSize": 10,
                "timestamp": "2025-06-01T00:00:00Z",
                "query": query,
                "results": results,
            }
        )


class OpenAireApp(App):
    """api.openaire.eu Graph API v1."""

    def setup(self) -> None:
        self.route(r"/graph/v1/researchProducts/?", self.products)

    def product(self, work: SandboxWork) -> dict[str, Any]:
        """One research product."""
        is_open = work.behaviour is not Behaviour.NO_OA
        access = {
            "code": "c_abf2" if is_open else "c_14cb",
            "label": "OPEN" if is_open else "CLOSED",
            "scheme": "http://vocabularies.coar-repositories.org/documentation/access_rights/",
        }
        pids = [{"scheme": "doi", "value": work.doi}]
        if work.pmcid:
            pids.append({"scheme": "pmc", "value": work.pmcid})
        if work.pmid:
            pids.append({"scheme": "pmid", "value": work.pmid})
        instances = [
            {
                "type": "Article",
                "urls": [self.page_url(p)],
                "license": "CC BY",
                "accessRight": access,
                "hostedBy": {"value": p.host},
            }
            for p in work.pages_listed_by(OPENAIRE)
        ]
        if not instances:
            instances = [
                {"type": "Article", "urls": [self.urls.doi_url(work.doi)], "accessRight": access}
            ]
        return {
            "id": "doi_dedup___::" + hashlib.md5(work.doi.lower().encode()).hexdigest(),
            "mainTitle": work.title,
            "type": "publication",
            "publicationDate": f"{work.year}-01-15",
            "pids": pids,
            "bestAccessRight": access,
            "openAccessColor": "gold" if is_open else None,
            "instances": instances,
        }

    def products(self, req: Request, match: re.Match[str]) -> Response:
        pid = req.arg("pid") or req.arg("doi")
        work = self.corpus.by_doi(pid) if pid else None
        results = [self.product(work)] if work is not None else []
        headers = [("x-ratelimit-limit", "7200"), ("x-ratelimit-used", "1")]
        return json_response(
            {
                "header": {
                    "numFound": len(results),
                    "maxScore": 1.0,
                    "queryTime": 5,
                    "page": 1,
                    "pageSize": 10,
                },
                "results": results,
            },
            headers=headers,
        )
