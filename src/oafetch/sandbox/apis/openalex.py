"""OpenAlex imitation: single works by id/DOI/PMID/PMCID and cursor-paginated lists.

``/works/doi:{doi}``, ``/works/https://doi.org/{doi}``, ``/works/W{n}`` (a merged id answers
301 to its canonical work), ``/works/pmid:{n}``, ``/works/pmcid:PMC{n}``; and
``/works?filter=is_oa:true&per-page=N&cursor=*`` with real cursor paging over the corpus.
``api_key`` is accepted and ignored; ``select`` trims top-level fields. Every other work with a
copy has a cached PDF (every fourth a TEI XML too), announced in ``has_content`` and
``content_urls``.

`OpenAlexContentApp` imitates content.openalex.org: ``/works/W{n}.pdf`` and
``/works/W{n}.grobid-xml`` need an ``api_key`` (401 without), answer 404 for a work with nothing
cached, else 302 to a signed URL (``/signed/…?X-Amz-Signature=…``, on the same host here; the
real one is an R2 bucket) that serves the bytes; ``X-Credits-Cost: 100`` as the real one sends.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from typing import Any
from xml.sax.saxutils import escape

from ..behaviours import OPENALEX
from ..model import Behaviour, Copy, Page, SandboxWork
from ..wire import Request, Response, json_response, raw_json, redirect, xml_response
from .base import App
from .metadata import is_publisher_host, journal_label, oa_status

_FILTERS = ("is_oa", "open_access.is_oa", "publication_year", "has_doi", "has_pmcid")
_MAX_PER_PAGE = 200


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sbx:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "sbx" and number.isdigit() else None


def _error(message: str, status: int = 400) -> Response:
    return json_response({"error": "Invalid query parameters error.", "message": message}, status)


class OpenAlexApp(App):
    """The ``/works`` endpoints."""

    def setup(self) -> None:
        self.route(r"/works/?", self.listing)
        self.route(r"/works/(?P<key>.+)", self.single)

    # ---- single works -----------------------------------------------------------------

    def find(self, key: str) -> SandboxWork | None:
        """Resolve the ``/works/{key}`` forms."""
        lower = key.lower()
        if lower.startswith(("doi:", "https://doi.org/", "http://doi.org/", "http://dx.doi.org/")):
            return self.corpus.by_doi(key)
        if lower.startswith("pmid:"):
            return self.corpus.by_pmid(key[5:].removeprefix("https://pubmed.ncbi.nlm.nih.gov/"))
        if lower.startswith("pmcid:"):
            value = key[6:]
            return self.corpus.by_pmcid(value if value.upper().startswith("PMC") else "PMC" + value)
        if key.startswith("10."):
            return self.corpus.by_doi(key)
        return self.corpus.by_openalex(key)

    def single(self, req: Request, match: re.Match[str]) -> Response:
        key = match["key"]
        work = self.find(key)
        if work is None:
            return json_response(
                {"error": "404 Not Found", "message": f"The requested work {key!r} was not found."},
                404,
            )
        bare = key.rsplit("/", 1)[-1].upper()
        if work.openalex_alias is not None and bare == work.openalex_alias:
            query = req.target.partition("?")[2]
            location = self.urls.url(self.service, f"/works/{work.openalex_id}")
            return redirect(location + (f"?{query}" if query else ""), 301)
        select = req.arg("select")
        if select:
            return json_response(self._select(self.render(work), select))
        return raw_json(self.memo(work.index, functools.partial(self.render_bytes, work)))

    @staticmethod
    def _select(record: dict[str, Any], select: str) -> dict[str, Any]:
        wanted = [f.strip() for f in select.split(",") if f.strip()]
        return {k: record[k] for k in wanted if k in record}

    def _location(
        self, work: SandboxWork, copy: Copy | None, page: Page | None, is_oa: bool = True
    ) -> dict[str, Any]:
        host = copy.host if copy is not None else page.host if page is not None else "doi"
        publisher = is_publisher_host(host)
        landing = self.urls.doi_url(work.doi) if publisher or page is None else self.page_url(page)
        source_type = "journal" if publisher else "repository"
        name = journal_label(work) if publisher else host.replace("_site", "").replace("_", " ")
        license_ = (copy.license if copy is not None else "cc-by") if is_oa else None
        version = copy.version if copy is not None else "publishedVersion"
        return {
            "is_oa": is_oa,
            "landing_page_url": landing,
            "pdf_url": self.copy_url(copy) if copy is not None else None,
            "source": {
                "id": f"https://openalex.org/S{4000000 + len(name) * 7919}",
                "display_name": name,
                "type": source_type,
                "host_organization_name": name,
            },
            "license": license_,
            "license_id": f"https://openalex.org/licenses/{license_}" if license_ else None,
            "version": version,
            "is_accepted": version != "submittedVersion",
            "is_published": version == "publishedVersion",
        }

    def render_bytes(self, work: SandboxWork) -> bytes:
        """`render` as JSON bytes (the cached form)."""
        return json.dumps(self.render(work)).encode()

    def render(self, work: SandboxWork) -> dict[str, Any]:
        """The OpenAlex work object of `work`."""
        locations = [
            self._location(work, c, work.page_for(c)) for c in work.copies_listed_by(OPENALEX)
        ]
        locations += [self._location(work, None, p) for p in work.pages_listed_by(OPENALEX)]
        publisher_page = next((p for p in work.pages if is_publisher_host(p.host)), None)
        if publisher_page is not None and not any(
            loc["source"]["type"] == "journal" for loc in locations
        ):
            locations.insert(0, self._location(work, None, publisher_page, is_oa=False))
        oa = [loc for loc in locations if loc["is_oa"]]
        best = next((loc for loc in oa if loc["pdf_url"]), oa[0] if oa else None)
        publisher_oa = any(loc["source"]["type"] == "journal" for loc in oa)
        repo_oa = any(loc["source"]["type"] == "repository" for loc in oa)
        doi_url = f"https://doi.org/{work.doi.lower()}"
        content = cached_content(work)
        ids: dict[str, str] = {
            "openalex": f"https://openalex.org/{work.openalex_id}",
            "doi": doi_url,
        }
        if work.pmid:
            ids["pmid"] = f"https://pubmed.ncbi.nlm.nih.gov/{work.pmid}"
        if work.pmcid:
            ids["pmcid"] = f"https://www.ncbi.nlm.nih.gov/pmc/articles/{work.pmcid}"
        record: dict[str, Any] = {
            "id": f"https://openalex.org/{work.openalex_id}",
            "doi": doi_url,
            "title": work.title,
            "display_name": work.title,
            "publication_year": work.year,
            "publication_date": f"{work.year}-01-15",
            "ids": ids,
            "type": "preprint" if work.publisher is None else "article",
            "open_access": {
                "is_oa": bool(oa),
                "oa_status": oa_status(work, publisher_oa, repo_oa, True),
                "oa_url": (best["pdf_url"] or best["landing_page_url"]) if best else None,
                "any_repository_has_fulltext": repo_oa,
            },
            "primary_location": locations[0] if locations else None,
            "best_oa_location": best,
            "locations": locations,
            "locations_count": len(locations),
            "has_fulltext": False,
            "has_content": {k: k in content for k in ("pdf", "grobid_xml")},
            "content_urls": {
                k: self.urls.url("openalex_content", f"/works/{work.openalex_id}.{ext}")
                if k in content
                else None
                for k, ext in (("pdf", "pdf"), ("grobid_xml", "grobid-xml"))
            },
            "cited_by_count": work.index % 113,
            "updated_date": "2025-06-01T00:00:00.000000",
            "created_date": f"{work.year}-02-01",
        }
        if work.behaviour is Behaviour.RETRACTED:
            record["is_retracted"] = True
        return record

    # ---- lists ------------------------------------------------------------------------

    def _matching(self, filters: str) -> list[SandboxWork] | str:
        """The works passing `filters`, or an error message."""
        tests: list[tuple[str, str]] = []
        for part in filter(None, (p.strip() for p in filters.split(","))):
            key, sep, value = part.partition(":")
            if not sep or key not in _FILTERS:
                valid = ", ".join(_FILTERS)
                return f"{key} is not a valid field. Valid fields are {valid}"
            tests.append((key, value.lower()))
        out = []
        for work in self.corpus.works:
            record = self.render(work)
            values = {
                "is_oa": str(record["open_access"]["is_oa"]).lower(),
                "open_access.is_oa": str(record["open_access"]["is_oa"]).lower(),
                "publication_year": str(work.year),
                "has_doi": "true",
                "has_pmcid": str(work.pmcid is not None).lower(),
            }
            if all(values[k] in v.split("|") for k, v in tests):
                out.append(work)
        return out

    def listing(self, req: Request, match: re.Match[str]) -> Response:
        per_page_text = req.arg("per-page") or req.arg("per_page") or "25"
        if not per_page_text.isdigit() or not 1 <= int(per_page_text) <= _MAX_PER_PAGE:
            return _error(f"per-page must be a number between 1 and {_MAX_PER_PAGE}")
        per_page = int(per_page_text)
        filters = req.arg("filter") or ""
        matching = self.memo(("filter", filters), lambda: self._filter_bytes(filters))
        if matching.startswith(b"!"):
            return _error(matching[1:].decode())
        indexes = json.loads(matching)
        cursor, page_text = req.arg("cursor"), req.arg("page")
        page: int | None = None
        if cursor is not None:
            start = 0 if cursor == "*" else _offset(cursor)
            if start is None:
                return _error(f"cursor {cursor!r} is not a valid cursor")
        else:
            if page_text is not None and not page_text.isdigit():
                return _error("page must be a number")
            page = int(page_text or "1")
            start = (page - 1) * per_page
            if page < 1 or start + per_page > 10_000:
                return _error("Maximum results size of 10,000 records is exceeded.")
        chosen = [self.corpus.works[i] for i in indexes[start : start + per_page]]
        more = start + per_page < len(indexes)
        next_cursor = _cursor(start + per_page) if cursor is not None and more else None
        meta = {
            "count": len(indexes),
            "db_response_time_ms": 3,
            "page": page,
            "per_page": per_page,
            "next_cursor": next_cursor,
            "groups_count": None,
        }
        select = req.arg("select")
        if select:
            results = [self._select(self.render(w), select) for w in chosen]
            return json_response({"meta": meta, "results": results, "group_by": []})
        parts = [self.memo(w.index, functools.partial(self.render_bytes, w)) for w in chosen]
        body = (
            b'{"meta":'
            + json.dumps(meta).encode()
            + b',"results":['
            + b",".join(parts)
            + b'],"group_by":[]}'
        )
        return raw_json(body)

    def _filter_bytes(self, filters: str) -> bytes:
        found = self._matching(filters)
        if isinstance(found, str):
            return b"!" + found.encode()
        return json.dumps([w.index for w in found]).encode()


def cached_content(work: SandboxWork) -> frozenset[str]:
    """What the imitation of content.openalex.org holds for `work` (deterministic)."""
    if not work.copies or work.index % 2:
        return frozenset()
    return frozenset({"pdf", "grobid_xml"} if work.index % 4 == 0 else {"pdf"})


def _signature(name: str) -> str:
    return hashlib.sha256(f"sandbox-r2:{name}".encode()).hexdigest()[:32]


class OpenAlexContentApp(App):
    """content.openalex.org: a paid download answers 302 to a signed URL that serves it."""

    def setup(self) -> None:
        self.route(r"/works/(?P<wid>W\d+)(?:\.(?P<ext>pdf|grobid-xml))?", self.content)
        self.route(r"/signed/(?P<wid>W\d+)\.(?P<ext>pdf|grobid-xml)", self.signed)

    def content(self, req: Request, match: re.Match[str]) -> Response:
        bearer = (req.header("Authorization") or "").removeprefix("Bearer ").strip()
        if not (req.arg("api_key") or bearer):
            return json_response({"error": "API key required", "message": "Add api_key."}, 401)
        ext = match["ext"] or "pdf"
        work = self.corpus.by_openalex(match["wid"])
        kind = "pdf" if ext == "pdf" else "grobid_xml"
        if work is None or kind not in cached_content(work):
            return json_response({"error": "Not found", "message": "No content."}, 404)
        name = f"{work.openalex_id}.{ext}"
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=SANDBOXR2KEY%2Fauto"
            f"&X-Amz-Expires=3600&X-Amz-Signature={_signature(name)}"
        )
        location = self.urls.url(self.service, f"/signed/{name}?{query}")
        return redirect(location, 302, [("X-Credits-Cost", "100")])

    def signed(self, req: Request, match: re.Match[str]) -> Response:
        name = f"{match['wid']}.{match['ext']}"
        work = self.corpus.by_openalex(match["wid"])
        if work is None or req.arg("X-Amz-Signature") != _signature(name):
            return xml_response("<Error><Code>AccessDenied</Code></Error>", 403)
        if match["ext"] == "pdf":
            data, ctype = self.corpus.pdf_bytes(work), "application/pdf"
        else:
            data, ctype = self.tei(work), "application/xml"
        return self.ctx.files.serve_bytes(req, work, data, ctype, name)

    @staticmethod
    def tei(work: SandboxWork) -> bytes:
        """A small GROBID-style TEI document for `work`."""
        title = escape(work.title)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<TEI xmlns="http://www.tei-c.org/ns/1.0"><teiHeader><fileDesc><titleStmt>'
            f"<title>{title}</title></titleStmt></fileDesc></teiHeader>"
            f"<text><body><div><p>We study {title.lower()}.</p></div></body></text></TEI>\n"
        ).encode()
