"""Deposit repositories: Zenodo, figshare (+ ndownloader) and OSF (+ osf.io downloads).

- ``zenodo``: ``/api/records/{recid}``, ``/api/records?q=doi:"..."``, file content at
  ``/api/records/{recid}/files/{key}/content``, record pages at ``/records/{recid}``.
- ``figshare``: ``/v2/articles/{id}``, ``POST /v2/articles/search`` (``{"doi": ...}``); its
  public article pages answer 202 with an AWS WAF challenge. Files on ``figshare_files``
  (``/files/{id}``, served as ``binary/octet-stream``).
- ``osf``: ``/v2/preprints/{guid}/`` -> ``primary_file`` -> ``/v2/files/{id}/`` ->
  ``links.download`` on ``osf_site`` (``/download/{id}/``). Withdrawn preprints have a null
  ``primary_file``. Paths without the trailing slash answer 301, as Django's APPEND_SLASH does.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .. import pages
from ..ids import norm_doi
from ..model import Copy, Page, SandboxWork
from ..wire import Request, Response, html_response, json_response, redirect
from .base import App, SiteApp

_DOI_QUERY = re.compile(r'doi:\s*"?([^"\s]+)"?', re.IGNORECASE)
_CC_BY = {"value": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}


def _copy_on(work: SandboxWork, host: str) -> Copy | None:
    return next((c for c in work.copies if c.host == host), None)


class ZenodoApp(SiteApp):
    """zenodo.org: the records API, file content and record pages."""

    site_name = "Zenodo"

    def setup(self) -> None:
        self.route(r"/api/records/?", self.search)
        self.route(r"/api/records/(?P<id>\d+)", self.record)
        self.route(r"/api/records/(?P<id>\d+)/files/(?P<key>[^/]+)/content", self.content)

    def _work(self, recid: str) -> SandboxWork | None:
        work = self.corpus.by_repo("zenodo", recid)
        return work if work is not None and _copy_on(work, self.service) else None

    def render(self, work: SandboxWork) -> dict[str, Any]:
        """The record JSON."""
        rec = work.repo_ids["zenodo"]
        copy = _copy_on(work, self.service)
        assert copy is not None
        md5 = hashlib.md5(self.corpus.pdf_bytes(work)).hexdigest()
        files = [
            {
                "id": f"{int(rec):08x}-pdf",
                "key": work.repo_ids["zenodo_key"],
                "size": work.size,
                "checksum": f"md5:{md5}",
                "links": {"self": self.copy_url(copy)},
            }
        ]
        if "zenodo_extra_file" in work.flags:
            extra = f"/api/records/{rec}/files/supplement.csv/content"
            files.insert(
                0,
                {
                    "id": f"{int(rec):08x}-csv",
                    "key": "supplement.csv",
                    "size": 22,
                    "checksum": "md5:" + hashlib.md5(b"x,y\n1,2\n").hexdigest(),
                    "links": {"self": self.urls.url(self.service, extra)},
                },
            )
        api = self.urls.url(self.service, f"/api/records/{rec}")
        return {
            "id": int(rec),
            "recid": rec,
            "conceptrecid": str(int(rec) - 1),
            "doi": work.doi,
            "doi_url": self.urls.doi_url(work.doi),
            "created": f"{work.year}-01-15T00:00:00+00:00",
            "updated": f"{work.year}-02-01T00:00:00+00:00",
            "metadata": {
                "title": work.title,
                "doi": work.doi,
                "publication_date": f"{work.year}-01-15",
                "resource_type": {"type": "publication", "subtype": "article"},
                "access_right": "open",
                "license": {"id": "cc-by-4.0"},
                "creators": [{"name": f"Sandbox{work.index}, Ada"}],
            },
            "files": files,
            "links": {
                "self": api,
                "self_html": self.urls.url(self.service, f"/records/{rec}"),
                "files": api + "/files",
            },
        }

    def record(self, req: Request, match: re.Match[str]) -> Response:
        work = self._work(match["id"])
        if work is None:
            return json_response(
                {"status": 404, "message": "The persistent identifier does not exist."}, 404
            )
        return json_response(self.render(work))

    def search(self, req: Request, match: re.Match[str]) -> Response:
        found = _DOI_QUERY.search(req.arg("q") or "")
        work = self.corpus.by_doi(norm_doi(found.group(1))) if found else None
        hits = [self.render(work)] if work is not None and _copy_on(work, self.service) else []
        return json_response(
            {
                "hits": {"hits": hits, "total": len(hits)},
                "aggregations": {},
                "links": {"self": self.urls.bases[self.service] + req.target},
            }
        )

    def content(self, req: Request, match: re.Match[str]) -> Response:
        if match["key"] == "supplement.csv" and self._work(match["id"]) is not None:
            return Response(200, [("Content-Type", "text/csv")], b"x,y\n1,2\n")
        return self.fallback(req)


class FigshareApp(SiteApp):
    """api.figshare.com (and its WAF-protected article pages)."""

    site_name = "figshare"

    def setup(self) -> None:
        self.route(r"/v2/articles/search", self.search, ("POST",))
        self.route(r"/v2/articles/(?P<id>\d+)", self.article)

    def _work(self, article_id: str) -> SandboxWork | None:
        work = self.corpus.by_repo("figshare", article_id)
        return work if work is not None and _copy_on(work, "figshare_files") else None

    def summary(self, work: SandboxWork) -> dict[str, Any]:
        """The short article object search returns."""
        aid = work.repo_ids["figshare"]
        page = next((p for p in work.pages if p.host == self.service), None)
        return {
            "id": int(aid),
            "title": work.title,
            "doi": work.doi,
            "handle": "",
            "url": self.urls.url(self.service, f"/v2/articles/{aid}"),
            "url_public_html": self.page_url(page) if page else None,
            "url_public_api": self.urls.url(self.service, f"/v2/articles/{aid}"),
            "published_date": f"{work.year}-01-15T00:00:00Z",
            "defined_type": 6,
            "defined_type_name": "journal contribution",
        }

    def article(self, req: Request, match: re.Match[str]) -> Response:
        work = self._work(match["id"])
        if work is None:
            return json_response(
                {"message": "Entity not found: article", "code": "EntityNotFound"}, 404
            )
        copy = _copy_on(work, "figshare_files")
        assert copy is not None
        md5 = hashlib.md5(self.corpus.pdf_bytes(work)).hexdigest()
        file = {
            "id": int(work.repo_ids["figshare_file"]),
            "name": f"sbx-{work.index:05d}.pdf",
            "size": work.size,
            "is_link_only": False,
            "download_url": self.copy_url(copy),
            "supplied_md5": md5,
            "computed_md5": md5,
            "mimetype": "application/pdf",
        }
        body = {
            **self.summary(work),
            "is_embargoed": False,
            "embargo_date": None,
            "license": _CC_BY,
            "files": [file],
        }
        return json_response(body)

    def search(self, req: Request, match: re.Match[str]) -> Response:
        payload = req.json()
        doi = payload.get("doi") if isinstance(payload, dict) else None
        if not isinstance(doi, str):
            return json_response(
                {"message": 'Invalid search: expected {"doi": ...}', "code": "BadRequest"}, 400
            )
        work = self.corpus.by_doi(doi)
        found = work is not None and _copy_on(work, "figshare_files") is not None
        return json_response([self.summary(work)] if found and work is not None else [])


class OsfApp(App):
    """api.osf.io: preprints and files."""

    def setup(self) -> None:
        self.route(r"/v2/preprints/(?P<guid>[a-z0-9]+)/", self.preprint)
        self.route(r"/v2/files/(?P<id>[0-9a-f]+)/", self.file)
        self.route(r"/v2/(?:preprints|files)/[a-z0-9]+", self.append_slash)

    def append_slash(self, req: Request, match: re.Match[str]) -> Response:
        query = req.target.partition("?")[2]
        location = self.urls.url(self.service, req.path + "/") + (f"?{query}" if query else "")
        return redirect(location, 301)

    @staticmethod
    def _missing() -> Response:
        return json_response({"errors": [{"detail": "Not found."}]}, 404)

    def preprint(self, req: Request, match: re.Match[str]) -> Response:
        guid = match["guid"]
        work = self.corpus.by_repo("osf", guid)
        if work is None:
            return self._missing()
        copy = _copy_on(work, "osf_site")
        primary: dict[str, Any] | None = None
        if copy is not None:
            fid = work.repo_ids["osf_file"]
            primary = {
                "links": {
                    "related": {
                        "href": self.urls.url(self.service, f"/v2/files/{fid}/"),
                        "meta": {},
                    }
                },
                "data": {"id": fid, "type": "files"},
            }
        attributes = {
            "title": work.title,
            "date_published": f"{work.year}-01-15T00:00:00Z",
            "is_published": True,
            "public": True,
            "reviews_state": "accepted" if copy else "withdrawn",
            "date_withdrawn": None if copy else f"{work.year}-06-01T00:00:00Z",
            "withdrawal_justification": None if copy else "Withdrawn by the authors.",
        }
        body = {
            "data": {
                "id": guid,
                "type": "preprints",
                "attributes": attributes,
                "relationships": {"primary_file": primary},
                "links": {
                    "self": self.urls.url(self.service, f"/v2/preprints/{guid}/"),
                    "html": self.urls.url("osf_site", f"/{guid}/"),
                    "preprint_doi": self.urls.doi_url(work.doi),
                },
            },
            "meta": {"version": "2.0"},
        }
        return json_response(body)

    def file(self, req: Request, match: re.Match[str]) -> Response:
        work = self.corpus.by_repo("osf_file", match["id"])
        copy = _copy_on(work, "osf_site") if work is not None else None
        if work is None or copy is None:
            return self._missing()
        data = self.corpus.pdf_bytes(work)
        attributes = {
            "name": f"sbx-{work.index:05d}.pdf",
            "kind": "file",
            "size": len(data),
            "materialized_path": f"/sbx-{work.index:05d}.pdf",
            "extra": {
                "hashes": {
                    "md5": hashlib.md5(data).hexdigest(),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            },
        }
        links = {
            "download": self.copy_url(copy),
            "self": self.urls.url(self.service, f"/v2/files/{match['id']}/"),
            "html": self.urls.url("osf_site", f"/{work.repo_ids['osf']}/"),
        }
        return json_response(
            {"data": {"id": match["id"], "type": "files", "attributes": attributes, "links": links}}
        )


class OsfSiteApp(SiteApp):
    """osf.io: downloads and the preprint app shell."""

    site_name = "OSF"

    def setup(self) -> None:
        self.route(r"/download/(?P<id>[0-9a-f]+)", self.append_slash)

    def append_slash(self, req: Request, match: re.Match[str]) -> Response:
        return redirect(self.urls.url(self.service, req.path + "/"), 301)

    def serve_page(self, work: SandboxWork, page: Page) -> Response:
        return html_response(pages.osf_shell(work.repo_ids.get("osf", "")))
